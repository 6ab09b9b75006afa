//! Requests beyond CREATE in `bylaw test`: the `operation` of a result row and of a values
//! file, old objects for UPDATE and DELETE, values that set fields of the objects, and
//! subresource requests (`pods/exec`, `deployments/scale`) from a values file's `subresources`.

mod common;

use common::{rows, run_json, suite};
use serde_json::Value;

/// Every row of the only suite, as `(rule, resource, passed, reason, message)`.
fn outcomes(suites: &[Value]) -> Vec<(String, String, bool, String, String)> {
    assert_eq!(suites.len(), 1, "{suites:#?}");
    assert!(suites[0]["error"].is_null(), "{:#}", suites[0]);
    let text = |row: &Value, key: &str| row[key].as_str().unwrap_or("").to_owned();
    rows(&suites[0])
        .into_iter()
        .map(|row| {
            (
                text(row, "rule"),
                text(row, "resource"),
                row["passed"].as_bool().unwrap_or(false),
                text(row, "reason"),
                text(row, "message"),
            )
        })
        .collect()
}

fn assert_all_passed(outcomes: &[(String, String, bool, String, String)]) {
    for (rule, resource, passed, reason, _) in outcomes {
        assert!(passed, "{rule} {resource}: {reason}");
    }
}

const OPERATIONS: &str = "apiVersion: cli.kyverno.io/v1alpha1
kind: Test
metadata: {name: operations}
policies: [policy.yaml]
resources: [resources.yaml]
variables: values.yaml
results:
  - {policy: guard-pods, rule: keep-protected, kind: Pod, resources: [web], operation: DELETE, result: fail}
  - {policy: guard-pods, rule: keep-protected, kind: Pod, resources: [batch], operation: DELETE, result: pass}
  - {policy: guard-pods, rule: keep-protected, kind: Pod, resources: [web], result: skip}
  - {policy: guard-pods, rule: team-is-immutable, kind: Pod, resources: [web], operation: UPDATE, result: fail}
  - {policy: guard-pods, rule: team-is-immutable, kind: Pod, resources: [batch], operation: UPDATE, result: pass}
  - {policy: guard-pods, rule: owner-annotation, kind: Pod, resources: [batch], result: pass}
  - {policy: guard-pods, rule: owner-annotation, kind: Pod, resources: [web], result: fail}
  - {policy: guard-pods, rule: owner-annotation, kind: Pod, resources: [web], operation: DELETE, result: skip}
";

#[test]
fn rows_run_as_the_operation_they_name() {
    let dir = suite("operations", OPERATIONS);
    let (code, suites) = run_json(dir.path(), &[]);
    let outcomes = outcomes(&suites);
    assert_all_passed(&outcomes);
    assert_eq!(code, Some(0));
    assert_eq!(outcomes.len(), 8);
    // UPDATE: the old object comes from the resource with the values file's changes.
    let (_, _, _, _, message) = &outcomes[3];
    assert_eq!(message, "the team label cannot change (search -> payments)");
}

#[test]
fn an_operation_row_does_not_see_the_default_run() {
    // Without `operation`, the row is checked against the CREATE run, where the DELETE rule
    // does not apply: expecting `fail` there is wrong.
    let dir = suite(
        "operations",
        &OPERATIONS.replace(
            "resources: [web], operation: DELETE, result: fail",
            "resources: [web], result: fail",
        ),
    );
    let (code, suites) = run_json(dir.path(), &[]);
    assert_eq!(code, Some(1));
    let outcomes = outcomes(&suites);
    assert!(!outcomes[0].2, "{outcomes:#?}");
    assert_eq!(
        outcomes[0].3,
        "want fail, got no result: the rule did not match the resource"
    );
}

#[test]
fn an_unknown_operation_is_an_error() {
    let dir = suite(
        "operations",
        &OPERATIONS.replace(
            "operation: DELETE, result: pass",
            "operation: delete, result: pass",
        ),
    );
    let (code, suites) = run_json(dir.path(), &[]);
    assert_eq!(code, Some(1));
    assert_eq!(
        suites[0]["error"],
        "results[1]: operation: invalid operation \"delete\", must be one of CREATE, UPDATE, DELETE"
    );
}

