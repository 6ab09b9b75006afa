//! Background scanning and PolicyReports, through `kube::Client` against the fake API server.

use std::time::Duration;

use bylaw_controller::reports::ReportOptions;
use bylaw_controller::{leadership, ClusterContextConfig, ClusterOptions, Leadership};
use bylaw_runtime::admission::Phase;
use serde_json::{json, Value};

use crate::{eventually, pod_review, require_team, Harness};

fn fast(settings: &mut (ClusterOptions, ClusterContextConfig)) {
    settings.0.reports = ReportOptions {
        flush_interval: Duration::from_millis(50),
        discovery_interval: Duration::from_secs(600),
        ..ReportOptions::default()
    };
}

async fn harness() -> Harness {
    Harness::start_with(fast, Leadership::always(), None).await
}

fn pod(namespace: &str, name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}
    })
}

fn config_map(namespace: &str, name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"k": "v"}
    })
}

/// A policy requiring a `team` label on ConfigMaps.
fn config_maps_need_team(message: &str) -> Value {
    json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": "config-maps-need-team"},
        "spec": {
            "rules": [{
                "name": "check-team",
                "match": {"any": [{"resources": {"kinds": ["ConfigMap"]}}]},
                "validate": {"message": message, "pattern": {"metadata": {"labels": {"team": "?*"}}}}
            }]
        }
    })
}

fn uid(object: &Value) -> String {
    object["metadata"]["uid"].as_str().unwrap().to_owned()
}

fn report(h: &Harness, namespace: &str, name: &str) -> Option<Value> {
    h.server.get(
        "wgpolicyk8s.io/v1alpha2",
        "PolicyReport",
        Some(namespace),
        name,
    )
}

async fn summary_becomes(h: &Harness, namespace: &str, name: &str, want: Value) -> Value {
    eventually(
        &format!("report {namespace}/{name} with summary {want}"),
        || report(h, namespace, name).filter(|r| r["summary"] == want),
    )
    .await
}

fn summary(pass: i64, fail: i64) -> Value {
    json!({"pass": pass, "fail": fail, "warn": 0, "error": 0, "skip": 0})
}

