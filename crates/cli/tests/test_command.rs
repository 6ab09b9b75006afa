//! `bylaw test` never passes what it did not check: unsupported fields, rows without
//! resources, suites that check nothing, selectors that select nothing and rules bylaw cannot
//! evaluate all fail, each with a message that says why.

mod common;

use common::{bylaw, fixture, rows, run_json, stderr, stdout, suite};
use serde_json::Value;

const HEADER: &str = "apiVersion: cli.kyverno.io/v1alpha1
kind: Test
metadata: {name: t}
policies: [policy.yaml]
resources: [resources.yaml]
";

#[test]
fn unknown_test_and_row_fields_fail_the_suite_naming_them() {
    let dir = suite(
        "team-label",
        &format!(
            "{HEADER}httpPayloads: [payload.json]
clusterResources: []
results:
  - {{policy: require-team, rule: team, kind: ConfigMap, resources: [labelled], result: pass, reslt: fail}}
"
        ),
    );
    let (code, suites) = run_json(dir.path(), &[]);
    assert_eq!(code, Some(1));
    let error = suites[0]["error"].as_str().expect("a suite error");
    // An empty `clusterResources` asks for nothing and is accepted.
    assert_eq!(
        error,
        "unsupported in bylaw: httpPayloads, results[0].reslt"
    );
    assert!(rows(&suites[0]).is_empty());
}

#[test]
fn a_row_without_resources_checks_every_result_of_its_policy_rule_and_kind() {
    let dir = suite(
        "team-label",
        &format!(
            "{HEADER}results:
  - {{policy: require-team, rule: team, kind: Pod, result: fail}}
  - {{policy: require-team, rule: team, kind: ConfigMap, result: pass}}
"
        ),
    );
    let (code, suites) = run_json(dir.path(), &[]);
    assert_eq!(code, Some(0), "{suites:#?}");
    let checked: Vec<(String, String, bool)> = rows(&suites[0])
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap_or("").to_owned(),
                r["resource"].as_str().unwrap_or("").to_owned(),
                r["passed"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    let want = |k: &str, r: &str| (k.to_owned(), r.to_owned(), true);
    assert_eq!(
        checked,
        [
            want("Pod", "shop/unlabelled-a"),
            want("Pod", "search/unlabelled-b"),
            want("ConfigMap", "shop/labelled"),
        ]
    );
}

#[test]
fn a_row_without_resources_fails_on_any_result_that_disagrees() {
    // Kind left out: every result of the rule, Pods and ConfigMaps alike, must be a `fail`.
    let dir = suite(
        "team-label",
        &format!(
            "{HEADER}results:
  - {{policy: require-team, rule: team, result: fail}}
"
        ),
    );
    let (code, suites) = run_json(dir.path(), &[]);
    assert_eq!(code, Some(1));
    let failed: Vec<&Value> = rows(&suites[0])
        .into_iter()
        .filter(|r| r["passed"] == false)
        .collect();
    assert_eq!(failed.len(), 1, "{suites:#?}");
    assert_eq!(failed[0]["resource"], "shop/labelled");
    assert_eq!(failed[0]["reason"], "want fail, got pass");
    assert_eq!(rows(&suites[0]).len(), 3);
}

#[test]
fn a_row_without_resources_that_matches_no_result_fails() {
    let dir = suite(
        "team-label",
        &format!(
            "{HEADER}results:
  - {{policy: require-team, rule: team, kind: Deployment, result: pass}}
"
        ),
    );
    let (code, suites) = run_json(dir.path(), &[]);
    assert_eq!(code, Some(1));
    let only = rows(&suites[0]);
    assert_eq!(only.len(), 1);
    assert_eq!(only[0]["passed"], false);
    let reason = only[0]["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("no resource of kind Deployment has a result of policy \"require-team\""),
        "{reason}"
    );
}

