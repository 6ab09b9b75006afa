use bylaw_test_support::apiserver::FakeApiServer;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::{verbs, Discovery, Scope};
use kube::runtime::wait::{await_condition, conditions};
use kube::ResourceExt;
use serde_json::json;

use crate::{api_code, bylaw_crds, WAIT};

fn widget_crd() -> serde_json::Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": "widgets.example.com" },
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": { "plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wg"], "categories": ["all"] },
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "schema": { "openAPIV3Schema": { "type": "object", "x-kubernetes-preserve-unknown-fields": true } },
                "subresources": {
                    "status": {},
                    "scale": { "specReplicasPath": ".spec.size", "statusReplicasPath": ".status.size" },
                },
            }],
        },
    })
}

#[tokio::test]
async fn bylaw_crds_install_and_their_kinds_are_served() {
    let server = FakeApiServer::start().await;
    server.install_crds(bylaw_crds());
    let client = server.client();
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    for (group, version, kind) in [
        ("kyverno.io", "v1", "ClusterPolicy"),
        ("kyverno.io", "v1", "Policy"),
        ("kyverno.io", "v2", "PolicyException"),
        ("wgpolicyk8s.io", "v1alpha2", "PolicyReport"),
        ("wgpolicyk8s.io", "v1alpha2", "ClusterPolicyReport"),
    ] {
        let gvk = GroupVersionKind::gvk(group, version, kind);
        assert!(
            discovery.resolve_gvk(&gvk).is_some(),
            "{gvk:?} is discoverable"
        );
    }

    let (resource, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("kyverno.io", "v1", "ClusterPolicy"))
        .unwrap();
    assert_eq!(caps.scope, Scope::Cluster);
    assert!(
        caps.subresources
            .iter()
            .any(|(sub, _)| sub.plural == "status"),
        "status subresource listed"
    );
    let policies: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let policy: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": { "name": "require-labels" },
        "spec": { "validationFailureAction": "Enforce", "rules": [] },
    }))
    .unwrap();
    let created = policies
        .create(&PostParams::default(), &policy)
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));

    let with_status = policies
        .patch_status(
            "require-labels",
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "ready": true, "conditions": [{ "type": "Ready", "status": "True" }] } })),
        )
        .await
        .unwrap();
    assert_eq!(with_status.data["status"]["ready"], true);
    assert_eq!(
        with_status.metadata.generation,
        Some(1),
        "status writes keep the generation"
    );

    let spec_changed = policies
        .patch(
            "require-labels",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "background": false } })),
        )
        .await
        .unwrap();
    assert_eq!(spec_changed.metadata.generation, Some(2));
    assert_eq!(
        spec_changed.data["status"]["ready"], true,
        "main writes keep the status"
    );

    // Served through the older version too, with its apiVersion.
    let legacy = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kyverno.io", "v2beta1", "ClusterPolicy"),
        "clusterpolicies",
    );
    let legacy_api: Api<DynamicObject> = Api::all_with(client.clone(), &legacy);
    let through_legacy = legacy_api.get("require-labels").await.unwrap();
    assert_eq!(
        through_legacy.types.unwrap().api_version,
        "kyverno.io/v2beta1"
    );

    let (pol, _) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("kyverno.io", "v1", "Policy"))
        .unwrap();
    let namespaced: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &pol);
    let mut policy = policy.clone();
    policy.types.as_mut().unwrap().kind = "Policy".into();
    namespaced
        .create(&PostParams::default(), &policy)
        .await
        .unwrap();
    assert_eq!(
        namespaced
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    policies
        .delete("require-labels", &DeleteParams::default())
        .await
        .unwrap();
    assert!(policies
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());
}

