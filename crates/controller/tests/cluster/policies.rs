//! Policies from the API server: served, reported, their status and events.

use std::time::Duration;

use bylaw_runtime::admission::{AdmissionEvaluator, Phase, RuleResult};
use serde_json::json;

use crate::{eventually, pod_review, require_team, Harness};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_applied_is_served_and_its_status_turns_ready() {
    let harness = Harness::start().await;
    let review = pod_review("shop", json!({}), "alice", &[]);
    assert!(
        harness
            .evaluate(Phase::Validate, review.clone())
            .await
            .allowed,
        "nothing applies yet"
    );

    harness.apply(require_team("require-team", "Enforce"));
    eventually("the policy served", || {
        harness
            .served()
            .contains(&"require-team".to_owned())
            .then_some(())
    })
    .await;
    let verdict = harness.evaluate(Phase::Validate, review.clone()).await;
    assert!(!verdict.allowed);
    assert!(verdict.message.unwrap().contains("require-team:"));

    let ready = harness
        .ready_condition("ClusterPolicy", None, "require-team", "True")
        .await;
    assert_eq!(ready["reason"], "Succeeded");
    assert_eq!(ready["message"], "Ready");
    assert_eq!(ready["observedGeneration"], 1);
    let status = harness.status("ClusterPolicy", None, "require-team");
    assert_eq!(status["ready"], true);
    assert_eq!(
        status["rulecount"],
        json!({"validate": 1, "generate": 0, "mutate": 0, "verifyimages": 0})
    );
    assert_eq!(status["autogen"]["rules"][0]["name"], "autogen-check-team");
    // Written through the status subresource, with a merge patch. The fake API server logs a
    // request after the change is visible, so the status can be read before its write is in
    // the log.
    let writes = eventually("the status write in the request log", || {
        let writes: Vec<_> = harness
            .server
            .requests()
            .into_iter()
            .filter(|r| r.is_write() && r.resource == "clusterpolicies")
            .collect();
        (!writes.is_empty()).then_some(writes)
    })
    .await;
    assert!(
        writes
            .iter()
            .all(|r| r.subresource.as_deref() == Some("status")
                && r.content_type.as_deref() == Some("application/merge-patch+json")),
        "{writes:?}"
    );

    // Switched to Audit: the same review is admitted once the change is applied.
    harness.apply(require_team("require-team", "Audit"));
    eventually("the Audit version", || {
        let set = harness.cache.current()?;
        let policy = set.policies.iter().find(|p| &*p.name == "require-team")?;
        (policy.source["spec"]["validationFailureAction"] == "Audit").then_some(())
    })
    .await;
    assert!(
        harness
            .evaluate(Phase::Validate, review.clone())
            .await
            .allowed
    );

    // Deleted: no longer served.
    harness
        .server
        .remove("kyverno.io/v1", "ClusterPolicy", None, "require-team");
    eventually("the policy gone", || {
        harness.served().is_empty().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_policy_is_never_loaded_and_the_others_serve() {
    let harness = Harness::start().await;
    let mut broken = require_team("broken", "Enforce");
    broken["spec"]["rules"][0]["validate"]["deny"] =
        json!({"conditions": {"any": [{"key": "a", "operator": "Sometimes", "value": "b"}]}});
    harness.apply(broken);
    harness.apply(require_team("require-team", "Enforce"));

    let failed = harness
        .ready_condition("ClusterPolicy", None, "broken", "False")
        .await;
    assert_eq!(failed["reason"], "Failed");
    let message = failed["message"].as_str().unwrap();
    assert!(message.starts_with("spec.rules[0].validate"), "{message}");
    assert_eq!(
        harness.status("ClusterPolicy", None, "broken")["ready"],
        false
    );
    harness
        .ready_condition("ClusterPolicy", None, "require-team", "True")
        .await;
    assert_eq!(harness.served(), ["require-team"]);

    let events = eventually("a PolicyError event", || {
        let events = harness.events("PolicyError");
        (!events.is_empty()).then_some(events)
    })
    .await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["regarding"]["kind"], "ClusterPolicy");
    assert_eq!(events[0]["regarding"]["name"], "broken");
    assert_eq!(events[0]["type"], "Warning");
    assert!(events[0]["note"]
        .as_str()
        .unwrap()
        .contains("spec.rules[0].validate"));
    assert_eq!(events[0]["reportingController"], "bylaw");

    let text = harness.metrics.encode_openmetrics().unwrap();
    assert!(
        text.contains("bylaw_policies_not_loaded{reason=\"invalid\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("bylaw_policy_load_errors_total{reason=\"invalid\"} 1"),
        "{text}"
    );

    // Fixed: served and Ready.
    harness.apply(require_team("broken", "Audit"));
    harness
        .ready_condition("ClusterPolicy", None, "broken", "True")
        .await;
    eventually("the fixed policy served", || {
        (harness.served().len() == 2).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsupported_policy_is_reported_and_denies_nothing() {
    let harness = Harness::start().await;
    harness.apply(json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "Policy",
        "metadata": {"name": "signed-images", "namespace": "shop"},
        "spec": {
            "validationFailureAction": "Enforce",
            "rules": [{
                "name": "verify-signature",
                "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "verifyImages": [{"imageReferences": ["*"], "attestors": []}]
            }]
        }
    }));
    let condition = harness
        .ready_condition("Policy", Some("shop"), "signed-images", "False")
        .await;
    assert_eq!(condition["reason"], "Unsupported");
    assert_eq!(
        condition["message"],
        "rule verify-signature uses verifyImages"
    );
    assert_eq!(
        harness.status("Policy", Some("shop"), "signed-images")["rulecount"]["verifyimages"],
        1
    );
    assert!(harness.served().is_empty());
    let verdict = harness
        .evaluate(Phase::Validate, pod_review("shop", json!({}), "alice", &[]))
        .await;
    assert!(verdict.allowed && verdict.results.is_empty(), "{verdict:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_is_not_written_again_when_nothing_changed() {
    let harness = Harness::start().await;
    harness.apply(require_team("require-team", "Enforce"));
    harness
        .ready_condition("ClusterPolicy", None, "require-team", "True")
        .await;
    // Let the watch deliver the written status, then forget what was asked so far.
    tokio::time::sleep(Duration::from_millis(500)).await;
    harness.server.clear_requests();

    // Other policies come and go: every status pass looks at require-team again.
    for i in 0..3 {
        harness.apply(require_team(&format!("other-{i}"), "Audit"));
        harness
            .ready_condition("ClusterPolicy", None, &format!("other-{i}"), "True")
            .await;
    }
    // A new label (the policy is recompiled, its status stays the same) is no reason either.
    let api: kube::Api<kube::api::DynamicObject> = kube::Api::all_with(
        harness.server.client(),
        &kube::discovery::ApiResource::erase::<bylaw_api::ClusterPolicy>(&()),
    );
    api.patch(
        "require-team",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"metadata": {"labels": {"owner": "platform"}}})),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;

    let writes: Vec<String> = harness
        .server
        .requests()
        .into_iter()
        .filter(|r| r.is_write() && r.resource == "clusterpolicies" && r.subresource.is_some())
        .map(|r| r.name.unwrap_or_default())
        .collect();
    assert!(
        !writes.iter().any(|name| name == "require-team"),
        "require-team's status was written again: {writes:?}"
    );
    assert_eq!(
        writes.len(),
        3,
        "one status write per new policy: {writes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_writes_status() {
    let harness = Harness::start_follower().await;
    harness.apply(require_team("require-team", "Enforce"));
    eventually("the policy served", || {
        (!harness.served().is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        harness.status("ClusterPolicy", None, "require-team"),
        serde_json::Value::Null
    );
    assert!(
        !harness
            .server
            .requests()
            .iter()
            .any(|r| r.is_write() && r.resource == "clusterpolicies"),
        "a follower wrote status"
    );
    // Every replica serves admission.
    let verdict = harness
        .evaluate(Phase::Validate, pod_review("shop", json!({}), "alice", &[]))
        .await;
    assert!(!verdict.allowed);

    harness.elector.as_ref().unwrap().set(true);
    harness
        .ready_condition("ClusterPolicy", None, "require-team", "True")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_api_server_gone_the_last_set_serves_and_changes_arrive_after() {
    let harness = Harness::start().await;
    harness.apply(require_team("require-team", "Enforce"));
    eventually("the policy served", || {
        (!harness.served().is_empty()).then_some(())
    })
    .await;

    harness.server.stop().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let review = pod_review("shop", json!({}), "alice", &[]);
    let verdict = harness.evaluate(Phase::Validate, review.clone()).await;
    assert!(!verdict.allowed, "the last good set still enforces");
    assert!(harness.evaluator.is_ready());

    // Changed while bylaw could not watch: seen once the API server is back.
    harness.apply(require_team("require-team", "Audit"));
    harness.apply(require_team("added-while-away", "Enforce"));
    harness.server.restart().await;
    eventually("the changes made while away", || {
        let set = harness.cache.current()?;
        let audit = set.policies.iter().any(|p| {
            &*p.name == "require-team" && p.source["spec"]["validationFailureAction"] == "Audit"
        });
        (audit && set.policies.iter().any(|p| &*p.name == "added-while-away")).then_some(())
    })
    .await;
    harness
        .ready_condition("ClusterPolicy", None, "added-while-away", "True")
        .await;

    // Deleted while away: removed once the watch lists again.
    harness.server.stop().await;
    harness
        .server
        .remove("kyverno.io/v1", "ClusterPolicy", None, "added-while-away");
    harness.server.restart().await;
    eventually("the deletion made while away", || {
        (harness.served() == ["require-team"]).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compaction_relists_without_dropping_policies() {
    let harness = Harness::start().await;
    harness.apply(require_team("require-team", "Enforce"));
    eventually("the policy served", || {
        (!harness.served().is_empty()).then_some(())
    })
    .await;
    harness.server.expire_watches();
    harness.apply(require_team("second", "Enforce"));
    eventually("both served after the relist", || {
        (harness.served().len() == 2).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_denials_raise_violation_events_as_one_series() {
    let harness = Harness::start().await;
    harness.apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}));
    harness.apply(require_team("require-team", "Enforce"));
    eventually("the policy served", || {
        (!harness.served().is_empty()).then_some(())
    })
    .await;

    let review = pod_review("shop", json!({}), "alice", &[]);
    for _ in 0..3 {
        let verdict = harness.evaluate(Phase::Validate, review.clone()).await;
        assert!(!verdict.allowed);
        assert_eq!(verdict.results[0].result, RuleResult::Fail);
        harness.send_outcomes(&review, verdict);
    }
    let events = eventually("violation events with their series", || {
        let events = harness.events("PolicyViolation");
        (events.len() == 2 && events.iter().all(|e| e["series"]["count"] == 3)).then_some(events)
    })
    .await;
    let on_policy = events
        .iter()
        .find(|e| e["regarding"]["kind"] == "ClusterPolicy")
        .unwrap();
    assert_eq!(on_policy["regarding"]["name"], "require-team");
    assert_eq!(on_policy["related"]["name"], "web");
    assert_eq!(on_policy["action"], "Resource Blocked");
    assert!(on_policy["note"]
        .as_str()
        .unwrap()
        .starts_with("Pod shop/web: [check-team] fail (blocked)"));
    let on_pod = events
        .iter()
        .find(|e| e["regarding"]["kind"] == "Pod")
        .unwrap();
    assert_eq!(on_pod["metadata"]["namespace"], "shop");
    assert_eq!(on_pod["regarding"]["namespace"], "shop");
}

/// A ValidatingPolicy requiring the `team` label on Pods, with `expression` as its check.
fn require_team_cel(name: &str, expression: &str) -> serde_json::Value {
    json!({
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ValidatingPolicy",
        "metadata": {"name": name},
        "spec": {
            "validationActions": ["Deny"],
            "matchConstraints": {"resourceRules": [{
                "apiGroups": [""], "apiVersions": ["v1"],
                "operations": ["CREATE", "UPDATE"], "resources": ["pods"]
            }]},
            "validations": [{"expression": expression, "message": "label team is required"}]
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validating_policy_is_served_from_the_cluster_with_kyvernos_status_shape() {
    let harness = Harness::start().await;
    harness.apply(require_team_cel(
        "team-cel",
        "has(object.metadata.labels) && 'team' in object.metadata.labels",
    ));
    eventually("the ValidatingPolicy served", || {
        harness
            .served()
            .contains(&"team-cel".to_owned())
            .then_some(())
    })
    .await;
    let unlabelled = harness
        .evaluate(Phase::Validate, pod_review("shop", json!({}), "alice", &[]))
        .await;
    assert!(!unlabelled.allowed);
    assert!(
        unlabelled
            .message
            .as_deref()
            .is_some_and(|m| m.contains("label team is required")),
        "{:?}",
        unlabelled.message
    );
    let labelled = harness
        .evaluate(
            Phase::Validate,
            pod_review("shop", json!({"team": "a"}), "alice", &[]),
        )
        .await;
    assert!(labelled.allowed);

    let status = eventually("conditionStatus written", || {
        let status = harness.status("ValidatingPolicy", None, "team-cel");
        (status["conditionStatus"]["ready"] == true).then_some(status)
    })
    .await;
    let condition = &status["conditionStatus"]["conditions"][0];
    assert_eq!(condition["type"], "Ready");
    assert_eq!(condition["status"], "True");
    assert_eq!(condition["reason"], "Succeeded");
    assert_eq!(status["generated"], false);
    assert!(
        status.get("conditions").is_none() && status.get("ready").is_none(),
        "the ClusterPolicy shape is not written on a ValidatingPolicy: {status}"
    );

    // An expression that does not compile: never served, the field named in the status.
    harness.apply(require_team_cel("broken-cel", "object.metadata.labels.("));
    let status = eventually("the broken policy reported", || {
        let status = harness.status("ValidatingPolicy", None, "broken-cel");
        (status["conditionStatus"]["ready"] == false).then_some(status)
    })
    .await;
    let message = status["conditionStatus"]["message"].as_str().unwrap_or("");
    assert!(
        message.starts_with("spec.validations[0].expression"),
        "{message}"
    );
    assert_eq!(
        status["conditionStatus"]["conditions"][0]["reason"],
        "Failed"
    );
    assert!(!harness.served().contains(&"broken-cel".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_cel_policy_crds_classic_policies_still_load() {
    let server = bylaw_test_support::apiserver::FakeApiServer::start().await;
    server.install_crds(
        bylaw_api::all_crds()
            .iter()
            .filter(|crd| crd.spec.group == "kyverno.io" || crd.spec.group == "wgpolicyk8s.io")
            .map(|crd| serde_json::to_value(crd).unwrap()),
    );
    server.upsert(require_team("require-team", "Enforce"));
    // start_on waits for the first policy set: it must not wait for the absent kinds.
    let harness =
        Harness::start_on(server, |_| {}, bylaw_controller::Leadership::always(), None).await;
    eventually("the ClusterPolicy served", || {
        harness
            .served()
            .contains(&"require-team".to_owned())
            .then_some(())
    })
    .await;
    let verdict = harness
        .evaluate(Phase::Validate, pod_review("shop", json!({}), "alice", &[]))
        .await;
    assert!(!verdict.allowed);
}
