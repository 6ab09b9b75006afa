use bylaw_test_support::apiserver::FakeApiServer;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use serde_json::json;

use crate::{api_code, api_reason, config_map};

#[tokio::test]
async fn config_maps_are_created_read_replaced_patched_and_deleted() {
    let server = FakeApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());

    let created = api
        .create(
            &PostParams::default(),
            &config_map("default", "settings", json!({})),
        )
        .await
        .unwrap();
    assert!(!created.uid().unwrap_or_default().is_empty(), "uid filled");
    assert!(
        created.metadata.creation_timestamp.is_some(),
        "creationTimestamp filled"
    );
    assert_eq!(created.metadata.generation, Some(1));
    let first_rv: u64 = created.resource_version().unwrap().parse().unwrap();

    let again = api
        .create(
            &PostParams::default(),
            &config_map("default", "settings", json!({})),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (api_code(&again), api_reason(&again).as_str()),
        (409, "AlreadyExists")
    );

    let fetched = api.get("settings").await.unwrap();
    assert_eq!(fetched.data.as_ref().unwrap()["key"], "value");

    let mut changed = fetched.clone();
    changed
        .data
        .as_mut()
        .unwrap()
        .insert("key".into(), "other".into());
    let replaced = api
        .replace("settings", &PostParams::default(), &changed)
        .await
        .unwrap();
    let second_rv: u64 = replaced.resource_version().unwrap().parse().unwrap();
    assert!(
        second_rv > first_rv,
        "resourceVersion grows: {first_rv} → {second_rv}"
    );
    assert_eq!(
        replaced.metadata.generation,
        Some(2),
        "data is outside metadata"
    );
    assert_eq!(replaced.uid(), created.uid(), "uid kept");

    let patched = api
        .patch(
            "settings",
            &PatchParams::default(),
            &Patch::Merge(json!({ "data": { "extra": "1", "key": null } })),
        )
        .await
        .unwrap();
    let data = patched.data.unwrap();
    assert_eq!(
        (data.get("extra").map(String::as_str), data.get("key")),
        (Some("1"), None)
    );

    let labelled = api
        .patch(
            "settings",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": { "a": "b" } } })),
        )
        .await
        .unwrap();
    assert_eq!(
        labelled.metadata.generation,
        Some(3),
        "a label change keeps the generation"
    );

    api.delete("settings", &DeleteParams::default())
        .await
        .unwrap();
    let gone = api.get("settings").await.unwrap_err();
    assert_eq!(
        (api_code(&gone), api_reason(&gone).as_str()),
        (404, "NotFound")
    );
    assert_eq!(
        server.get("v1", "ConfigMap", Some("default"), "settings"),
        None
    );
}

#[tokio::test]
async fn metadata_changes_do_not_bump_generation() {
    let server = FakeApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    api.create(
        &PostParams::default(),
        &config_map("default", "cm", json!({})),
    )
    .await
    .unwrap();
    let labelled = api
        .patch(
            "cm",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": { "a": "b" } } })),
        )
        .await
        .unwrap();
    assert_eq!(labelled.metadata.generation, Some(1));
    assert_eq!(labelled.labels()["a"], "b");
}

#[tokio::test]
async fn generate_name_picks_a_fresh_name() {
    let server = FakeApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let mut template = config_map("default", "", json!({}));
    template.metadata.name = None;
    template.metadata.generate_name = Some("report-".into());
    let a = api.create(&PostParams::default(), &template).await.unwrap();
    let b = api.create(&PostParams::default(), &template).await.unwrap();
    assert!(
        a.name_any().starts_with("report-") && a.name_any().len() == "report-".len() + 5,
        "{}",
        a.name_any()
    );
    assert_ne!(a.name_any(), b.name_any());
}

#[tokio::test]
async fn a_stale_update_is_a_conflict() {
    let server = FakeApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let original = api
        .create(
            &PostParams::default(),
            &config_map("default", "cm", json!({})),
        )
        .await
        .unwrap();
    let mut first = original.clone();
    first.data = Some([("key".to_string(), "first".to_string())].into());
    api.replace("cm", &PostParams::default(), &first)
        .await
        .unwrap();

    let mut stale = original.clone();
    stale.data = Some([("key".to_string(), "stale".to_string())].into());
    let err = api
        .replace("cm", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert_eq!(
        (api_code(&err), api_reason(&err).as_str()),
        (409, "Conflict")
    );
    assert_eq!(api.get("cm").await.unwrap().data.unwrap()["key"], "first");

    // A merge patch carrying a resourceVersion is a precondition too.
    let err = api
        .patch(
            "cm",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "resourceVersion": original.resource_version() }, "data": { "key": "x" } })),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 409);
}

#[tokio::test]
async fn an_update_that_changes_nothing_writes_nothing() {
    let server = FakeApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let created = api
        .create(
            &PostParams::default(),
            &config_map("default", "cm", json!({})),
        )
        .await
        .unwrap();
    let before = server.resource_version();
    let same = api
        .replace("cm", &PostParams::default(), &created)
        .await
        .unwrap();
    assert_eq!(same.resource_version(), created.resource_version());
    assert_eq!(
        server.resource_version(),
        before,
        "no new resourceVersion handed out"
    );
}

