//! Context entries in `bylaw test` read what the suite provides, as in Kyverno's CLI:
//! `clusterResources` make ConfigMaps and API lists available, `apiCallResponses` answer API
//! and service calls, `globalContextEntries` stand in for GlobalContextEntries.

mod common;

use common::{rows, run_json, suite};
use serde_json::Value;

const HEADER: &str = "apiVersion: cli.kyverno.io/v1alpha1
kind: Test
metadata: {name: cluster-data}
policies: [policy.yaml]
resources: [resources.yaml]
";

const MOCKS: &str = "apiCallResponses:
  - url: https://approvals.example.com/check
    method: POST
    response:
      body: {allowed: true}
globalContextEntries:
  - name: regions
    data: {spec: {regions: [eu-west, eu-north]}}
    projections:
      - {name: allowed, path: spec.regions}
";

/// `(rule, resource) -> (passed, actual, reason)` of the only suite.
fn outcome(suites: &[Value], rule: &str, resource: &str) -> (bool, String, String) {
    let row = rows(&suites[0])
        .into_iter()
        .find(|r| r["rule"] == rule && r["resource"] == resource)
        .unwrap_or_else(|| panic!("no row {rule} {resource}: {suites:#?}"));
    (
        row["passed"].as_bool().unwrap_or(false),
        row["actual"].as_str().unwrap_or("").to_owned(),
        row["reason"].as_str().unwrap_or("").to_owned(),
    )
}

#[test]
fn cluster_resources_reach_config_map_and_api_call_entries() {
    let dir = suite(
        "cluster-context",
        &format!(
            "{HEADER}clusterResources: [cluster.yaml]
{MOCKS}results:
  - {{policy: cluster-data, rule: allowed-registry, kind: Pod, resources: [web, solo], result: pass}}
  - {{policy: cluster-data, rule: allowed-registry, kind: Pod, resources: [rogue], result: fail}}
  - {{policy: cluster-data, rule: one-pod-per-namespace, kind: Pod, resources: [web, rogue], result: fail}}
  - {{policy: cluster-data, rule: one-pod-per-namespace, kind: Pod, resources: [solo], result: pass}}
  - {{policy: cluster-data, rule: approved-by-service, kind: Pod, result: pass}}
  - {{policy: cluster-data, rule: allowed-region, kind: Pod, resources: [web, solo], result: pass}}
  - {{policy: cluster-data, rule: allowed-region, kind: Pod, resources: [rogue], result: fail}}
"
        ),
    );
    let (code, suites) = run_json(dir.path(), &["--detailed-results"]);
    assert!(suites[0]["error"].is_null(), "{:#}", suites[0]);
    for row in rows(&suites[0]) {
        assert_eq!(row["passed"], true, "{row:#}");
    }
    assert_eq!(code, Some(0));
    let count = rows(&suites[0])
        .into_iter()
        .find(|r| r["rule"] == "one-pod-per-namespace" && r["resource"] == "web")
        .map(|r| r["message"].clone());
    assert_eq!(count, Some(Value::from("2 pods in shop")));
}

#[test]
fn without_cluster_resources_config_maps_and_api_lists_are_not_loaded() {
    // As in Kyverno's CLI: the entries stay unloaded, so the rules that read them cannot be
    // evaluated — an error, not a silent pass.
    let dir = suite(
        "cluster-context",
        &format!(
            "{HEADER}{MOCKS}results:
  - {{policy: cluster-data, rule: allowed-registry, kind: Pod, resources: [web], result: pass}}
  - {{policy: cluster-data, rule: one-pod-per-namespace, kind: Pod, resources: [solo], result: pass}}
  - {{policy: cluster-data, rule: approved-by-service, kind: Pod, resources: [web], result: pass}}
"
        ),
    );
    let (code, suites) = run_json(dir.path(), &[]);
    assert_eq!(code, Some(1));
    for rule in ["allowed-registry", "one-pod-per-namespace"] {
        let resource = if rule == "allowed-registry" {
            "web"
        } else {
            "solo"
        };
        let (passed, actual, reason) = outcome(&suites, rule, resource);
        assert!(!passed, "{rule}: {reason}");
        assert_eq!(actual, "error", "{rule}: {reason}");
    }
    // Mocked answers do not need clusterResources.
    assert!(outcome(&suites, "approved-by-service", "web").0);
}

#[test]
fn unanswered_calls_and_failing_mocks_are_errors() {
    let dir = suite(
        "cluster-context",
        &format!(
            "{HEADER}clusterResources: [cluster.yaml]
apiCallResponses:
  - urlPath: /api/v1/namespaces/shop/pods
    response:
      statusCode: 503
      body: {{message: unavailable}}
results:
  - {{policy: cluster-data, rule: one-pod-per-namespace, kind: Pod, resources: [web], result: fail}}
  - {{policy: cluster-data, rule: approved-by-service, kind: Pod, resources: [web], result: pass}}
  - {{policy: cluster-data, rule: allowed-region, kind: Pod, resources: [web], result: pass}}
"
        ),
    );
    let (code, suites) = run_json(dir.path(), &["--detailed-results"]);
    assert_eq!(code, Some(1));
    for rule in [
        "one-pod-per-namespace",
        "approved-by-service",
        "allowed-region",
    ] {
        let (passed, actual, reason) = outcome(&suites, rule, "web");
        assert!(!passed, "{rule}: {reason}");
        assert_eq!(actual, "error", "{rule}: {reason}");
    }
    let message = |rule: &str| {
        rows(&suites[0])
            .into_iter()
            .find(|r| r["rule"] == rule)
            .and_then(|r| r["message"].as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    assert!(
        message("one-pod-per-namespace").contains("HTTP 503"),
        "{}",
        message("one-pod-per-namespace")
    );
    assert!(
        message("approved-by-service").contains("mock the answer with apiCallResponses"),
        "{}",
        message("approved-by-service")
    );
}

#[test]
fn malformed_mocks_and_cluster_files_fail_the_suite() {
    for (extra, error) in [
        (
            "apiCallResponses:\n  - {url: /relative, response: {body: {}}}\n",
            "must be an absolute https/http URL",
        ),
        (
            "globalContextEntries:\n  - {name: regions}\n",
            "one of data, resources, or resourceFiles is required",
        ),
        (
            "clusterResources: [resources.yaml]\n",
            "ClusterResource documents",
        ),
    ] {
        let dir = suite(
            "cluster-context",
            &format!(
                "{HEADER}{extra}results:
  - {{policy: cluster-data, rule: allowed-registry, kind: Pod, resources: [web], result: pass}}
"
            ),
        );
        let (code, suites) = run_json(dir.path(), &[]);
        assert_eq!(code, Some(1));
        let got = suites[0]["error"].as_str().unwrap_or("");
        assert!(got.contains(error), "{extra}: {got}");
    }
}
