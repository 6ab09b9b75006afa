//! `bylaw conformance` (behind `make conformance`): runs every suite of Kyverno's public policy
//! library, scores it per stage of the corpus index, and keeps the committed pass list honest.
//! The scoring reads suite paths only to report and to ratchet; evaluation never looks at them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::Value;

use crate::output;
use crate::test_cmd::{find_suites, run_suites, CaseSelector, SuiteResult};

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
    let suites = find_suites(&corpus, "kyverno-test.yaml")?;
    let selector = CaseSelector::default();
    let mut passed = BTreeSet::new();
    let mut failed = BTreeMap::new();
    for suite in &suites {
        let rel = relative(&corpus, suite);
        let results = run_suites(suite, &selector);
        if results.iter().all(SuiteResult::passed) {
            passed.insert(rel);
        } else {
            let result = results.iter().find(|r| !r.passed());
            let reason = result
                .and_then(|r| r.error.clone())
                .or_else(|| {
                    result?.rows.iter().find(|r| !r.passed).map(|r| {
                        format!(
                            "{} {} {}/{}: {}",
                            r.policy, r.rule, r.kind, r.resource, r.reason
                        )
                    })
                })
                .unwrap_or_default();
            failed.insert(rel, reason);
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

    let committed = read_pass_list(&passing)?;
    let regressions: Vec<&String> = committed.iter().filter(|s| !passed.contains(*s)).collect();
    output::line("");
    if !regressions.is_empty() {
        output::line("Regressions — listed as passing but failing now:");
        for r in &regressions {
            output::line(&format!("  {r}"));
        }
    }
    if update {
        if regressions.is_empty() {
            let text: String = passed.iter().map(|s| format!("{s}\n")).collect();
            std::fs::write(&passing, text)
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

/// The pass list: one suite path per line; `#` comments and blank lines ignored.
pub fn read_pass_list(path: &Path) -> Result<BTreeSet<String>> {
    if !path.exists() {
        return Ok(BTreeSet::new());
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect())
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

fn print_stage_table(index: &Index, passed: &BTreeSet<String>, failed: &BTreeMap<String, String>) {
    let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for suite in passed {
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
