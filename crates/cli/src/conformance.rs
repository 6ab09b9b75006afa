//! `bylaw conformance` (behind `make conformance`): runs every suite of Kyverno's public policy
//! library, scores it per stage of the corpus index, and keeps the committed pass list honest.
//! The scoring reads suite paths only to report and to ratchet; evaluation never looks at them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::Value;

use crate::output;
use crate::test_cmd::{find_suites, run_suites, SuiteOptions, SuiteResult};

#[derive(Debug, Args)]
pub struct ConformanceArgs {
    /// The corpus: Kyverno's policy library with its kyverno-test.yaml suites.
    #[arg(long, env = "BYLAW_CONFORMANCE_CORPUS")]
    corpus: PathBuf,
    /// The index describing each suite's stage and capabilities.
    #[arg(long, env = "BYLAW_CONFORMANCE_INDEX")]
    index: Option<PathBuf>,
    /// The committed list of suites that pass (one path per line, relative to the corpus).
    #[arg(long, default_value = "tests/conformance.passing")]
    passing: PathBuf,
    /// Rewrite the pass list with every suite that passes now (it may only grow).
    #[arg(long)]
    update: bool,
}

pub fn run(args: ConformanceArgs) -> Result<ExitCode> {
    let ConformanceArgs {
        corpus,
        index,
        passing,
        update,
    } = args;
    // Read the list first: a malformed list is an error before an hour of work, not after.
    let committed = if update && !passing.exists() {
        PassList::new()
    } else {
        read_pass_list(&passing)?
    };
    let suites = find_suites(&corpus, "kyverno-test.yaml")?;
    let options = SuiteOptions::default();
    // suite → evaluated rows, for the suites that pass
    let mut passed = PassList::new();
    let mut failed = BTreeMap::new();
    for suite in &suites {
        let rel = relative(&corpus, suite);
        let results = run_suites(suite, &options);
        if results.iter().all(SuiteResult::passed) {
            passed.insert(rel, results.iter().map(|r| r.rows.len()).sum());
        } else {
            failed.insert(rel, failure_reason(&results));
        }
    }

    let stages = match &index {
        Some(path) => read_index(path)?,
        None => Index::default(),
    };
    print_stage_table(&stages, &passed, &failed);

    output::line("");
    output::line("Failing suites (reproduce with the command shown):");
    for (suite, reason) in &failed {
        let dir = Path::new(suite).parent().unwrap_or(Path::new(suite));
        output::line(&format!(
            "  bylaw test {} --detailed-results   # {}",
            corpus.join(dir).display(),
            truncate(reason, 160)
        ));
    }

    let regressions = regressions(&committed, &passed);
    output::line("");
    if !regressions.is_empty() {
        output::line("Regressions — listed as passing but failing now or checking less:");
        for r in &regressions {
            output::line(&format!("  {r}"));
        }
    }
    if update {
        if regressions.is_empty() {
            std::fs::write(&passing, format_pass_list(&passed))
                .with_context(|| format!("cannot write {}", passing.display()))?;
            output::line(&format!(
                "wrote {} suites to {}",
                passed.len(),
                passing.display()
            ));
        } else {
            output::line("pass list not updated: fix the regressions first");
        }
    }
    output::line(&format!("{} passed, {} failed", passed.len(), failed.len()));
    Ok(if regressions.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn relative(corpus: &Path, suite: &Path) -> String {
    suite
        .strip_prefix(corpus)
        .unwrap_or(suite)
        .to_string_lossy()
        .replace('\\', "/")
}

fn truncate(text: &str, max: usize) -> String {
    let one_line = text.replace('\n', " ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        let cut: String = one_line.chars().take(max).collect();
        format!("{cut}…")
    }
}

/// The first reason a suite file failed, in one line.
fn failure_reason(results: &[SuiteResult]) -> String {
    results
        .iter()
        .find(|r| !r.passed())
        .map(|result| {
            result.error.clone().unwrap_or_else(|| {
                result
                    .rows
                    .iter()
                    .find(|r| !r.passed)
                    .map(|r| {
                        format!(
                            "{} {} {}/{}: {}",
                            r.policy, r.rule, r.kind, r.resource, r.reason
                        )
                    })
                    .unwrap_or_default()
            })
        })
        .unwrap_or_default()
}

/// Suite path (relative to the corpus) → number of result rows it evaluated.
pub type PassList = BTreeMap<String, usize>;

/// Every way the current run falls short of the committed list: a listed suite that fails, or
/// passes while evaluating fewer rows than recorded.
fn regressions(committed: &PassList, passed: &PassList) -> Vec<String> {
    committed
        .iter()
        .filter_map(|(suite, &rows)| match passed.get(suite) {
            None => Some(format!("{suite}: fails")),
            Some(&now) if now < rows => Some(format!(
                "{suite}: evaluates {now} rows, the list records {rows}"
            )),
            Some(_) => None,
        })
        .collect()
}

/// The pass list: one `suite-path<TAB>rows` line per suite, sorted, nothing else.
pub fn format_pass_list(list: &PassList) -> String {
    list.iter()
        .map(|(suite, rows)| format!("{suite}\t{rows}\n"))
        .collect()
}

/// Reads the pass list. It is strict so that nobody can pad or hide entries: every line is
/// `suite-path<TAB>rows` with at least one row; blank lines, comments and duplicates are errors.
pub fn read_pass_list(path: &Path) -> Result<PassList> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_pass_list(&text).with_context(|| format!("{}: not a valid pass list", path.display()))
}

fn parse_pass_list(text: &str) -> Result<PassList> {
    let mut list = PassList::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.trim().is_empty() {
            anyhow::bail!("line {number}: blank lines are not allowed");
        }
        if line.trim_start().starts_with('#') {
            anyhow::bail!("line {number}: comments are not allowed");
        }
        let (suite, rows) = line.split_once('\t').with_context(|| {
            format!("line {number}: expected `suite-path<TAB>rows`, got {line:?}")
        })?;
        let rows: usize = rows
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .with_context(|| format!("line {number}: {rows:?} is not a positive row count"))?;
        if suite.is_empty() || suite != suite.trim() {
            anyhow::bail!("line {number}: malformed suite path {suite:?}");
        }
        if list.insert(suite.to_owned(), rows).is_some() {
            anyhow::bail!("line {number}: {suite} is listed twice");
        }
    }
    Ok(list)
}

