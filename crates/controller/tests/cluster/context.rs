//! What policies look up in the cluster, and the rules that bound it.

use std::time::Duration;

use bylaw_runtime::admission::{Phase, RuleResult, Verdict};
use serde_json::{json, Value};

use crate::{eventually, pod_review, Harness};

/// A policy with one rule over Pods: `context` entries, then a deny when `key` equals `value`.
fn lookup_policy(
    kind: &str,
    namespace: Option<&str>,
    context: Value,
    key: &str,
    value: &str,
) -> Value {
    let mut policy = json!({
        "apiVersion": "kyverno.io/v1",
        "kind": kind,
        "metadata": {"name": "lookup"},
        "spec": {
            "validationFailureAction": "Enforce",
            "rules": [{
                "name": "check",
                "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "context": context,
                "validate": {
                    "message": "denied by lookup",
                    "deny": {"conditions": {"any": [{"key": key, "operator": "Equals", "value": value}]}}
                }
            }]
        }
    });
    if let Some(namespace) = namespace {
        policy["metadata"]["namespace"] = json!(namespace);
    }
    policy
}

async fn serve(harness: &Harness, policy: Value) {
    let name = policy["metadata"]["name"].as_str().unwrap().to_owned();
    let source = policy.clone();
    harness.apply(policy);
    eventually(&format!("{name} served"), || {
        let set = harness.cache.current()?;
        set.policies
            .iter()
            .any(|p| *p.name == *name && p.source["spec"] == source["spec"])
            .then_some(())
    })
    .await;
}

