//! The conformance ratchet: every suite listed in `tests/conformance.passing` must still pass
//! over Kyverno's public policy library (`../shared/conformance`, present in CI).

use std::path::Path;
use std::process::Command;

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
    let passing = root.join("tests/conformance.passing");
    let listed = std::fs::read_to_string(&passing).expect("read tests/conformance.passing");
    assert!(
        listed.lines().filter(|l| !l.trim().is_empty()).count() >= 160,
        "the pass list only grows; it has shrunk"
    );
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
        "a listed suite stopped passing:\n{}",
        text.lines()
            .skip_while(|l| !l.starts_with("Regressions"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
