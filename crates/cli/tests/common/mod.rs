//! Helpers shared by the CLI integration tests: run the binary, build suite directories from
//! fixtures, read `bylaw test -o json`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub fn bylaw(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bylaw"))
        .args(args)
        .output()
        .expect("run bylaw")
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A suite directory: the fixture's files plus `kyverno-test.yaml` with `test` as its text.
pub fn suite(fixture_name: &str, test: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for entry in std::fs::read_dir(fixture(fixture_name)).expect("fixture") {
        let path = entry.expect("entry").path();
        let name = path.file_name().expect("file name");
        std::fs::copy(&path, dir.path().join(name)).expect("copy fixture");
    }
    std::fs::write(dir.path().join("kyverno-test.yaml"), test).expect("write test");
    dir
}

/// Runs `bylaw test DIR -o json` and returns the exit code and the suites.
pub fn run_json(dir: &Path, extra: &[&str]) -> (Option<i32>, Vec<Value>) {
    let mut args = vec!["test", dir.to_str().expect("utf-8 path"), "-o", "json"];
    args.extend_from_slice(extra);
    let out = bylaw(&args);
    let suites: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}{}", stdout(&out), stderr(&out)));
    let suites = suites.as_array().cloned().expect("an array of suites");
    (out.status.code(), suites)
}

pub fn rows(suite: &Value) -> Vec<&Value> {
    suite["rows"].as_array().expect("rows").iter().collect()
}
