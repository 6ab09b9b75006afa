//! The `bylaw` binary as a user runs it: exit codes, output and error messages.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bylaw(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bylaw"))
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("run bylaw")
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn every_example_passes_bylaw_test() {
    let out = bylaw(&["test", "examples"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("3 suites passed, 0 suites failed"), "{text}");
}

#[test]
fn apply_blocks_on_an_enforced_failure_and_names_the_field() {
    let out = bylaw(&[
        "apply",
        "examples/disallow-latest-tag/policy.yaml",
        "-r",
        "examples/disallow-latest-tag/resource.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("Pod/shop/floating"), "{text}");
    assert!(text.contains("/spec/containers/0/image/"), "{text}");
    assert!(text.contains("pass: 5, fail: 3,"), "{text}");
}

#[test]
fn apply_audit_failures_do_not_block_and_can_be_warnings() {
    let args = [
        "apply",
        "examples/require-team-label/policy.yaml",
        "-r",
        "examples/require-team-label/resource.yaml",
    ];
    let out = bylaw(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("pass: 1, fail: 2, warn: 0"),
        "{}",
        stdout(&out)
    );
    let mut warn = args.to_vec();
    warn.push("--audit-warn");
    let out = bylaw(&warn);
    assert!(
        stdout(&out).contains("pass: 1, fail: 0, warn: 2"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn apply_writes_a_policy_report() {
    let out = bylaw(&[
        "apply",
        "examples/require-team-label/policy.yaml",
        "-r",
        "examples/require-team-label/resource.yaml",
        "-p",
        "-o",
        "json",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(report["kind"], "ClusterPolicyReport");
    assert_eq!(report["apiVersion"], "wgpolicyk8s.io/v1alpha2");
    assert_eq!(report["summary"]["fail"], 2);
    assert_eq!(report["summary"]["pass"], 1);
    let results = report["results"].as_array().expect("results");
    assert_eq!(results.len(), 3);
    assert!(results
        .iter()
        .any(|r| r["result"] == "fail" && r["resources"][0]["name"] == "orphan-config"));
}

#[test]
fn malformed_yaml_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.yaml");
    std::fs::write(
        &bad,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: [unclosed\n",
    )
    .unwrap();
    let out = bylaw(&[
        "apply",
        "examples/disallow-latest-tag/policy.yaml",
        "-r",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("broken.yaml:"), "{err}");
    assert!(
        err.contains(":5:") || err.contains(":4:"),
        "line number missing: {err}"
    );
}

#[test]
fn invalid_policy_names_the_field_path() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: broken}
spec:
  rules:
    - name: r
      match: {any: [{resources: {kinds: [Pod]}}]}
      validate:
        deny:
          conditions:
            any:
              - {key: a, operator: Equalz, value: b}
"#,
    )
    .unwrap();
    let out = bylaw(&[
        "apply",
        policy.to_str().unwrap(),
        "-r",
        "examples/disallow-latest-tag/resource.yaml",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("spec.rules[0].validate.deny.conditions.any[0].operator"),
        "{err}"
    );
    assert!(err.contains("Equalz"), "{err}");
}

#[test]
fn a_test_row_naming_a_missing_rule_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let root = repo_root().join("examples/disallow-latest-tag");
    for f in ["policy.yaml", "resource.yaml"] {
        std::fs::copy(root.join(f), dir.path().join(f)).unwrap();
    }
    std::fs::write(
        dir.path().join("kyverno-test.yaml"),
        r#"apiVersion: cli.kyverno.io/v1alpha1
kind: Test
metadata: {name: typo}
policies: [policy.yaml]
resources: [resource.yaml]
results:
  - {policy: disallow-latest-tag, rule: forbid-latset, kind: Pod, resources: [pinned], result: pass}
  - {policy: disallow-latest-tag, rule: forbid-latest, kind: Pod, resources: [no-such-pod], result: pass}
"#,
    )
    .unwrap();
    let out = bylaw(&["test", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("rule \"forbid-latset\" not found"), "{text}");
    assert!(
        text.contains("resource Pod/no-such-pod not found"),
        "{text}"
    );
    assert!(text.contains("0 rows passed, 2 rows failed"), "{text}");
}

#[test]
fn test_output_formats() {
    let out = bylaw(&["test", "examples", "-o", "json"]);
    let suites: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(suites.as_array().map(Vec::len), Some(3));
    let out = bylaw(&["test", "examples", "-o", "junit"]);
    let xml = stdout(&out);
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert!(xml.contains("failures=\"0\""), "{xml}");
}

#[test]
fn jp_query_uses_kyverno_functions() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.yaml");
    std::fs::write(&input, "name: Web-Frontend\nimages: [nginx, redis]\n").unwrap();
    let out = bylaw(&[
        "jp",
        "query",
        "-i",
        input.to_str().unwrap(),
        "-u",
        "to_lower(name)",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "web-frontend");
    let out = bylaw(&["jp", "function", "truncate"]);
    assert!(stdout(&out).contains("truncate("), "{}", stdout(&out));
}

#[test]
fn crds_print_every_definition() {
    let out = bylaw(&["crds"]);
    assert!(out.status.success());
    let text = stdout(&out);
    for name in [
        "clusterpolicies.kyverno.io",
        "policies.kyverno.io",
        "policyexceptions.kyverno.io",
        "policyreports.wgpolicyk8s.io",
        "clusterpolicyreports.wgpolicyk8s.io",
    ] {
        assert!(text.contains(&format!("name: {name}")), "{name} missing");
    }
}

#[test]
fn version_names_the_commit() {
    let out = bylaw(&["version"]);
    assert!(
        stdout(&out).starts_with("bylaw 0.1.0 (commit "),
        "{}",
        stdout(&out)
    );
}

#[test]
fn hostile_nesting_and_wildcards_end_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    // A resource nested 10,000 levels deep: a clean error naming the file, not a stack overflow.
    let deep = dir.path().join("deep.yaml");
    let mut text = String::from("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep}\ndata: ");
    text.push_str(&"[".repeat(10_000));
    text.push_str(&"]".repeat(10_000));
    text.push('\n');
    std::fs::write(&deep, text).unwrap();
    let out = bylaw(&[
        "apply",
        "examples/require-team-label/policy.yaml",
        "-r",
        deep.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("deep.yaml"), "{}", stderr(&out));

    // A pathological wildcard pattern against a long value finishes (and fails) promptly.
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {{name: wildcard}}
spec:
  rules:
    - name: r
      match: {{any: [{{resources: {{kinds: [ConfigMap]}}}}]}}
      validate:
        pattern:
          data:
            key: "{}b"
"#,
            "*a".repeat(500)
        ),
    )
    .unwrap();
    let resource = dir.path().join("cm.yaml");
    std::fs::write(
        &resource,
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: long, namespace: x}}\ndata:\n  key: \"{}\"\n",
            "a".repeat(20_000)
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let out = bylaw(&[
        "apply",
        policy.to_str().unwrap(),
        "-r",
        resource.to_str().unwrap(),
    ]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "pathological wildcard did not finish promptly ({:?}): backtracking blow-up?",
        started.elapsed()
    );
    assert!(stdout(&out).contains("fail: 1"), "{}", stdout(&out));
}