fn first_result(verdict: &Verdict) -> (RuleResult, String) {
    let outcome = &verdict.results[0];
    (outcome.result, outcome.message.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_from_bindings_make_a_cluster_admin_exclusion_fire() {
    let harness = Harness::start().await;
    harness.apply(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "platform-admins"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "Group", "name": "platform", "apiGroup": "rbac.authorization.k8s.io"}]
    }));
    let mut policy = crate::require_team("require-team", "Enforce");
    policy["spec"]["rules"][0]["exclude"] = json!({"any": [{"clusterRoles": ["cluster-admin"]}]});
    serve(&harness, policy).await;

    let developer = pod_review("shop", json!({}), "dev", &["system:authenticated"]);
    assert!(!harness.evaluate(Phase::Validate, developer).await.allowed);
    let admin = pod_review(
        "shop",
        json!({}),
        "ops",
        &["platform", "system:authenticated"],
    );
    let mut verdict = harness.evaluate(Phase::Validate, admin.clone()).await;
    let started = std::time::Instant::now();
    while !verdict.allowed && started.elapsed() < crate::WAIT {
        // The binding is indexed shortly after the watch sees it.
        tokio::time::sleep(Duration::from_millis(50)).await;
        verdict = harness.evaluate(Phase::Validate, admin.clone()).await;
    }
    assert!(verdict.allowed, "{:?}", verdict.message);
    assert!(
        verdict.results.is_empty(),
        "the rule is excluded for cluster-admin"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_labels_come_from_the_cluster() {
    let harness = Harness::start().await;
    harness.apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod", "labels": {"env": "prod"}}}));
    harness.apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dev", "labels": {"env": "dev"}}}));
    let mut policy = crate::require_team("require-team", "Enforce");
    policy["spec"]["rules"][0]["match"]["any"][0]["resources"]["namespaceSelector"] =
        json!({"matchLabels": {"env": "prod"}});
    serve(&harness, policy).await;
    let mut denied = false;
    let started = std::time::Instant::now();
    while !denied && started.elapsed() < crate::WAIT {
        denied = !harness
            .evaluate(Phase::Validate, pod_review("prod", json!({}), "dev", &[]))
            .await
            .allowed;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(denied, "prod Pods are checked");
    let verdict = harness
        .evaluate(Phase::Validate, pod_review("dev", json!({}), "dev", &[]))
        .await;
    assert!(verdict.allowed && verdict.results.is_empty(), "{verdict:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_maps_are_fetched_once_then_watched() {
    let harness = Harness::start().await;
    harness.apply(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "registries", "namespace": "platform"},
        "data": {"blocked": "yes"}
    }));
    serve(
        &harness,
        lookup_policy(
            "ClusterPolicy",
            None,
            json!([{"name": "settings", "configMap": {"name": "registries", "namespace": "platform"}}]),
            "{{ settings.data.blocked }}",
            "yes",
        ),
    )
    .await;
    let review = pod_review("shop", json!({}), "dev", &[]);
    assert!(
        !harness
            .evaluate(Phase::Validate, review.clone())
            .await
            .allowed
    );
    assert!(
        !harness
            .evaluate(Phase::Validate, review.clone())
            .await
            .allowed
    );
    let reads = harness
        .server
        .requests()
        .into_iter()
        .filter(|r| r.resource == "configmaps" && r.verb != "watch")
        .count();
    assert_eq!(reads, 1, "one list, then the watch answers");

    harness.apply(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "registries", "namespace": "platform"},
        "data": {"blocked": "no"}
    }));
    let mut allowed = false;
    let started = std::time::Instant::now();
    while !allowed && started.elapsed() < crate::WAIT {
        allowed = harness
            .evaluate(Phase::Validate, review.clone())
            .await
            .allowed;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(allowed, "the change reached the cache through the watch");

    // Gone: the rule errors, as Kyverno's does for a missing ConfigMap.
    harness
        .server
        .remove("v1", "ConfigMap", Some("platform"), "registries");
    let mut message = String::new();
    let started = std::time::Instant::now();
    while !message.contains("not found") && started.elapsed() < crate::WAIT {
        let verdict = harness.evaluate(Phase::Validate, review.clone()).await;
        message = first_result(&verdict).1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        message.contains("configmap platform/registries not found"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespaced_policy_cannot_read_another_namespaces_config_map() {
    let harness = Harness::start().await;
    harness.apply(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "credentials", "namespace": "kube-system"},
        "data": {"token": "s3cr3t"}
    }));
    serve(
        &harness,
        lookup_policy(
            "Policy",
            Some("shop"),
            json!([{"name": "stolen", "configMap": {"name": "credentials", "namespace": "kube-system"}}]),
            "{{ stolen.data.token }}",
            "s3cr3t",
        ),
    )
    .await;
    let verdict = harness
        .evaluate(Phase::Validate, pod_review("shop", json!({}), "dev", &[]))
        .await;
    let (result, message) = first_result(&verdict);
    assert_eq!(result, RuleResult::Error);
    assert!(
        message.contains(
            "configMap namespace \"kube-system\" is different from the policy namespace \"shop\""
        ),
        "{message}"
    );
    assert!(!message.contains("s3cr3t"));
    assert!(
        !harness
            .server
            .requests()
            .iter()
            .any(|r| r.resource == "configmaps" && r.namespace.as_deref() == Some("kube-system")),
        "the API server was never asked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_calls_reach_the_api_server_within_the_policys_namespace() {
    let harness = Harness::start().await;
    harness.apply(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "existing", "namespace": "shop"},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}
    }));
    harness.apply(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db", "namespace": "kube-system"},
        "data": {"password": "aHVudGVyMg=="}
    }));
    serve(
        &harness,
        lookup_policy(
            "Policy",
            Some("shop"),
            json!([{"name": "pods", "apiCall": {
                "urlPath": "/api/v1/namespaces/{{ request.namespace }}/pods",
                "jmesPath": "items | length(@)"
            }}]),
            "{{ pods }}",
            "1",
        ),
    )
    .await;
    let verdict = harness
        .evaluate(Phase::Validate, pod_review("shop", json!({}), "dev", &[]))
        .await;
    assert!(
        !verdict.allowed,
        "one Pod exists in shop: {:?}",
        verdict.results
    );

    // The same policy asking for another namespace's secrets, directly or by `..`.
    for path in [
        "/api/v1/namespaces/kube-system/secrets",
        "/api/v1/namespaces/shop/../kube-system/secrets/db",
        "/api/v1/secrets",
    ] {
        let mut policy = lookup_policy(
            "Policy",
            Some("shop"),
            json!([{"name": "secrets", "apiCall": {"urlPath": path}}]),
            "{{ secrets.data.password }}",
            "aHVudGVyMg==",
        );
        policy["metadata"]["name"] = json!("steal");
        serve(&harness, policy).await;
        let verdict = harness
            .evaluate(
                Phase::Validate,
                pod_review("shop", json!({"team": "x"}), "dev", &[]),
            )
            .await;
        let outcome = verdict
            .results
            .iter()
            .find(|o| &*o.policy == "steal")
            .unwrap();
        assert_eq!(outcome.result, RuleResult::Error, "{path}");
        assert!(
            !outcome.message.contains("aHVudGVyMg"),
            "{path}: {}",
            outcome.message
        );
    }
    assert!(
        !harness
            .server
            .requests()
            .iter()
            .any(|r| r.resource == "secrets"),
        "no request for secrets reached the API server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_calls_are_refused_unless_enabled() {
    let harness = Harness::start().await;
    serve(
        &harness,
        lookup_policy(
            "ClusterPolicy",
            None,
            json!([{"name": "meta", "apiCall": {"service": {"url": "http://169.254.169.254/latest/meta-data/"}}}]),
            "{{ meta }}",
            "x",
        ),
    )
    .await;
    let verdict = harness
        .evaluate(Phase::Validate, pod_review("shop", json!({}), "dev", &[]))
        .await;
    let (result, message) = first_result(&verdict);
    assert_eq!(result, RuleResult::Error);
    assert!(
        message.contains("service calls are turned off"),
        "{message}"
    );

    let enabled = Harness::start_with(
        |(_, context)| context.allow_service_calls = true,
        bylaw_controller::Leadership::always(),
        None,
    )
    .await;
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:6443/api",
        "http://localhost/",
        "http://metadata.google.internal/computeMetadata/v1/",
    ] {
        let mut policy = lookup_policy(
            "ClusterPolicy",
            None,
            json!([{"name": "meta", "apiCall": {"service": {"url": url}}}]),
            "{{ meta }}",
            "x",
        );
        policy["metadata"]["name"] = json!("metadata-probe");
        serve(&enabled, policy).await;
        let verdict = enabled
            .evaluate(Phase::Validate, pod_review("shop", json!({}), "dev", &[]))
            .await;
        let (result, message) = first_result(&verdict);
        assert_eq!(result, RuleResult::Error, "{url}");
        assert!(
            message.contains("apiCall.service refused"),
            "{url}: {message}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_map_bylaw_may_not_read_fails_fast() {
    let harness = Harness::start().await;
    harness.server.deny("*", "configmaps", Some("platform"));
    serve(
        &harness,
        lookup_policy(
            "ClusterPolicy",
            None,
            json!([{"name": "settings", "configMap": {"name": "registries", "namespace": "platform"}}]),
            "{{ settings.data.blocked }}",
            "yes",
        ),
    )
    .await;
    let verdict = harness
        .evaluate(Phase::Validate, pod_review("shop", json!({}), "dev", &[]))
        .await;
    let (result, message) = first_result(&verdict);
    assert_eq!(result, RuleResult::Error);
    assert!(
        message.contains("cannot read configmap platform/registries"),
        "{message}"
    );
    // The refusal is the answer: no wait for a timeout.
    assert!(!message.contains("no answer within"), "{message}");
}