#[test]
fn the_values_file_operation_applies_to_rows_without_one() {
    // `request.operation: DELETE` for every resource: the default run is a deletion.
    let dir = suite(
        "operations",
        "apiVersion: cli.kyverno.io/v1alpha1
kind: Test
metadata: {name: delete-by-values}
policies: [policy.yaml]
resources: [resources.yaml]
values:
  globalValues:
    request.operation: DELETE
results:
  - {policy: guard-pods, rule: keep-protected, kind: Pod, resources: [web], result: fail}
  - {policy: guard-pods, rule: keep-protected, kind: Pod, resources: [batch], result: pass}
  - {policy: guard-pods, rule: owner-annotation, kind: Pod, resources: [web], result: skip}
  - {policy: guard-pods, rule: keep-protected, kind: Pod, resources: [web], operation: CREATE, result: skip}
",
    );
    let (code, suites) = run_json(dir.path(), &[]);
    assert_all_passed(&outcomes(&suites));
    assert_eq!(code, Some(0));
}

const SUBRESOURCES: &str = "apiVersion: cli.kyverno.io/v1alpha1
kind: Test
metadata: {name: subresources}
policies: [policy.yaml]
resources: [resources.yaml]
variables: values.yaml
results:
  - {policy: guard-subresources, rule: no-exec-in-prod, kind: PodExecOptions, resources: [exec-web], result: fail}
  - {policy: guard-subresources, rule: no-exec-in-prod, kind: PodExecOptions, resources: [exec-dev], result: skip}
  - {policy: guard-subresources, rule: at-most-three-replicas, kind: Scale, resources: [web], result: fail}
  - {policy: guard-subresources, rule: at-most-three-replicas, kind: Scale, resources: [api], result: pass}
  - {policy: guard-subresources, rule: pods-only, kind: PodExecOptions, resources: [exec-web], result: skip}
";

#[test]
fn subresource_documents_are_requests_for_their_parent_resource() {
    let dir = suite("subresources", SUBRESOURCES);
    let (code, suites) = run_json(dir.path(), &[]);
    let outcomes = outcomes(&suites);
    assert_all_passed(&outcomes);
    assert_eq!(code, Some(0));
    // `request.kind` is the kind of the object sent, as the API server fills it.
    assert_eq!(outcomes[0].4, "no PodExecOptions on exec in prod");
    assert_eq!(
        outcomes[2].4,
        "autoscaling/v1 Scale of scale: at most 3 replicas"
    );
}

#[test]
fn without_a_subresources_mapping_a_document_is_its_own_kind() {
    let dir = suite(
        "subresources",
        "apiVersion: cli.kyverno.io/v1alpha1
kind: Test
metadata: {name: no-mapping}
policies: [policy.yaml]
resources: [resources.yaml]
values:
  globalValues:
    request.operation: CONNECT
results:
  - {policy: guard-subresources, rule: no-exec-in-prod, kind: PodExecOptions, resources: [exec-web], result: skip}
  - {policy: guard-subresources, rule: at-most-three-replicas, kind: Scale, resources: [web], result: skip}
",
    );
    let (code, suites) = run_json(dir.path(), &[]);
    assert_all_passed(&outcomes(&suites));
    assert_eq!(code, Some(0));
}

#[test]
fn values_for_a_rule_serve_its_autogen_rules() {
    let dir = suite(
        "autogen-values",
        "apiVersion: cli.kyverno.io/v1alpha1
kind: Test
metadata: {name: autogen-values}
policies: [policy.yaml]
resources: [resources.yaml]
variables: values.yaml
results:
  - {policy: allowed-registry, rule: registry, kind: Pod, resources: [web], result: pass}
  - {policy: allowed-registry, rule: registry, kind: Deployment, resources: [api], result: fail}
",
    );
    let (code, suites) = run_json(dir.path(), &[]);
    let outcomes = outcomes(&suites);
    assert_all_passed(&outcomes);
    assert_eq!(code, Some(0));
    assert!(
        outcomes[1].4.contains("images come from ghcr.io/acme"),
        "{}",
        outcomes[1].4
    );
}