#[tokio::test]
async fn pods_keep_status_to_the_status_subresource() {
    let server = FakeApiServer::start().await;
    let api: Api<Pod> = Api::default_namespaced(server.client());
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": "web" },
        "spec": { "containers": [{ "name": "app", "image": "nginx:1" }] },
        "status": { "phase": "Running" },
    }))
    .unwrap();
    let created = api.create(&PostParams::default(), &pod).await.unwrap();
    assert_eq!(
        created.status.unwrap().phase.as_deref(),
        Some("Pending"),
        "status of a create is the server's"
    );

    let running = api
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "phase": "Running" } })),
        )
        .await
        .unwrap();
    assert_eq!(
        running.status.as_ref().unwrap().phase.as_deref(),
        Some("Running")
    );
    assert_eq!(
        running.metadata.generation,
        Some(1),
        "status writes keep the generation"
    );

    // Writing the main resource ignores .status and bumps generation for the spec change.
    let mut changed = running.clone();
    changed.spec.as_mut().unwrap().containers[0].image = Some("nginx:2".into());
    changed.status.as_mut().unwrap().phase = Some("Failed".into());
    let replaced = api
        .replace("web", &PostParams::default(), &changed)
        .await
        .unwrap();
    assert_eq!(
        replaced.status.as_ref().unwrap().phase.as_deref(),
        Some("Running")
    );
    assert_eq!(replaced.metadata.generation, Some(2));

    // And the status subresource ignores everything but .status.
    let mut status_write = replaced.clone();
    status_write.spec.as_mut().unwrap().containers[0].image = Some("ignored:3".into());
    status_write.status.as_mut().unwrap().phase = Some("Succeeded".into());
    let after = api
        .replace_status("web", &PostParams::default(), &status_write)
        .await
        .unwrap();
    assert_eq!(
        after.spec.unwrap().containers[0].image.as_deref(),
        Some("nginx:2")
    );
    assert_eq!(after.status.unwrap().phase.as_deref(), Some("Succeeded"));
    assert_eq!(
        api.get_status("web").await.unwrap().metadata.generation,
        Some(2)
    );
}

#[tokio::test]
async fn json_and_strategic_merge_patches_apply() {
    let server = FakeApiServer::start().await;
    let api: Api<Deployment> = Api::default_namespaced(server.client());
    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": "web" },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web" } },
                "spec": { "containers": [
                    { "name": "app", "image": "app:1" },
                    { "name": "proxy", "image": "proxy:1" },
                ] },
            },
        },
    }))
    .unwrap();
    api.create(&PostParams::default(), &deployment)
        .await
        .unwrap();

    let strategic = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(json!({ "spec": { "template": { "spec": { "containers": [
                { "name": "proxy", "image": "proxy:2" }
            ] } } } })),
        )
        .await
        .unwrap();
    let images: Vec<_> = strategic
        .spec
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers
        .iter()
        .map(|c| (c.name.clone(), c.image.clone().unwrap()))
        .collect();
    assert_eq!(
        images,
        vec![
            ("app".into(), "app:1".into()),
            ("proxy".into(), "proxy:2".into())
        ]
    );

    let ops = serde_json::from_value(json!([
        { "op": "replace", "path": "/spec/replicas", "value": 3 },
        { "op": "add", "path": "/metadata/labels", "value": { "tier": "front" } },
    ]))
    .unwrap();
    let patched = api
        .patch("web", &PatchParams::default(), &Patch::Json::<()>(ops))
        .await
        .unwrap();
    assert_eq!(patched.spec.replicas, Some(3));
    assert_eq!(patched.labels()["tier"], "front");

    let failing =
        serde_json::from_value(json!([{ "op": "test", "path": "/spec/replicas", "value": 1 }]))
            .unwrap();
    let err = api
        .patch("web", &PatchParams::default(), &Patch::Json::<()>(failing))
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 422);

    let scale = api.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(3));
    assert_eq!(scale.status.unwrap().selector.as_deref(), Some("app=web"));
    let scaled = api
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 5 } })),
        )
        .await
        .unwrap();
    assert_eq!(scaled.spec.unwrap().replicas, Some(5));
    assert_eq!(api.get("web").await.unwrap().spec.replicas, Some(5));
}

#[tokio::test]
async fn invalid_writes_are_refused_with_the_field() {
    let server = FakeApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());

    let err = api
        .create(
            &PostParams::default(),
            &config_map("default", "Not_Valid", json!({})),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (api_code(&err), api_reason(&err).as_str()),
        (422, "Invalid")
    );
    let kube::Error::Api(status) = &err else {
        unreachable!()
    };
    assert!(
        status.message.contains("metadata.name"),
        "{}",
        status.message
    );

    let long_label = "x".repeat(64);
    let err = api
        .create(
            &PostParams::default(),
            &config_map("default", "ok", json!({ "app": long_label })),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 422);

    let elsewhere: Api<ConfigMap> = Api::namespaced(server.client(), "missing");
    let err = elsewhere
        .create(
            &PostParams::default(),
            &config_map("missing", "cm", json!({})),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (api_code(&err), api_reason(&err).as_str()),
        (404, "NotFound"),
        "namespace must exist"
    );

    let err = api
        .create(
            &PostParams::default(),
            &config_map("other", "cm", json!({})),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (api_code(&err), api_reason(&err).as_str()),
        (400, "BadRequest"),
        "body namespace differs from URL"
    );

    // A garbled body is a 400 Status, not a dropped connection.
    let request = http::Request::post("/api/v1/namespaces/default/configmaps")
        .header("content-type", "application/json")
        .body(b"{not json".to_vec())
        .unwrap();
    let err = server
        .client()
        .request::<ConfigMap>(request)
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 400);
}

