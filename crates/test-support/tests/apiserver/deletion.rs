use bylaw_test_support::apiserver::FakeApiServer;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy, WatchEvent,
    WatchParams,
};
use kube::ResourceExt;
use serde_json::{json, Value};

use crate::{api_code, config_map, WAIT};

#[tokio::test]
async fn finalizers_hold_an_object_until_they_are_removed() {
    let server = FakeApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let mut cm = config_map("default", "held", json!({}));
    cm.metadata.finalizers = Some(vec!["bylaw.io/cleanup".into()]);
    api.create(&PostParams::default(), &cm).await.unwrap();
    let mut events = api
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    let _added = events.next().await;

    let answer = api.delete("held", &DeleteParams::default()).await.unwrap();
    let pending = answer
        .left()
        .expect("the object comes back while finalizers remain");
    assert!(pending.metadata.deletion_timestamp.is_some());
    assert!(api
        .get("held")
        .await
        .unwrap()
        .metadata
        .deletion_timestamp
        .is_some());

    // No new finalizer may be added while deleting.
    let err = api
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "finalizers": ["bylaw.io/cleanup", "other"] } })),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 422);

    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "finalizers": null } })),
    )
    .await
    .unwrap();
    assert!(
        api.get_opt("held").await.unwrap().is_none(),
        "gone once the last finalizer is removed"
    );
    let mut kinds = Vec::new();
    while kinds.last().map(String::as_str) != Some("DELETED") {
        let event = tokio::time::timeout(WAIT, events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        kinds.push(match event {
            WatchEvent::Modified(_) => "MODIFIED".to_string(),
            WatchEvent::Deleted(_) => "DELETED".to_string(),
            other => format!("{other:?}"),
        });
    }
    assert_eq!(
        kinds,
        vec!["MODIFIED", "MODIFIED", "DELETED"],
        "deletionTimestamp, finalizer removed, deleted"
    );
}

#[tokio::test]
async fn deleting_a_namespace_deletes_everything_in_it() {
    let server = FakeApiServer::start().await;
    server.insert(
        json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "doomed" } }),
    );
    server.insert(serde_json::to_value(config_map("doomed", "a", json!({}))).unwrap());
    server.insert(json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "p", "namespace": "doomed" }, "spec": { "containers": [] } }));
    let mut held = serde_json::to_value(config_map("doomed", "held", json!({}))).unwrap();
    held["metadata"]["finalizers"] = json!(["bylaw.io/cleanup"]);
    server.insert(held);
    server.insert(serde_json::to_value(config_map("default", "survivor", json!({}))).unwrap());

    let namespaces: Api<Namespace> = Api::all(server.client());
    namespaces
        .delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    let terminating = namespaces.get("doomed").await.unwrap();
    assert_eq!(
        terminating.status.unwrap().phase.as_deref(),
        Some("Terminating"),
        "held open by a finalizer"
    );
    let doomed: Api<ConfigMap> = Api::namespaced(server.client(), "doomed");
    let left: Vec<String> = doomed
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|c| c.name_any())
        .collect();
    assert_eq!(left, vec!["held"]);
    assert!(Api::<Pod>::namespaced(server.client(), "doomed")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());

    let err = doomed
        .create(
            &PostParams::default(),
            &config_map("doomed", "late", json!({})),
        )
        .await
        .unwrap_err();
    assert_eq!(
        api_code(&err),
        403,
        "no new content in a terminating namespace"
    );

    doomed
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "finalizers": null } })),
        )
        .await
        .unwrap();
    assert!(
        namespaces.get_opt("doomed").await.unwrap().is_none(),
        "the namespace goes once empty"
    );
    assert!(server
        .get("v1", "ConfigMap", Some("default"), "survivor")
        .is_some());
}

fn owner_ref(kind: &str, api_version: &str, object: &Value) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "name": object["metadata"]["name"],
        "uid": object["metadata"]["uid"],
        "controller": true,
    })
}

fn seed_deployment_chain(server: &FakeApiServer) {
    let deployment = server.insert(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "web", "namespace": "default" },
        "spec": { "selector": { "matchLabels": { "app": "web" } }, "template": { "spec": { "containers": [] } } },
    }));
    let replica_set = server.insert(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": { "name": "web-1", "namespace": "default", "ownerReferences": [owner_ref("Deployment", "apps/v1", &deployment)] },
        "spec": { "selector": { "matchLabels": { "app": "web" } } },
    }));
    for pod in ["web-1-a", "web-1-b"] {
        server.insert(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": pod, "namespace": "default", "ownerReferences": [owner_ref("ReplicaSet", "apps/v1", &replica_set)] },
            "spec": { "containers": [] },
        }));
    }
}

