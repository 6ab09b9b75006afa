//! The conformance ratchet: every suite listed in `tests/conformance.passing` must still pass
//! over Kyverno's public policy library (`../shared/conformance`, present in CI), evaluating at
//! least the number of result rows the list records for it.

use std::path::Path;
use std::process::{Command, Output};

#[test]
fn listed_conformance_suites_still_pass() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let corpus = std::env::var_os("BYLAW_CONFORMANCE_CORPUS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/conformance/kyverno-policies"));
    assert!(
        corpus.is_dir(),
        "the conformance corpus is missing at {} (set BYLAW_CONFORMANCE_CORPUS)",
        corpus.display()
    );
    // `bylaw conformance` compares against every entry of the committed list, row counts
    // included, and rejects a malformed list (comments, duplicates).
    let passing = root.join("tests/conformance.passing");
    let out = Command::new(env!("CARGO_BIN_EXE_bylaw"))
        .args(["conformance", "--corpus"])
        .arg(&corpus)
        .arg("--passing")
        .arg(&passing)
        .output()
        .expect("run bylaw conformance");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "a listed suite stopped passing or checks less:\n{}{}",
        text.lines()
            .skip_while(|l| !l.starts_with("Regressions"))
            .collect::<Vec<_>>()
            .join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn bylaw(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bylaw"))
        .args(args)
        .output()
        .expect("run bylaw")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A one-suite corpus for `bylaw conformance`: the `team-label` fixture with one row without
/// resources, which two Pods answer.
fn corpus() -> tempfile::TempDir {
    let corpus = tempfile::tempdir().unwrap();
    let suite_dir = corpus.path().join("team/.kyverno-test");
    std::fs::create_dir_all(&suite_dir).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/team-label");
    for entry in std::fs::read_dir(fixture).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, suite_dir.join(path.file_name().unwrap())).unwrap();
    }
    std::fs::write(
        suite_dir.join("kyverno-test.yaml"),
        "apiVersion: cli.kyverno.io/v1alpha1
kind: Test
metadata: {name: t}
policies: [policy.yaml]
resources: [resources.yaml]
results:
  - {policy: require-team, rule: team, kind: Pod, result: fail}
",
    )
    .unwrap();
    corpus
}

fn conformance(corpus: &Path, passing: &Path, update: bool) -> Output {
    let mut args = vec![
        "conformance",
        "--corpus",
        corpus.to_str().unwrap(),
        "--passing",
        passing.to_str().unwrap(),
    ];
    if update {
        args.push("--update");
    }
    bylaw(&args)
}

#[test]
fn the_ratchet_records_row_counts_and_fails_when_a_suite_checks_less() {
    let corpus = corpus();
    let lists = tempfile::tempdir().unwrap();
    let passing = lists.path().join("passing");
    let out = conformance(corpus.path(), &passing, true);
    assert!(out.status.success(), "{}", stdout(&out));
    // Two Pods, one row without resources: two rows evaluated.
    assert_eq!(
        std::fs::read_to_string(&passing).unwrap(),
        "team/.kyverno-test/kyverno-test.yaml\t2\n"
    );
    assert!(conformance(corpus.path(), &passing, false).status.success());

    std::fs::write(&passing, "team/.kyverno-test/kyverno-test.yaml\t3\n").unwrap();
    let out = conformance(corpus.path(), &passing, true);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("evaluates 2 rows, the list records 3"),
        "{}",
        stdout(&out)
    );
    // A regression leaves the list as it was.
    assert_eq!(
        std::fs::read_to_string(&passing).unwrap(),
        "team/.kyverno-test/kyverno-test.yaml\t3\n"
    );

    std::fs::write(&passing, "missing/kyverno-test.yaml\t1\n").unwrap();
    let out = conformance(corpus.path(), &passing, false);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("missing/kyverno-test.yaml: fails"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn the_ratchet_rejects_comments_and_duplicates() {
    let corpus = corpus();
    let lists = tempfile::tempdir().unwrap();
    let passing = lists.path().join("passing");
    for (text, reason) in [
        (
            "# team/.kyverno-test/kyverno-test.yaml\t2\n",
            "comments are not allowed",
        ),
        (
            "team/.kyverno-test/kyverno-test.yaml\t2\nteam/.kyverno-test/kyverno-test.yaml\t2\n",
            "listed twice",
        ),
    ] {
        std::fs::write(&passing, text).unwrap();
        let out = conformance(corpus.path(), &passing, false);
        assert_eq!(out.status.code(), Some(2), "{text:?}");
        assert!(stderr(&out).contains(reason), "{}", stderr(&out));
    }
}
