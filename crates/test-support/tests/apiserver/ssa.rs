use bylaw_test_support::apiserver::FakeApiServer;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::ResourceExt;
use serde_json::json;

use crate::{api_code, api_reason};

fn cm(data: serde_json::Value) -> serde_json::Value {
    json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "applied" }, "data": data })
}

#[tokio::test]
async fn apply_creates_updates_and_removes_what_the_manager_dropped() {
    let server = FakeApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let bylaw = PatchParams::apply("bylaw");

    let created = api
        .patch(
            "applied",
            &bylaw,
            &Patch::Apply(cm(json!({ "a": "1", "b": "2" }))),
        )
        .await
        .unwrap();
    assert_eq!(created.data.as_ref().unwrap().len(), 2);
    assert!(!created.uid().unwrap_or_default().is_empty());

    // Someone else adds a key with a plain merge patch: apply must leave it alone.
    api.patch(
        "applied",
        &PatchParams::default(),
        &Patch::Merge(json!({ "data": { "other": "x" } })),
    )
    .await
    .unwrap();

    let updated = api
        .patch("applied", &bylaw, &Patch::Apply(cm(json!({ "a": "10" }))))
        .await
        .unwrap();
    let data = updated.data.unwrap();
    assert_eq!(data.get("a").map(String::as_str), Some("10"));
    assert_eq!(
        data.get("b"),
        None,
        "b was applied by bylaw before and is omitted now"
    );
    assert_eq!(
        data.get("other").map(String::as_str),
        Some("x"),
        "fields bylaw never applied stay"
    );

    // Re-applying the same configuration changes nothing, so nothing is written.
    let before = server.resource_version();
    let same = api
        .patch("applied", &bylaw, &Patch::Apply(cm(json!({ "a": "10" }))))
        .await
        .unwrap();
    assert_eq!(same.resource_version(), updated.metadata.resource_version);
    assert_eq!(server.resource_version(), before);

    let recorded = server.requests();
    let applies: Vec<_> = recorded.iter().filter(|r| r.is_apply()).collect();
    assert_eq!(applies.len(), 3);
    assert!(applies
        .iter()
        .all(|r| r.query_param("fieldManager").as_deref() == Some("bylaw")));
}

#[tokio::test]
async fn apply_conflicts_with_another_manager_unless_forced() {
    let server = FakeApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    api.patch(
        "applied",
        &PatchParams::apply("first"),
        &Patch::Apply(cm(json!({ "shared": "1" }))),
    )
    .await
    .unwrap();

    let err = api
        .patch(
            "applied",
            &PatchParams::apply("second"),
            &Patch::Apply(cm(json!({ "shared": "2" }))),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (api_code(&err), api_reason(&err).as_str()),
        (409, "Conflict")
    );
    let kube::Error::Api(status) = &err else {
        unreachable!()
    };
    assert!(
        status.message.contains("first") && status.message.contains(".data.shared"),
        "{}",
        status.message
    );

    // The same value is shared ownership, not a conflict.
    api.patch(
        "applied",
        &PatchParams::apply("second"),
        &Patch::Apply(cm(json!({ "shared": "1" }))),
    )
    .await
    .unwrap();

    let forced = api
        .patch(
            "applied",
            &PatchParams::apply("second").force(),
            &Patch::Apply(cm(json!({ "shared": "2" }))),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.unwrap()["shared"], "2");
}

#[tokio::test]
async fn apply_needs_a_field_manager() {
    let server = FakeApiServer::start().await;
    let request = http::Request::patch("/api/v1/namespaces/default/configmaps/applied")
        .header("content-type", "application/apply-patch+yaml")
        .body(serde_json::to_vec(&cm(json!({}))).unwrap())
        .unwrap();
    let err = server
        .client()
        .request::<ConfigMap>(request)
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 400);
}

#[tokio::test]
async fn apply_accepts_yaml_bodies() {
    let server = FakeApiServer::start().await;
    let yaml =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  key: value\n";
    let request = http::Request::patch(
        "/api/v1/namespaces/default/configmaps/from-yaml?fieldManager=kubectl",
    )
    .header("content-type", "application/apply-patch+yaml")
    .body(yaml.as_bytes().to_vec())
    .unwrap();
    let created: ConfigMap = server.client().request(request).await.unwrap();
    assert_eq!(created.data.unwrap()["key"], "value");
}

#[tokio::test]
async fn apply_merges_keyed_lists_of_builtin_types() {
    let server = FakeApiServer::start().await;
    let api: Api<Deployment> = Api::default_namespaced(server.client());
    let deployment = |containers: serde_json::Value| {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "web" },
            "spec": {
                "selector": { "matchLabels": { "app": "web" } },
                "template": { "metadata": { "labels": { "app": "web" } }, "spec": { "containers": containers } },
            },
        })
    };
    api.patch(
        "web",
        &PatchParams::apply("owner"),
        &Patch::Apply(deployment(json!([{ "name": "app", "image": "app:1" }]))),
    )
    .await
    .unwrap();
    let sidecar = json!({ "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "web" },
        "spec": { "template": { "spec": { "containers": [{ "name": "proxy", "image": "proxy:1" }] } } } });
    let both = api
        .patch(
            "web",
            &PatchParams::apply("injector"),
            &Patch::Apply(sidecar),
        )
        .await
        .unwrap();
    let names: Vec<_> = both
        .spec
        .template
        .spec
        .unwrap()
        .containers
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, vec!["app", "proxy"], "containers merge by name");
}

#[tokio::test]
async fn status_is_applied_through_the_status_subresource() {
    let server = FakeApiServer::start().await;
    server.install_crds(
        bylaw_api::all_crds()
            .iter()
            .map(|c| serde_json::to_value(c).unwrap()),
    );
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kyverno.io", "v1", "ClusterPolicy"),
        "clusterpolicies",
    );
    let policies: Api<DynamicObject> = Api::all_with(server.client(), &resource);
    let policy = json!({ "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy", "metadata": { "name": "p" },
        "spec": { "rules": [] }, "status": { "ready": false } });
    let created = policies
        .patch("p", &PatchParams::apply("bylaw"), &Patch::Apply(policy))
        .await
        .unwrap();
    assert!(
        created.data.get("status").is_none(),
        "status in a main-resource apply is ignored"
    );

    let status = json!({ "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy", "metadata": { "name": "p" },
        "status": { "ready": true, "rulecount": { "validate": 1 } } });
    let ready = policies
        .patch_status("p", &PatchParams::apply("bylaw"), &Patch::Apply(status))
        .await
        .unwrap();
    assert_eq!(
        ready.data["status"],
        json!({ "ready": true, "rulecount": { "validate": 1 } })
    );
    assert_eq!(ready.metadata.generation, Some(1));
    assert_eq!(ready.data["spec"], json!({ "rules": [] }));

    let smaller = json!({ "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy", "metadata": { "name": "p" },
        "status": { "ready": true } });
    let pruned = policies
        .patch_status("p", &PatchParams::apply("bylaw"), &Patch::Apply(smaller))
        .await
        .unwrap();
    assert_eq!(
        pruned.data["status"],
        json!({ "ready": true }),
        "dropped status fields are removed"
    );
    let status_requests = server
        .requests()
        .into_iter()
        .filter(|r| r.subresource.as_deref() == Some("status"))
        .count();
    assert_eq!(status_requests, 2);
}