fn report_writes(h: &Harness) -> usize {
    h.server
        .requests()
        .iter()
        .filter(|r| r.is_write() && r.path.contains("policyreports"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_violating_pod_fails_and_fixing_it_flips_the_result() {
    let h = harness().await;
    let existing = h.apply(pod("shop", "web", json!({})));
    h.apply(require_team("require-team", "Audit"));
    let report = summary_becomes(&h, "shop", &uid(&existing), summary(0, 1)).await;
    assert_eq!(report["kind"], "PolicyReport");
    assert_eq!(report["scope"]["kind"], "Pod");
    assert_eq!(report["scope"]["name"], "web");
    assert_eq!(
        report["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "bylaw"
    );
    assert_eq!(
        report["metadata"]["ownerReferences"][0]["uid"],
        uid(&existing)
    );
    let result = &report["results"][0];
    assert_eq!(result["policy"], "require-team");
    assert_eq!(result["rule"], "check-team");
    assert_eq!(result["result"], "fail");
    assert_eq!(result["source"], "bylaw");
    assert!(
        result.get("properties").is_none(),
        "the scan is the default process"
    );
    assert!(
        result["message"]
            .as_str()
            .unwrap()
            .contains("label team is required"),
        "{result}"
    );

    h.apply(pod("shop", "web", json!({"team": "payments"})));
    summary_becomes(&h, "shop", &uid(&existing), summary(1, 0)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_resource_or_the_policy_removes_its_results() {
    let h = harness().await;
    let a = h.apply(pod("shop", "a", json!({})));
    let b = h.apply(pod("shop", "b", json!({"team": "x"})));
    h.apply(require_team("require-team", "Audit"));
    summary_becomes(&h, "shop", &uid(&a), summary(0, 1)).await;
    summary_becomes(&h, "shop", &uid(&b), summary(1, 0)).await;

    h.server.remove("v1", "Pod", Some("shop"), "a");
    eventually("a's report removed", || {
        report(&h, "shop", &uid(&a)).is_none().then_some(())
    })
    .await;
    assert!(report(&h, "shop", &uid(&b)).is_some());

    h.server
        .remove("kyverno.io/v1", "ClusterPolicy", None, "require-team");
    eventually("b's report removed with the policy", || {
        report(&h, "shop", &uid(&b)).is_none().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_admission_result_of_a_non_background_policy_is_reported() {
    let h = harness().await;
    let mut policy = require_team("admission-only", "Audit");
    policy["spec"]["background"] = json!(false);
    h.apply(policy);
    h.ready_condition("ClusterPolicy", None, "admission-only", "True")
        .await;
    // The scan does not evaluate it: the stored Pod gets no report from the scan.
    let stored = h.apply(pod("shop", "web", json!({})));
    let review = pod_review("shop", json!({}), "alice", &[]);
    let verdict = h.evaluate(Phase::Validate, review.clone()).await;
    assert!(verdict.allowed, "Audit admits");
    let mut outcomes = verdict.clone();
    outcomes.results.retain(|r| &*r.policy == "admission-only");
    assert!(!outcomes.results.is_empty());
    h.results.send(bylaw_runtime::ReviewOutcomes {
        phase: Phase::Validate,
        request_uid: review.uid.clone(),
        resource: bylaw_runtime::results::ResourceRef {
            kind: review.kind.clone(),
            namespace: review.namespace.clone(),
            name: "web".into(),
            uid: Some(uid(&stored)),
        },
        operation: review.operation,
        dry_run: false,
        allowed: true,
        at: std::time::SystemTime::now(),
        outcomes: outcomes.results,
    });
    let name = format!("{}-admission", uid(&stored));
    let written = summary_becomes(&h, "shop", &name, summary(0, 1)).await;
    assert_eq!(written["results"][0]["policy"], "admission-only");
    assert_eq!(
        written["results"][0]["properties"]["process"],
        "admission review"
    );
    assert!(
        report(&h, "shop", &uid(&stored)).is_none(),
        "a background: false policy is not scanned"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_written_when_nothing_changed() {
    let h = Harness::start_with(
        |s| {
            fast(s);
            s.0.reports.rescan_interval = Duration::from_millis(200);
        },
        Leadership::always(),
        None,
    )
    .await;
    let web = h.apply(pod("shop", "web", json!({})));
    h.apply(require_team("require-team", "Audit"));
    summary_becomes(&h, "shop", &uid(&web), summary(0, 1)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    h.server.clear_requests();
    let scanned = h.running.reports.as_ref().unwrap().scanned.clone();
    let before = scanned.load(std::sync::atomic::Ordering::Relaxed);
    // An unrelated change, and several periodic rescans with the same outcome.
    let mut annotated = pod("shop", "web", json!({}));
    annotated["metadata"]["annotations"] = json!({"note": "unrelated"});
    h.apply(annotated);
    eventually("three more rescans", || {
        (scanned.load(std::sync::atomic::Ordering::Relaxed) >= before + 3).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(report_writes(&h), 0, "{:?}", h.server.requests());
}

fn scanned_of(h: &Harness, kind: &str) -> u64 {
    let text = h.metrics.encode_openmetrics().unwrap();
    let prefix = format!("bylaw_background_scan_resources_total{{resource_kind=\"{kind}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_change_rescans_only_its_kinds() {
    let h = harness().await;
    let web = h.apply(pod("shop", "web", json!({})));
    let settings = h.apply(config_map("shop", "settings"));
    h.apply(config_map("shop", "more"));
    h.apply(require_team("require-team", "Audit"));
    h.apply(config_maps_need_team("ConfigMaps need a team"));
    summary_becomes(&h, "shop", &uid(&web), summary(0, 1)).await;
    summary_becomes(&h, "shop", &uid(&settings), summary(0, 1)).await;
    // Both policies' status is written; status writes are not policy changes.
    h.ready_condition("ClusterPolicy", None, "require-team", "True")
        .await;
    h.ready_condition("ClusterPolicy", None, "config-maps-need-team", "True")
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pods = scanned_of(&h, "Pod");
    let maps = scanned_of(&h, "ConfigMap");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        (scanned_of(&h, "Pod"), scanned_of(&h, "ConfigMap")),
        (pods, maps),
        "nothing is rescanned without a change"
    );

    h.apply(config_maps_need_team("every ConfigMap names its team"));
    eventually("the new message in the ConfigMap's report", || {
        report(&h, "shop", &uid(&settings)).filter(|r| {
            r["results"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("every ConfigMap names its team"))
        })
    })
    .await;
    assert_eq!(
        scanned_of(&h, "ConfigMap"),
        maps + 2,
        "both ConfigMaps rescanned"
    );
    assert_eq!(scanned_of(&h, "Pod"), pods, "Pods were not rescanned");
    let text = h.metrics.encode_openmetrics().unwrap();
    assert!(
        text.contains("rule_execution_cause=\"background_scan\""),
        "background results are counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_writes_reports_and_a_new_leader_rewrites_nothing_identical() {
    let (elector, leadership) = leadership();
    let h = Harness::start_with(fast, leadership, Some(elector)).await;
    let web = h.apply(pod("shop", "web", json!({})));
    h.apply(require_team("require-team", "Audit"));
    eventually("the scan found the Pod", || {
        h.running
            .reports
            .as_ref()
            .unwrap()
            .book
            .lock()
            .unwrap()
            .report(&uid(&web))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(report_writes(&h), 0, "a follower writes no reports");
    h.elector.as_ref().unwrap().set(true);
    summary_becomes(&h, "shop", &uid(&web), summary(0, 1)).await;
    let writes = report_writes(&h);
    assert_eq!(writes, 1, "one report, one write");

    // Leadership lost and regained (as by another replica taking over and giving back): the
    // report found in the cluster is identical, so it is not written again.
    h.elector.as_ref().unwrap().set(false);
    tokio::time::sleep(Duration::from_millis(200)).await;
    h.elector.as_ref().unwrap().set(true);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(report_writes(&h), writes);
}
