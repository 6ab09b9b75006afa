//! Cluster scope of custom kinds: CustomResourceDefinitions among the inputs and
//! `--cluster-scoped` decide which objects without a namespace stay outside namespaces (the
//! rest are placed in `default`), so namespace match and exclude agree with admission.

mod common;

use common::{bylaw, fixture, rows, run_json, suite};
use serde_json::Value;

fn test_with(resources: &str) -> String {
    format!(
        "apiVersion: cli.kyverno.io/v1alpha1
kind: Test
metadata: {{name: scope}}
policies: [policy.yaml]
resources: [{resources}]
results:
  - {{policy: acme-email, rule: email, kind: ClusterIssuer, resources: [public], result: fail}}
  - {{policy: acme-email, rule: email, kind: Issuer, resources: [default/local], result: skip}}
"
    )
}

fn all_passed(suites: &[Value]) -> bool {
    rows(&suites[0]).iter().all(|r| r["passed"] == true)
}

#[test]
fn a_custom_resource_definition_among_the_inputs_declares_the_scope() {
    let dir = suite("custom-scope", &test_with("crds.yaml, issuers.yaml"));
    let (code, suites) = run_json(dir.path(), &[]);
    assert!(all_passed(&suites), "{suites:#?}");
    assert_eq!(code, Some(0));
}

#[test]
fn without_a_definition_a_custom_kind_is_namespaced() {
    // The ClusterIssuer lands in `default`, is excluded, and its row's `fail` is not met.
    let dir = suite("custom-scope", &test_with("issuers.yaml"));
    let (code, suites) = run_json(dir.path(), &[]);
    assert_eq!(code, Some(1));
    let first = rows(&suites[0])[0];
    assert_eq!(first["actual"], "skip", "{first:#}");
}

#[test]
fn the_flag_declares_the_scope() {
    let dir = suite("custom-scope", &test_with("issuers.yaml"));
    for flag in ["ClusterIssuer", "cert-manager.io/ClusterIssuer"] {
        let (code, suites) = run_json(dir.path(), &["--cluster-scoped", flag]);
        assert!(all_passed(&suites), "{flag}: {suites:#?}");
        assert_eq!(code, Some(0));
    }
    let (code, _) = run_json(
        dir.path(),
        &["--cluster-scoped", "example.com/ClusterIssuer"],
    );
    assert_eq!(code, Some(1), "the flag's group must match");
}

#[test]
fn apply_reads_scope_from_definitions_too() {
    let dir = fixture("custom-scope");
    let out = bylaw(&[
        "apply",
        dir.join("policy.yaml").to_str().unwrap(),
        "-r",
        dir.join("crds.yaml").to_str().unwrap(),
        "-r",
        dir.join("issuers.yaml").to_str().unwrap(),
        "-o",
        "json",
    ]);
    let results: Value = serde_json::from_slice(&out.stdout).expect("json");
    let resources: Vec<&str> = results
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|r| r["resource"].as_str())
        .collect();
    assert_eq!(resources, ["ClusterIssuer/public"], "{results:#}");
}