#[tokio::test]
async fn owned_objects_are_garbage_collected_transitively() {
    let server = FakeApiServer::start().await;
    seed_deployment_chain(&server);
    let unowned = server.insert(json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "unowned" }, "spec": { "containers": [] } }));
    let deployments: Api<Deployment> = Api::default_namespaced(server.client());
    deployments
        .delete("web", &DeleteParams::background())
        .await
        .unwrap();
    assert!(Api::<ReplicaSet>::default_namespaced(server.client())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());
    let pods: Vec<String> = Api::<Pod>::default_namespaced(server.client())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|p| p.name_any())
        .collect();
    assert_eq!(
        pods,
        vec![unowned["metadata"]["name"].as_str().unwrap().to_string()]
    );
}

#[tokio::test]
async fn orphan_propagation_keeps_dependents_without_the_owner_reference() {
    let server = FakeApiServer::start().await;
    seed_deployment_chain(&server);
    let deployments: Api<Deployment> = Api::default_namespaced(server.client());
    deployments
        .delete(
            "web",
            &DeleteParams {
                propagation_policy: Some(PropagationPolicy::Orphan),
                ..DeleteParams::default()
            },
        )
        .await
        .unwrap();
    let replica_set = Api::<ReplicaSet>::default_namespaced(server.client())
        .get("web-1")
        .await
        .unwrap();
    assert!(replica_set.owner_references().is_empty());
    assert_eq!(server.list("v1", "Pod", Some("default")).len(), 2);
}

#[tokio::test]
async fn an_object_with_a_surviving_owner_is_kept() {
    let server = FakeApiServer::start().await;
    let first =
        server.insert(serde_json::to_value(config_map("default", "first", json!({}))).unwrap());
    let second =
        server.insert(serde_json::to_value(config_map("default", "second", json!({}))).unwrap());
    let mut shared = serde_json::to_value(config_map("default", "shared", json!({}))).unwrap();
    shared["metadata"]["ownerReferences"] = json!([
        owner_ref("ConfigMap", "v1", &first),
        owner_ref("ConfigMap", "v1", &second)
    ]);
    shared["metadata"]["ownerReferences"][1]["controller"] = json!(false);
    server.insert(shared);
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    api.delete("first", &DeleteParams::default()).await.unwrap();
    assert!(
        api.get_opt("shared").await.unwrap().is_some(),
        "second still owns it"
    );
    api.delete("second", &DeleteParams::default())
        .await
        .unwrap();
    assert!(api.get_opt("shared").await.unwrap().is_none());
}

#[tokio::test]
async fn delete_collection_honours_the_label_selector() {
    let server = FakeApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    for (name, app) in [("a", "web"), ("b", "web"), ("c", "db")] {
        api.create(
            &PostParams::default(),
            &config_map("default", name, json!({ "app": app })),
        )
        .await
        .unwrap();
    }
    let deleted = api
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("app=web"),
        )
        .await
        .unwrap();
    let deleted: Vec<String> = deleted
        .left()
        .unwrap()
        .items
        .iter()
        .map(|c| c.name_any())
        .collect();
    assert_eq!(deleted, vec!["a", "b"]);
    let left: Vec<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|c| c.name_any())
        .collect();
    assert_eq!(left, vec!["c"]);
}

#[tokio::test]
async fn collect_garbage_removes_dependents_whose_owner_never_existed() {
    let server = FakeApiServer::start().await;
    let mut dangling = serde_json::to_value(config_map("default", "dangling", json!({}))).unwrap();
    dangling["metadata"]["ownerReferences"] = json!([{ "apiVersion": "v1", "kind": "ConfigMap", "name": "ghost", "uid": "00000000-0000-4000-a000-000000000000" }]);
    server.insert(dangling);
    server.insert(serde_json::to_value(config_map("default", "free", json!({}))).unwrap());
    assert!(
        server
            .get("v1", "ConfigMap", Some("default"), "dangling")
            .is_some(),
        "kept until collected"
    );
    server.collect_garbage();
    assert!(server
        .get("v1", "ConfigMap", Some("default"), "dangling")
        .is_none());
    assert!(server
        .get("v1", "ConfigMap", Some("default"), "free")
        .is_some());
}