#[tokio::test]
async fn a_crd_created_over_http_is_established_and_deleting_it_unregisters_its_kind() {
    let server = FakeApiServer::start().await;
    let client = server.client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(
        &PostParams::default(),
        &serde_json::from_value(widget_crd()).unwrap(),
    )
    .await
    .unwrap();
    let established = await_condition(
        crds.clone(),
        "widgets.example.com",
        conditions::is_crd_established(),
    );
    tokio::time::timeout(WAIT, established)
        .await
        .expect("established in time")
        .unwrap();

    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let (resource, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("example.com", "v1", "Widget"))
        .unwrap();
    assert_eq!(caps.scope, Scope::Namespaced);
    assert!(caps.supports_operation(verbs::WATCH));
    let subresources: Vec<_> = caps
        .subresources
        .iter()
        .map(|(r, _)| r.plural.clone())
        .collect();
    assert_eq!(
        subresources,
        vec!["status".to_string(), "scale".to_string()]
    );

    let widgets: Api<DynamicObject> = Api::default_namespaced_with(client.clone(), &resource);
    let widget: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Widget", "metadata": { "name": "w" }, "spec": { "size": 2 },
    }))
    .unwrap();
    widgets
        .create(&PostParams::default(), &widget)
        .await
        .unwrap();
    let request = http::Request::get("/apis/example.com/v1/namespaces/default/widgets/w/scale")
        .body(Vec::new())
        .unwrap();
    let scale: k8s_openapi::api::autoscaling::v1::Scale = client.request(request).await.unwrap();
    assert_eq!(
        scale.spec.unwrap().replicas,
        Some(2),
        "scale reads the CRD's specReplicasPath"
    );

    // Strategic merge patch is refused for custom resources, as on a real server.
    let err = widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Strategic(json!({ "spec": { "size": 3 } })),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 415);

    crds.delete("widgets.example.com", &DeleteParams::default())
        .await
        .unwrap();
    let err = widgets.get("w").await.unwrap_err();
    assert_eq!(api_code(&err), 404, "the kind is no longer served");
    let discovery = Discovery::new(client).run().await.unwrap();
    assert!(!discovery.has_group("example.com"));
    assert!(server.list("example.com/v1", "Widget", None).is_empty());
}

#[tokio::test]
async fn an_invalid_crd_is_refused() {
    let server = FakeApiServer::start().await;
    let crds: Api<CustomResourceDefinition> = Api::all(server.client());
    let mut crd = widget_crd();
    crd["metadata"]["name"] = json!("gadgets.example.com");
    let err = crds
        .create(
            &PostParams::default(),
            &serde_json::from_value(crd).unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 422);
    let kube::Error::Api(status) = err else {
        unreachable!()
    };
    assert!(
        status.message.contains("metadata.name"),
        "{}",
        status.message
    );
}

#[tokio::test]
async fn discovery_lists_builtins_with_subresources_and_short_names() {
    let server = FakeApiServer::start().await;
    server.install_crds(bylaw_crds());
    let client = server.client();
    for discovery in [
        Discovery::new(client.clone()).run().await.unwrap(),
        Discovery::new(client.clone())
            .run_aggregated()
            .await
            .unwrap(),
    ] {
        let (pods, caps) = discovery
            .resolve_gvk(&GroupVersionKind::gvk("", "v1", "Pod"))
            .unwrap();
        assert_eq!(
            (pods.plural.as_str(), caps.scope.clone()),
            ("pods", Scope::Namespaced)
        );
        assert!(caps.subresources.iter().any(|(s, _)| s.plural == "status"));
        let (_, caps) = discovery
            .resolve_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment"))
            .unwrap();
        let subs: Vec<_> = caps
            .subresources
            .iter()
            .map(|(s, _)| s.plural.clone())
            .collect();
        assert_eq!(subs, vec!["status".to_string(), "scale".to_string()]);
        let (_, caps) = discovery
            .resolve_gvk(&GroupVersionKind::gvk("", "v1", "Namespace"))
            .unwrap();
        assert_eq!(caps.scope, Scope::Cluster);
        let (_, caps) = discovery
            .resolve_gvk(&GroupVersionKind::gvk(
                "authorization.k8s.io",
                "v1",
                "SelfSubjectAccessReview",
            ))
            .unwrap();
        assert_eq!(caps.operations, vec!["create".to_string()]);
        for (group, kind) in [
            ("coordination.k8s.io", "Lease"),
            (
                "admissionregistration.k8s.io",
                "ValidatingWebhookConfiguration",
            ),
            ("events.k8s.io", "Event"),
            ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
            ("networking.k8s.io", "NetworkPolicy"),
            ("kyverno.io", "ClusterPolicy"),
        ] {
            assert!(
                discovery
                    .resolve_gvk(&GroupVersionKind::gvk(group, "v1", kind))
                    .is_some(),
                "{group} {kind}"
            );
        }
    }
    let apps = client.list_api_group_resources("apps/v1").await.unwrap();
    let deployments = apps
        .resources
        .iter()
        .find(|r| r.name == "deployments")
        .unwrap();
    assert_eq!(
        deployments.short_names.as_deref(),
        Some(&["deploy".to_string()][..])
    );
    assert_eq!(
        deployments.categories.as_deref(),
        Some(&["all".to_string()][..])
    );
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(version.major, "1");
}

