//! Mutations in `bylaw test`: mutate-existing rules patch the suite's `targetResources`, and
//! patched resources are compared with the document of the same kind, namespace and name.

mod common;

use common::{rows, run_json, suite};

const HEADER: &str = "apiVersion: cli.kyverno.io/v1alpha1
kind: Test
metadata: {name: mutate}
policies: [policy.yaml]
resources: [resources.yaml]
targetResources: [targets.yaml]
";

#[test]
fn mutate_existing_rules_patch_target_resources() {
    let dir = suite(
        "mutate-existing",
        &format!(
            "{HEADER}results:
  - {{policy: refresh-on-secret, rule: mark-configmaps, kind: ConfigMap, resources: [shop/settings], patchedResources: patched-targets.yaml, result: pass}}
"
        ),
    );
    let (code, suites) = run_json(dir.path(), &[]);
    let rows = rows(&suites[0]);
    assert_eq!(rows.len(), 1, "{suites:#?}");
    assert_eq!(rows[0]["passed"], true, "{:#}", rows[0]);
    assert_eq!(code, Some(0));
}

#[test]
fn a_target_the_rule_did_not_patch_is_not_a_result() {
    // The Secret lives in `shop`: the `search` ConfigMap is no target of its rule.
    let dir = suite(
        "mutate-existing",
        &format!(
            "{HEADER}results:
  - {{policy: refresh-on-secret, rule: mark-configmaps, kind: ConfigMap, resources: [search/settings], patchedResources: patched-targets.yaml, result: pass}}
"
        ),
    );
    let (code, suites) = run_json(dir.path(), &[]);
    assert_eq!(code, Some(1));
    let rows = rows(&suites[0]);
    assert_eq!(
        rows[0]["reason"],
        "resource ConfigMap/search/settings not found"
    );
}

#[test]
fn a_wrong_expected_target_fails_with_the_difference() {
    let dir = suite(
        "mutate-existing",
        &format!(
            "{HEADER}results:
  - {{policy: refresh-on-secret, rule: mark-configmaps, kind: ConfigMap, resources: [shop/settings], patchedResources: targets.yaml, result: pass}}
"
        ),
    );
    let (code, suites) = run_json(dir.path(), &[]);
    assert_eq!(code, Some(1));
    let reason = rows(&suites[0])[0]["reason"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(
        reason.contains("/metadata/annotations: unexpected"),
        "{reason}"
    );
}

#[test]
fn same_named_resources_are_compared_with_their_own_namespace() {
    let dir = suite(
        "mutate-existing",
        &format!(
            "{HEADER}results:
  - {{policy: label-namespace, rule: namespace-label, kind: Pod, resources: [shop/web, search/web], patchedResources: patched-pods.yaml, result: pass}}
  - {{policy: label-namespace, rule: namespace-label, kind: Pod, resources: [web], patchedResources: patched-pods.yaml, result: pass}}
"
        ),
    );
    let (code, suites) = run_json(dir.path(), &[]);
    for row in rows(&suites[0]) {
        assert_eq!(row["passed"], true, "{row:#}");
    }
    assert_eq!(rows(&suites[0]).len(), 3);
    assert_eq!(code, Some(0));
}
