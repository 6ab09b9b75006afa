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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_existing_covers_namespaces_that_existed_before_the_policy() {
    let harness = Harness::start().await;
    harness.server.insert(old_namespace("shop"));
    harness.server.insert(old_namespace("billing"));
    let mut policy = default_deny(false);
    policy["spec"]["rules"][0]["generate"]["generateExisting"] = json!(true);
    apply_policy(&harness, policy).await;
    for namespace in ["shop", "billing"] {
        eventually(&format!("the NetworkPolicy in {namespace}"), || {
            network_policy(&harness, namespace, "default-deny")
        })
        .await;
    }
}

/// A ClusterPolicy that copies Secret `default/regcred` into every namespace and keeps it in
/// step.
fn registry_secret() -> Value {
    json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": "sync-regcred"},
        "spec": {"rules": [{
            "name": "clone-regcred",
            "match": {"any": [{"resources": {"kinds": ["Namespace"]}}]},
            "generate": {
                "apiVersion": "v1",
                "kind": "Secret",
                "name": "regcred",
                "namespace": "{{request.object.metadata.name}}",
                "synchronize": true,
                "clone": {"namespace": "default", "name": "regcred"}
            }
        }]}
    })
}

fn secret(harness: &Harness, namespace: &str, name: &str) -> Option<Value> {
    harness.server.get("v1", "Secret", Some(namespace), name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synchronized_clone_follows_its_source_and_comes_back_when_deleted() {
    let harness = Harness::start().await;
    harness.server.insert(json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": "regcred", "namespace": "default", "labels": {"team": "platform"}},
        "data": {".dockerconfigjson": "e30="}
    }));
    apply_policy(&harness, registry_secret()).await;
    harness.apply(namespace("team-a"));
    let copy = eventually("the cloned Secret", || {
        secret(&harness, "team-a", "regcred")
    })
    .await;
    assert_eq!(copy["data"], json!({".dockerconfigjson": "e30="}));
    assert_eq!(copy["type"], "kubernetes.io/dockerconfigjson");
    let labels = &copy["metadata"]["labels"];
    assert_eq!(labels["team"], "platform", "the source's labels come along");
    assert_eq!(labels["generate.kyverno.io/source-kind"], "Secret");
    assert_eq!(labels["generate.kyverno.io/source-namespace"], "default");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "bylaw");

    // The source changes: the copy follows.
    let mut source = secret(&harness, "default", "regcred").unwrap();
    source["data"] = json!({".dockerconfigjson": "eyJhdXRocyI6e319"});
    harness.apply(source);
    eventually("the copy to follow its source", || {
        secret(&harness, "team-a", "regcred")
            .filter(|c| c["data"][".dockerconfigjson"] == "eyJhdXRocyI6e319")
    })
    .await;

    // Someone deletes the copy: it comes back.
    assert!(harness
        .server
        .remove("v1", "Secret", Some("team-a"), "regcred"));
    eventually("the copy recreated", || {
        secret(&harness, "team-a", "regcred")
    })
    .await;

    // Someone edits the copy: it is put back.
    let mut edited = secret(&harness, "team-a", "regcred").unwrap();
    edited["data"] = json!({".dockerconfigjson": "bWluZQ=="});
    harness.apply(edited);
    eventually("the copy reverted", || {
        secret(&harness, "team-a", "regcred")
            .filter(|c| c["data"][".dockerconfigjson"] == "eyJhdXRocyI6e319")
    })
    .await;
    let updates: Vec<_> = harness
        .server
        .requests()
        .into_iter()
        .filter(|r| r.resource == "secrets" && r.verb == "patch")
        .collect();
    assert!(
        updates.iter().all(|r| r.is_apply()
            && r.query_param("fieldManager").as_deref() == Some("bylaw")
            && r.query_param("force").as_deref() == Some("true")),
        "synchronized updates are forced server-side applies by bylaw: {updates:?}"
    );

    // The source goes: so does the copy.
    assert!(harness
        .server
        .remove("v1", "Secret", Some("default"), "regcred"));
    eventually("the copy deleted with its source", || {
        secret(&harness, "team-a", "regcred")
            .is_none()
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_synchronized_policy_removes_its_downstream_objects() {
    let harness = Harness::start().await;
    apply_policy(&harness, default_deny(true)).await;
    harness.apply(namespace("team-a"));
    eventually("the NetworkPolicy", || {
        network_policy(&harness, "team-a", "default-deny")
    })
    .await;
    assert!(harness
        .server
        .remove("kyverno.io/v1", "ClusterPolicy", None, "default-deny"));
    eventually("the NetworkPolicy deleted with its policy", || {
        network_policy(&harness, "team-a", "default-deny")
            .is_none()
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_downstream_on_policy_delete_keeps_them() {
    let harness = Harness::start().await;
    let mut policy = default_deny(true);
    policy["spec"]["rules"][0]["generate"]["orphanDownstreamOnPolicyDelete"] = json!(true);
    apply_policy(&harness, policy).await;
    harness.apply(namespace("team-a"));
    eventually("the NetworkPolicy", || {
        network_policy(&harness, "team-a", "default-deny")
    })
    .await;
    // A second policy, deleted too, shows when deletions have been worked off.
    let mut witness = default_deny(true);
    witness["metadata"]["name"] = json!("witness");
    witness["spec"]["rules"][0]["generate"]["name"] = json!("witness");
    // team-a already exists when the witness arrives: only within the same second would it
    // count as a new trigger, so the witness generates for existing namespaces.
    witness["spec"]["rules"][0]["generate"]["generateExisting"] = json!(true);
    apply_policy(&harness, witness).await;
    eventually("the witness NetworkPolicy", || {
        network_policy(&harness, "team-a", "witness")
    })
    .await;
    harness
        .server
        .remove("kyverno.io/v1", "ClusterPolicy", None, "default-deny");
    harness
        .server
        .remove("kyverno.io/v1", "ClusterPolicy", None, "witness");
    eventually("the witness deleted with its policy", || {
        network_policy(&harness, "team-a", "witness")
            .is_none()
            .then_some(())
    })
    .await;
    assert!(
        network_policy(&harness, "team-a", "default-deny").is_some(),
        "orphaned, as the policy asked"
    );
}

/// A synchronized rule triggered by labelled ConfigMaps in `apps`, writing a Secret next to
/// each.
fn config_secret_policy(value: &str) -> Value {
    json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": "config-secret"},
        "spec": {"rules": [{
            "name": "companion",
            "match": {"any": [{"resources": {
                "kinds": ["ConfigMap"],
                "selector": {"matchLabels": {"companion": "yes"}}
            }}]},
            "generate": {
                "apiVersion": "v1", "kind": "Secret",
                "name": "{{request.object.metadata.name}}-companion",
                "namespace": "{{request.object.metadata.namespace}}",
                "synchronize": true,
                "data": {"stringData": {"value": value}}
            }
        }]}
    })
}

fn config_map(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": "apps", "labels": labels}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synchronized_downstream_follows_the_policy_and_goes_with_its_trigger() {
    let harness = Harness::start().await;
    apply_policy(&harness, config_secret_policy("one")).await;
    harness.apply(config_map("web", json!({"companion": "yes"})));
    harness.apply(config_map("db", json!({"companion": "yes"})));
    for name in ["web-companion", "db-companion"] {
        eventually(name, || {
            secret(&harness, "apps", name).filter(|s| s["stringData"]["value"] == "one")
        })
        .await;
    }

    // The policy's data changes: downstream objects follow.
    harness.apply(config_secret_policy("two"));
    eventually("the data change carried over", || {
        secret(&harness, "apps", "web-companion").filter(|s| s["stringData"]["value"] == "two")
    })
    .await;

    // The trigger stops matching: its downstream object goes.
    harness.apply(config_map("web", json!({"companion": "no"})));
    eventually("web-companion deleted", || {
        secret(&harness, "apps", "web-companion")
            .is_none()
            .then_some(())
    })
    .await;

    // The trigger is deleted: so is its downstream object.
    harness.server.remove("v1", "ConfigMap", Some("apps"), "db");
    eventually("db-companion deleted", || {
        secret(&harness, "apps", "db-companion")
            .is_none()
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_survives_a_restart_between_trigger_and_generation() {
    let harness = Harness::start().await;
    apply_policy(&harness, default_deny(false)).await;
    // bylaw goes away; a namespace is created while nobody generates.
    harness.stop_controllers();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    harness.server.insert(namespace("while-down"));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(network_policy(&harness, "while-down", "default-deny").is_none());

    let harness = harness.restart().await;
    eventually("the NetworkPolicy generated after the restart", || {
        network_policy(&harness, "while-down", "default-deny")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_generates_nothing_until_it_leads() {
    let harness = Harness::start_follower().await;
    harness.apply(default_deny(false));
    eventually("policy served", || {
        harness
            .served()
            .contains(&"default-deny".to_owned())
            .then_some(())
    })
    .await;
    harness.apply(namespace("team-a"));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(network_policy(&harness, "team-a", "default-deny").is_none());
    harness.elector.as_ref().unwrap().set(true);
    eventually("the NetworkPolicy once leading", || {
        network_policy(&harness, "team-a", "default-deny")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_permission_the_policy_gets_an_event_and_the_others_go_on() {
    let harness = Harness::start().await;
    harness
        .server
        .deny("create", "networkpolicies.networking.k8s.io", None);
    apply_policy(&harness, default_deny(false)).await;
    apply_policy(&harness, config_secret_policy("one")).await;
    harness.apply(namespace("apps"));
    harness.apply(config_map("web", json!({"companion": "yes"})));

    eventually("the other policy's Secret", || {
        secret(&harness, "apps", "web-companion")
    })
    .await;
    let event = eventually("a PolicyError event naming verb and resource", || {
        harness.events("PolicyError").into_iter().find(|e| {
            e["regarding"]["name"] == "default-deny"
                && e["note"].as_str().is_some_and(|n| {
                    n.contains("create networkpolicies.networking.k8s.io in namespace apps")
                })
        })
    })
    .await;
    assert_eq!(event["regarding"]["kind"], "ClusterPolicy");
    assert_eq!(event["type"], "Warning");
    assert!(network_policy(&harness, "apps", "default-deny").is_none());
    let message = eventually("the policy's status names the permission", || {
        harness.status("ClusterPolicy", None, "default-deny")["generate"]["message"]
            .as_str()
            .map(str::to_owned)
    })
    .await;
    assert!(
        message.starts_with(
            "bylaw is not allowed to create networkpolicies.networking.k8s.io in namespace "
        ),
        "{message}"
    );
    assert_eq!(
        harness.status("ClusterPolicy", None, "default-deny")["ready"],
        true,
        "the policy itself stays Ready and served"
    );

    // Once granted, the retry succeeds and the status message goes.
    harness.server.allow_all();
    eventually("the NetworkPolicy once allowed", || {
        network_policy(&harness, "apps", "default-deny")
    })
    .await;
    eventually("the status message cleared", || {
        harness.status("ClusterPolicy", None, "default-deny")["generate"]
            .is_null()
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespaced_policy_generates_only_into_its_own_namespace() {
    let harness = Harness::start().await;
    harness.apply(namespace("team-a"));
    harness.apply(namespace("team-b"));
    let policy = json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "Policy",
        "metadata": {"name": "spread", "namespace": "team-a"},
        "spec": {"rules": [{
            "name": "own",
            "match": {"any": [{"resources": {"kinds": ["ConfigMap"]}}]},
            "generate": {"apiVersion": "v1", "kind": "Secret", "name": "own",
                         "namespace": "team-a", "data": {"stringData": {"a": "b"}}}
        }, {
            "name": "escape",
            "match": {"any": [{"resources": {"kinds": ["ConfigMap"]}}]},
            "generate": {"apiVersion": "v1", "kind": "Secret", "name": "escaped",
                         "namespace": "team-b", "data": {"stringData": {"a": "b"}}}
        }]}
    });
    apply_policy(&harness, policy).await;
    harness.apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": "trigger", "namespace": "team-a"}}));
    // A ConfigMap in another namespace is no trigger for it.
    harness.apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": "elsewhere", "namespace": "team-b"}}));
    eventually("the Secret in the policy's namespace", || {
        secret(&harness, "team-a", "own")
    })
    .await;
    let message = eventually("the refusal in the policy's status", || {
        harness.status("Policy", Some("team-a"), "spread")["generate"]["message"]
            .as_str()
            .map(str::to_owned)
    })
    .await;
    assert!(
        message.starts_with("rule escape: ")
            && message.contains("\"team-b\"")
            && message.contains("policy namespace \"team-a\""),
        "{message}"
    );
    assert!(secret(&harness, "team-b", "escaped").is_none());
    assert!(harness.server.requests().iter().all(|r| !(r.is_write()
        && r.resource == "secrets"
        && r.namespace.as_deref() == Some("team-b"))));
}

/// A mutate-existing policy: when a Namespace is admitted (or the policy applied), label the
/// ConfigMaps in it.
fn label_config_maps(on_policy_update: bool) -> Value {
    json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": "audit-label"},
        "spec": {"rules": [{
            "name": "label-config-maps",
            "match": {"any": [{"resources": {"kinds": ["Namespace"]}}]},
            "mutate": {
                "mutateExistingOnPolicyUpdate": on_policy_update,
                "targets": [{"apiVersion": "v1", "kind": "ConfigMap",
                             "namespace": "{{request.object.metadata.name}}"}],
                "patchStrategicMerge": {"metadata": {"labels": {"audited": "true"}}}
            }
        }]}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutate_existing_policy_patches_existing_config_maps_when_applied() {
    let harness = Harness::start().await;
    harness.server.insert(old_namespace("shop"));
    for name in ["a", "b"] {
        harness
            .server
            .insert(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "shop", "labels": {"owner": "shop"}},
            "data": {"k": "v"}}));
    }
    apply_policy(&harness, label_config_maps(true)).await;
    for name in ["a", "b"] {
        let patched = eventually(&format!("ConfigMap {name} labelled"), || {
            harness
                .server
                .get("v1", "ConfigMap", Some("shop"), name)
                .filter(|c| c["metadata"]["labels"]["audited"] == "true")
        })
        .await;
        assert_eq!(patched["metadata"]["labels"]["owner"], "shop");
        assert_eq!(patched["data"], json!({"k": "v"}));
    }
    let patches: Vec<_> = harness
        .server
        .requests()
        .into_iter()
        .filter(|r| r.resource == "configmaps" && r.is_write())
        .collect();
    assert_eq!(patches.len(), 2, "{patches:?}");
    for patch in &patches {
        assert_eq!(patch.verb, "patch");
        assert_eq!(
            patch.content_type.as_deref(),
            Some("application/merge-patch+json")
        );
        let body = patch.body.as_ref().unwrap();
        assert_eq!(
            body["metadata"]["labels"],
            json!({"audited": "true"}),
            "only what the rule changed"
        );
        assert!(
            body["metadata"]["resourceVersion"].is_string(),
            "optimistic concurrency: {body}"
        );
        assert!(body.get("data").is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_flag_mutate_existing_waits_for_a_trigger() {
    let harness = Harness::start().await;
    harness.server.insert(old_namespace("shop"));
    harness
        .server
        .insert(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "a", "namespace": "shop"}}));
    apply_policy(&harness, label_config_maps(false)).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let untouched = harness
        .server
        .get("v1", "ConfigMap", Some("shop"), "a")
        .unwrap();
    assert!(untouched["metadata"]["labels"]["audited"].is_null());

    // The namespace is updated (admitted again): now its ConfigMaps are patched.
    let mut shop = harness.server.get("v1", "Namespace", None, "shop").unwrap();
    shop["metadata"]["labels"] = json!({"tier": "gold"});
    harness.apply(shop);
    eventually("ConfigMap a labelled after the trigger changed", || {
        harness
            .server
            .get("v1", "ConfigMap", Some("shop"), "a")
            .filter(|c| c["metadata"]["labels"]["audited"] == "true")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clone_list_copies_every_selected_source_and_follows_them() {
    let harness = Harness::start().await;
    for (name, labels) in [
        ("shared-a", json!({"share": "yes"})),
        ("shared-b", json!({"share": "yes"})),
        ("private", json!({})),
    ] {
        harness
            .server
            .insert(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "platform", "labels": labels},
            "data": {"from": name}}));
    }
    let policy = json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": "share-config"},
        "spec": {"rules": [{
            "name": "share",
            "match": {"any": [{"resources": {"kinds": ["Namespace"], "names": ["team-*"]}}]},
            "generate": {
                "namespace": "{{request.object.metadata.name}}",
                "synchronize": true,
                "cloneList": {"namespace": "platform", "kinds": ["v1/ConfigMap"],
                              "selector": {"matchLabels": {"share": "yes"}}}
            }
        }]}
    });
    apply_policy(&harness, policy).await;
    harness.apply(namespace("team-a"));
    for name in ["shared-a", "shared-b"] {
        let copy = eventually(name, || {
            harness.server.get("v1", "ConfigMap", Some("team-a"), name)
        })
        .await;
        assert_eq!(copy["data"]["from"], name);
        assert_eq!(
            copy["metadata"]["labels"]["generate.kyverno.io/source-namespace"],
            "platform"
        );
    }
    assert!(harness
        .server
        .get("v1", "ConfigMap", Some("team-a"), "private")
        .is_none());

    let mut source = harness
        .server
        .get("v1", "ConfigMap", Some("platform"), "shared-b")
        .unwrap();
    source["data"]["from"] = json!("changed");
    harness.apply(source);
    eventually("the copy follows", || {
        harness
            .server
            .get("v1", "ConfigMap", Some("team-a"), "shared-b")
            .filter(|c| c["data"]["from"] == "changed")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreach_generates_one_object_per_element() {
    let harness = Harness::start().await;
    let policy = json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": "quota-per-tier"},
        "spec": {"rules": [{
            "name": "quotas",
            "match": {"any": [{"resources": {"kinds": ["ConfigMap"], "names": ["tiers"]}}]},
            "generate": {
                "synchronize": true,
                "foreach": [{
                    "list": "request.object.data.tiers | split(@, ',')",
                    "apiVersion": "v1",
                    "kind": "ResourceQuota",
                    "name": "quota-{{element}}",
                    "namespace": "{{request.object.metadata.namespace}}",
                    "data": {"spec": {"hard": {"pods": "10"}}}
                }]
            }
        }]}
    });
    apply_policy(&harness, policy).await;
    harness.apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "tiers", "namespace": "shop"}, "data": {"tiers": "gold,silver"}}));
    for name in ["quota-gold", "quota-silver"] {
        let quota = eventually(name, || {
            harness
                .server
                .get("v1", "ResourceQuota", Some("shop"), name)
        })
        .await;
        assert_eq!(quota["spec"]["hard"]["pods"], "10");
        assert_eq!(
            quota["metadata"]["labels"]["generate.kyverno.io/rule-name"],
            "quotas"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_that_names_delete_generates_when_its_trigger_goes() {
    let harness = Harness::start().await;
    let policy = json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": "tombstones"},
        "spec": {"rules": [{
            "name": "tombstone",
            "match": {"any": [{"resources": {"kinds": ["ConfigMap"], "operations": ["DELETE"],
                                             "selector": {"matchLabels": {"keep-record": "yes"}}}}]},
            "generate": {
                "apiVersion": "v1", "kind": "ConfigMap",
                "name": "{{request.oldObject.metadata.name}}-deleted",
                "namespace": "{{request.oldObject.metadata.namespace}}",
                "data": {"data": {"was": "{{request.oldObject.metadata.name}}"}}
            }
        }]}
    });
    apply_policy(&harness, policy).await;
    harness.apply(config_map("web", json!({"keep-record": "yes"})));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        harness
            .server
            .get("v1", "ConfigMap", Some("apps"), "web-deleted")
            .is_none(),
        "nothing on CREATE"
    );
    harness
        .server
        .remove("v1", "ConfigMap", Some("apps"), "web");
    let tombstone = eventually("the tombstone", || {
        harness
            .server
            .get("v1", "ConfigMap", Some("apps"), "web-deleted")
    })
    .await;
    assert_eq!(tombstone["data"]["was"], "web");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_with_many_triggers_does_not_starve_the_others() {
    let harness = Harness::start().await;
    const MANY: usize = 400;
    for n in 0..MANY {
        harness
            .server
            .insert(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("cm-{n}"), "namespace": "bulk",
                         "creationTimestamp": "2020-01-01T00:00:00Z"}}));
    }
    let bulk = json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": "bulk"},
        "spec": {"rules": [{
            "name": "copy",
            "match": {"any": [{"resources": {"kinds": ["ConfigMap"], "namespaces": ["bulk"]}}]},
            "generate": {
                "generateExisting": true,
                "apiVersion": "v1", "kind": "Secret",
                "name": "{{request.object.metadata.name}}-copy",
                "namespace": "bulk",
                "data": {"stringData": {"a": "b"}}
            }
        }]}
    });
    apply_policy(&harness, default_deny(false)).await;
    apply_policy(&harness, bulk).await;
    // The bulk policy's work (rate-limited to 50/s after a burst of 100) is under way …
    eventually("bulk generation started", || {
        (!harness.server.list("v1", "Secret", Some("bulk")).is_empty()).then_some(())
    })
    .await;
    // … when a namespace arrives: its NetworkPolicy does not wait for the bulk to finish.
    harness.apply(namespace("urgent"));
    eventually("the urgent NetworkPolicy", || {
        network_policy(&harness, "urgent", "default-deny")
    })
    .await;
    let done = harness.server.list("v1", "Secret", Some("bulk")).len();
    assert!(
        done < MANY,
        "the other policy took its turn before the bulk policy finished ({done} of {MANY})"
    );
    eventually("the bulk policy finishes too", || {
        (harness.server.list("v1", "Secret", Some("bulk")).len() == MANY).then_some(())
    })
    .await;
}