#[tokio::test]
async fn custom_resources_read_list_types_from_the_schema_for_apply() {
    let server = FakeApiServer::start().await;
    let mut crd = widget_crd();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"] = json!({
        "type": "object",
        "properties": { "spec": { "type": "object", "properties": {
            "ports": { "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                       "items": { "type": "object", "properties": { "name": { "type": "string" }, "port": { "type": "integer" } } } },
            "tags": { "type": "array", "items": { "type": "string" } },
        } } },
    });
    server.install_crds([crd]);
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.com", "v1", "Widget"),
        "widgets",
    );
    let widgets: Api<DynamicObject> = Api::default_namespaced_with(server.client(), &resource);
    let apply = |manager: &'static str, spec: serde_json::Value| {
        let widgets = widgets.clone();
        async move {
            let body = json!({ "apiVersion": "example.com/v1", "kind": "Widget", "metadata": { "name": "w" }, "spec": spec });
            widgets
                .patch("w", &PatchParams::apply(manager), &Patch::Apply(body))
                .await
                .unwrap()
        }
    };
    apply(
        "a",
        json!({ "ports": [{ "name": "http", "port": 80 }], "tags": ["a"] }),
    )
    .await;
    let merged = apply("b", json!({ "ports": [{ "name": "https", "port": 443 }] })).await;
    assert_eq!(
        merged.data["spec"]["ports"],
        json!([{ "name": "http", "port": 80 }, { "name": "https", "port": 443 }])
    );
    assert_eq!(merged.name_any(), "w");
}

#[tokio::test]
async fn bylaw_crds_yaml_applies_server_side_and_reapplying_changes_nothing() {
    use serde::Deserialize;
    let server = FakeApiServer::start().await;
    // Untyped, so the test does not spend its time deserializing large schemas into structs.
    let crd_resource = ApiResource::erase::<CustomResourceDefinition>(&());
    let crds: Api<DynamicObject> = Api::all_with(server.client(), &crd_resource);
    let documents: Vec<serde_json::Value> =
        serde_yaml_ng::Deserializer::from_str(&bylaw_api::crds_yaml())
            .map(|doc| serde_json::Value::deserialize(doc).expect("`bylaw crds` output is YAML"))
            .filter(|doc| !doc.is_null())
            .collect();
    assert_eq!(documents.len(), bylaw_api::all_crds().len());
    let apply = PatchParams::apply("kubectl").force();
    for crd in &documents {
        let name = crd["metadata"]["name"].as_str().unwrap();
        crds.patch(name, &apply, &Patch::Apply(crd)).await.unwrap();
    }
    let version = server.resource_version();
    for crd in &documents {
        let name = crd["metadata"]["name"].as_str().unwrap();
        crds.patch(name, &apply, &Patch::Apply(crd)).await.unwrap();
    }
    assert_eq!(
        server.resource_version(),
        version,
        "a second apply of the same CRDs writes nothing"
    );
    let discovery = Discovery::new(server.client()).run().await.unwrap();
    assert!(discovery
        .resolve_gvk(&GroupVersionKind::gvk(
            "kyverno.io",
            "v2",
            "PolicyException"
        ))
        .is_some());
}