#[derive(Debug, Default)]
struct Index {
    /// stage → title
    titles: BTreeMap<String, String>,
    /// suite path → stage
    stage_of: BTreeMap<String, String>,
}

fn read_index(path: &Path) -> Result<Index> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let doc: Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not valid JSON", path.display()))?;
    let mut index = Index::default();
    if let Some(stages) = doc.get("stages").and_then(Value::as_object) {
        for (stage, info) in stages {
            let title = info.get("title").and_then(Value::as_str).unwrap_or("");
            index.titles.insert(stage.clone(), title.to_owned());
        }
    }
    if let Some(tests) = doc.get("tests").and_then(Value::as_object) {
        for (suite, info) in tests {
            let stage = info.get("stage").and_then(Value::as_str).unwrap_or("none");
            index.stage_of.insert(suite.clone(), stage.to_owned());
        }
    }
    Ok(index)
}

fn print_stage_table(index: &Index, passed: &PassList, failed: &BTreeMap<String, String>) {
    let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for suite in passed.keys() {
        let stage = index
            .stage_of
            .get(suite)
            .cloned()
            .unwrap_or_else(|| "none".into());
        counts.entry(stage).or_default().0 += 1;
    }
    for suite in failed.keys() {
        let stage = index
            .stage_of
            .get(suite)
            .cloned()
            .unwrap_or_else(|| "none".into());
        counts.entry(stage).or_default().1 += 1;
    }
    let mut table = vec![vec![
        "STAGE".to_owned(),
        "SUITES".to_owned(),
        "PASSED".to_owned(),
        "FAILED".to_owned(),
        "TITLE".to_owned(),
    ]];
    for (stage, (p, f)) in &counts {
        table.push(vec![
            stage.clone(),
            (p + f).to_string(),
            p.to_string(),
            f.to_string(),
            index.titles.get(stage).cloned().unwrap_or_default(),
        ]);
    }
    output::print_table(&table, "");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pass_list_round_trips() {
        let list: PassList = [
            ("a/kyverno-test.yaml".to_owned(), 3),
            ("b/kyverno-test.yaml".to_owned(), 1),
        ]
        .into_iter()
        .collect();
        let text = format_pass_list(&list);
        assert_eq!(text, "a/kyverno-test.yaml\t3\nb/kyverno-test.yaml\t1\n");
        assert_eq!(parse_pass_list(&text).unwrap(), list);
    }

    #[test]
    fn the_pass_list_rejects_padding_and_hidden_entries() {
        for (text, reason) in [
            ("a\t1\n# b\t1\n", "comments are not allowed"),
            ("a\t1\na\t2\n", "listed twice"),
            ("a\t1\n\nb\t1\n", "blank lines"),
            ("a\n", "expected `suite-path<TAB>rows`"),
            ("a\t0\n", "not a positive row count"),
            ("a\tmany\n", "not a positive row count"),
        ] {
            let err = format!("{:#}", parse_pass_list(text).unwrap_err());
            assert!(err.contains(reason), "{text:?}: {err}");
        }
    }

    #[test]
    fn fewer_rows_or_a_failure_is_a_regression() {
        let committed: PassList = [
            ("a".to_owned(), 3),
            ("b".to_owned(), 2),
            ("c".to_owned(), 1),
        ]
        .into_iter()
        .collect();
        let now: PassList = [
            ("a".to_owned(), 3),
            ("b".to_owned(), 1),
            ("d".to_owned(), 5),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            regressions(&committed, &now),
            ["b: evaluates 1 rows, the list records 2", "c: fails"]
        );
        assert!(regressions(&committed, &committed).is_empty());
    }
}