#[test]
fn a_suite_that_checks_nothing_fails() {
    for results in ["results: []\n", ""] {
        let dir = suite("team-label", &format!("{HEADER}{results}"));
        let out = bylaw(&["test", dir.path().to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{results:?}");
        let text = stdout(&out);
        assert!(
            text.contains("ERROR: the suite has no result rows: it checks nothing"),
            "{text}"
        );
        assert!(text.contains("0 suites passed, 1 suites failed"), "{text}");
    }
}

#[test]
fn a_selector_that_selects_nothing_fails_and_unselected_suites_are_left_out() {
    let root = tempfile::tempdir().unwrap();
    let team = suite(
        "team-label",
        &format!(
            "{HEADER}results:
  - {{policy: require-team, rule: team, kind: ConfigMap, resources: [labelled], result: pass}}
"
        ),
    );
    let images = suite(
        "signed-images",
        &format!(
            "{HEADER}results:
  - {{policy: signed-images, rule: named-containers, kind: Pod, resources: [app], result: pass}}
"
        ),
    );
    for (dir, name) in [(&team, "team"), (&images, "images")] {
        let target = root.path().join(name);
        std::fs::create_dir(&target).unwrap();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, target.join(path.file_name().unwrap())).unwrap();
        }
    }
    let root_path = root.path().to_str().unwrap();

    let out = bylaw(&[
        "test",
        root_path,
        "--test-case-selector",
        "policy=no-such-*",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("selects no result row in 2 suite file(s): nothing was checked"),
        "{}",
        stderr(&out)
    );

    let (code, suites) = run_json(root.path(), &["--test-case-selector", "policy=require-*"]);
    assert_eq!(code, Some(0), "{suites:#?}");
    assert_eq!(suites.len(), 1, "{suites:#?}");
    assert_eq!(rows(&suites[0]).len(), 1);
    assert_eq!(rows(&suites[0])[0]["policy"], "require-team");
}

#[test]
fn rows_of_a_rule_bylaw_cannot_evaluate_are_errors_never_passes() {
    let dir = suite(
        "signed-images",
        &format!(
            "{HEADER}results:
  - {{policy: signed-images, rule: verify-signature, kind: Pod, resources: [app], result: pass}}
  - {{policy: signed-images, rule: verify-signature, kind: ConfigMap, resources: [settings], result: skip}}
  - {{policy: signed-images, rule: verify-signature, kind: Pod, result: pass}}
  - {{policy: signed-images, rule: named-containers, kind: Pod, resources: [app], result: pass}}
"
        ),
    );
    let (code, suites) = run_json(dir.path(), &[]);
    assert_eq!(code, Some(1));
    let rows = rows(&suites[0]);
    assert_eq!(rows.len(), 4, "{rows:#?}");
    for row in &rows[..3] {
        assert_eq!(row["passed"], false, "{row:#}");
        assert_eq!(row["actual"], "error", "{row:#}");
        let reason = row["reason"].as_str().unwrap_or("");
        assert!(
            reason.contains("got error: unsupported in bylaw: verifyImages"),
            "{reason}"
        );
    }
    // The policy's other rule is evaluated as usual.
    assert_eq!(rows[3]["passed"], true, "{:#}", rows[3]);
}

#[test]
fn apply_reports_a_rule_it_cannot_evaluate_as_an_error() {
    let dir = fixture("signed-images");
    let out = bylaw(&[
        "apply",
        dir.join("policy.yaml").to_str().unwrap(),
        "-r",
        dir.join("resources.yaml").to_str().unwrap(),
        "-o",
        "json",
    ]);
    // Nothing was violated, yet the run fails: one rule could not be evaluated.
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let results: Value = serde_json::from_slice(&out.stdout).expect("json");
    let results = results.as_array().expect("results");
    let errors: Vec<&Value> = results.iter().filter(|r| r["status"] == "error").collect();
    assert_eq!(errors.len(), 1, "{results:#?}");
    assert_eq!(errors[0]["rule"], "verify-signature");
    assert_eq!(errors[0]["resource"], "Pod/shop/app");
    assert_eq!(
        errors[0]["message"],
        "unsupported in bylaw: verifyImages; the rule cannot be evaluated"
    );
    assert!(results
        .iter()
        .any(|r| r["rule"] == "named-containers" && r["status"] == "pass"));
}

#[test]
fn every_test_document_of_a_file_is_run() {
    let dir = suite(
        "team-label",
        &format!(
            "{HEADER}results:
  - {{policy: require-team, rule: team, kind: ConfigMap, resources: [labelled], result: pass}}
---
{HEADER}results:
  - {{policy: require-team, rule: team, kind: ConfigMap, resources: [labelled], result: fail}}
"
        ),
    );
    let (code, suites) = run_json(dir.path(), &[]);
    assert_eq!(code, Some(1));
    assert_eq!(suites.len(), 2);
    assert_eq!(rows(&suites[0])[0]["passed"], true);
    assert_eq!(rows(&suites[1])[0]["passed"], false);
}
