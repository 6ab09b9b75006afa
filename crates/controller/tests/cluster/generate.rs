//! Generate and mutate-existing rules carried out by the controllers of `bylaw serve` against
//! the fake API server: objects appear, follow, disappear and get patched as the policies say.

use serde_json::{json, Value};

use crate::{eventually, Harness};

/// A ClusterPolicy that gives every namespace a default-deny NetworkPolicy.
pub fn default_deny(synchronize: bool) -> Value {
    json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": "default-deny"},
        "spec": {"rules": [{
            "name": "default-deny",
            "match": {"any": [{"resources": {"kinds": ["Namespace"]}}]},
            "exclude": {"any": [{"resources": {"namespaces": ["kube-system"]}}]},
            "generate": {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "name": "default-deny",
                "namespace": "{{request.object.metadata.name}}",
                "synchronize": synchronize,
                "data": {"spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}
            }
        }]}
    })
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

/// A namespace created long before any policy.
fn old_namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace",
           "metadata": {"name": name, "creationTimestamp": "2020-01-01T00:00:00Z"}})
}

pub fn network_policy(harness: &Harness, namespace: &str, name: &str) -> Option<Value> {
    harness.server.get(
        "networking.k8s.io/v1",
        "NetworkPolicy",
        Some(namespace),
        name,
    )
}

/// Applies a policy and waits until it is served (the controllers act on served policies).
pub async fn apply_policy(harness: &Harness, policy: Value) {
    let key = match policy
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
    {
        Some(ns) => format!("{ns}/{}", policy["metadata"]["name"].as_str().unwrap()),
        None => policy["metadata"]["name"].as_str().unwrap().to_owned(),
    };
    harness.apply(policy);
    eventually(&format!("policy {key} served"), || {
        harness.served().contains(&key).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_namespace_gets_the_default_network_policy() {
    let harness = Harness::start().await;
    apply_policy(&harness, default_deny(false)).await;
    let created = harness.apply(namespace("team-a"));

    let generated = eventually("the NetworkPolicy in team-a", || {
        network_policy(&harness, "team-a", "default-deny")
    })
    .await;
    assert_eq!(
        generated["spec"],
        json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
    );
    let labels = &generated["metadata"]["labels"];
    assert_eq!(labels["app.kubernetes.io/managed-by"], "bylaw");
    assert_eq!(labels["generate.kyverno.io/policy-name"], "default-deny");
    assert_eq!(labels["generate.kyverno.io/policy-namespace"], "");
    assert_eq!(labels["generate.kyverno.io/rule-name"], "default-deny");
    assert_eq!(labels["generate.kyverno.io/trigger-kind"], "Namespace");
    assert_eq!(labels["generate.kyverno.io/trigger-version"], "v1");
    assert_eq!(labels["generate.kyverno.io/trigger-group"], "");
    assert_eq!(
        labels["generate.kyverno.io/trigger-uid"],
        created["metadata"]["uid"]
    );
    let creates: Vec<_> = harness
        .server
        .requests()
        .into_iter()
        .filter(|r| r.resource == "networkpolicies" && r.is_write())
        .collect();
    assert_eq!(creates.len(), 1, "{creates:?}");
    assert_eq!(creates[0].verb, "create");
    assert_eq!(
        creates[0].query_param("fieldManager").as_deref(),
        Some("bylaw")
    );

    // Excluded namespaces get nothing.
    harness.apply(namespace("kube-system"));
    harness.apply(namespace("team-b"));
    eventually("the NetworkPolicy in team-b", || {
        network_policy(&harness, "team-b", "default-deny")
    })
    .await;
    assert!(network_policy(&harness, "kube-system", "default-deny").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_synchronize_a_generated_object_is_left_to_its_owners() {
    let harness = Harness::start().await;
    apply_policy(&harness, default_deny(false)).await;
    harness.apply(namespace("team-a"));
    let mut generated = eventually("the NetworkPolicy", || {
        network_policy(&harness, "team-a", "default-deny")
    })
    .await;
    // The owner changes it and then deletes it; bylaw leaves both alone.
    generated["spec"]["policyTypes"] = json!(["Ingress"]);
    harness.apply(generated);
    harness.server.remove(
        "networking.k8s.io/v1",
        "NetworkPolicy",
        Some("team-a"),
        "default-deny",
    );
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(network_policy(&harness, "team-a", "default-deny").is_none());
    let writes = harness
        .server
        .requests()
        .into_iter()
        .filter(|r| r.resource == "networkpolicies" && r.is_write())
        .count();
    assert_eq!(writes, 1, "created once, then never touched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_older_than_the_policy_get_nothing_without_generate_existing() {
    let harness = Harness::start().await;
    harness.server.insert(old_namespace("before"));
    apply_policy(&harness, default_deny(false)).await;
    harness.apply(namespace("after"));
    eventually("the NetworkPolicy in the new namespace", || {
        network_policy(&harness, "after", "default-deny")
    })
    .await;
    assert!(
        network_policy(&harness, "before", "default-deny").is_none(),
        "an existing namespace is not a trigger without generateExisting"
    );
}