#[tokio::test]
async fn dry_run_never_stores() {
    let server = FakeApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let answered = api
        .create(&dry, &config_map("default", "dry", json!({})))
        .await
        .unwrap();
    assert_eq!(answered.name_any(), "dry");
    assert!(api.get_opt("dry").await.unwrap().is_none());

    api.create(
        &PostParams::default(),
        &config_map("default", "real", json!({})),
    )
    .await
    .unwrap();
    let patch = PatchParams {
        dry_run: true,
        ..PatchParams::default()
    };
    let answered = api
        .patch(
            "real",
            &patch,
            &Patch::Merge(json!({ "data": { "key": "dry" } })),
        )
        .await
        .unwrap();
    assert_eq!(answered.data.unwrap()["key"], "dry");
    assert_eq!(api.get("real").await.unwrap().data.unwrap()["key"], "value");

    let delete = DeleteParams {
        dry_run: true,
        ..DeleteParams::default()
    };
    api.delete("real", &delete).await.unwrap();
    assert!(api.get_opt("real").await.unwrap().is_some());
}

#[tokio::test]
async fn delete_preconditions_guard_the_object() {
    let server = FakeApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let created = api
        .create(
            &PostParams::default(),
            &config_map("default", "cm", json!({})),
        )
        .await
        .unwrap();
    let wrong = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: Some("not-the-uid".into()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    let err = api.delete("cm", &wrong).await.unwrap_err();
    assert_eq!(api_code(&err), 409);
    let right = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: created.uid(),
            resource_version: created.resource_version(),
        }),
        ..DeleteParams::default()
    };
    let answer = api.delete("cm", &right).await.unwrap();
    assert!(
        answer.is_right(),
        "an object without finalizers is gone at once: Status Success"
    );
}

#[tokio::test]
async fn seeding_and_inspection_bypass_http() {
    let server = FakeApiServer::start().await;
    let seeded = server.insert(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": "seeded", "namespace": "team-a" },
        "spec": { "containers": [{ "name": "app", "image": "app:1" }] },
        "status": { "phase": "Running" },
    }));
    assert_eq!(seeded["status"]["phase"], "Running", "seeding keeps status");
    let namespaces: Api<Namespace> = Api::all(server.client());
    let ns = namespaces.get("team-a").await.unwrap();
    assert_eq!(
        ns.labels()["kubernetes.io/metadata.name"],
        "team-a",
        "namespaces are labelled with their name"
    );
    let pods: Api<Pod> = Api::namespaced(server.client(), "team-a");
    assert_eq!(
        pods.get("seeded")
            .await
            .unwrap()
            .status
            .unwrap()
            .phase
            .as_deref(),
        Some("Running")
    );

    let mut updated = seeded.clone();
    updated["status"]["phase"] = json!("Succeeded");
    server.upsert(updated);
    assert_eq!(
        server.get("v1", "Pod", Some("team-a"), "seeded").unwrap()["status"]["phase"],
        "Succeeded"
    );
    assert_eq!(server.list("v1", "Pod", None).len(), 1);
    assert!(server.remove("v1", "Pod", Some("team-a"), "seeded"));
    assert!(!server.remove("v1", "Pod", Some("team-a"), "seeded"));
    assert!(pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());
}

#[tokio::test]
async fn seeded_objects_keep_their_creation_time_and_clients_never_choose_it() {
    let server = FakeApiServer::start().await;
    let old = server.insert(json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "old", "creationTimestamp": "2020-01-02T03:04:05Z"},
    }));
    assert_eq!(old["metadata"]["creationTimestamp"], "2020-01-02T03:04:05Z");
    let fresh = server.insert(json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fresh"},
    }));
    assert_ne!(
        fresh["metadata"]["creationTimestamp"],
        "2020-01-02T03:04:05Z"
    );
    assert!(fresh["metadata"]["creationTimestamp"]
        .as_str()
        .is_some_and(|t| t.starts_with("20")));

    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let mut claimed = config_map("default", "claims-history", json!({}));
    claimed.metadata.creation_timestamp =
        Some(serde_json::from_value(json!("2020-01-02T03:04:05Z")).unwrap());
    let created = api.create(&PostParams::default(), &claimed).await.unwrap();
    assert_ne!(
        created.metadata.creation_timestamp, claimed.metadata.creation_timestamp,
        "a client's creationTimestamp is replaced"
    );
}
