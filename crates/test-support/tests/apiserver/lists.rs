use bylaw_test_support::apiserver::FakeApiServer;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ListParams, PostParams};
use kube::ResourceExt;
use serde_json::json;

use crate::{api_code, config_map};

async fn seed(server: &FakeApiServer) {
    for (ns, name, labels) in [
        ("default", "web", json!({ "app": "web", "tier": "front" })),
        ("default", "db", json!({ "app": "db", "tier": "back" })),
        ("default", "plain", json!({})),
        ("team-a", "web", json!({ "app": "web", "tier": "front" })),
        ("team-a", "cache", json!({ "app": "cache" })),
    ] {
        server.insert(serde_json::to_value(config_map(ns, name, labels)).unwrap());
    }
}

fn names(list: &[ConfigMap]) -> Vec<String> {
    list.iter()
        .map(|cm| format!("{}/{}", cm.namespace().unwrap_or_default(), cm.name_any()))
        .collect()
}

#[tokio::test]
async fn label_selectors_filter_lists() {
    let server = FakeApiServer::start().await;
    seed(&server).await;
    let all: Api<ConfigMap> = Api::all(server.client());
    let select = |selector: &str| {
        let all = all.clone();
        let lp = ListParams::default().labels(selector);
        async move { names(&all.list(&lp).await.unwrap().items) }
    };
    assert_eq!(select("app=web").await, vec!["default/web", "team-a/web"]);
    assert_eq!(
        select("app==web,tier=front").await,
        vec!["default/web", "team-a/web"]
    );
    assert_eq!(
        select("app!=web").await,
        vec!["default/db", "default/plain", "team-a/cache"]
    );
    assert_eq!(
        select("app in (db, cache)").await,
        vec!["default/db", "team-a/cache"]
    );
    assert_eq!(
        select("app notin (web,db)").await,
        vec!["default/plain", "team-a/cache"]
    );
    assert_eq!(
        select("tier").await,
        vec!["default/db", "default/web", "team-a/web"]
    );
    assert_eq!(select("!tier").await, vec!["default/plain", "team-a/cache"]);

    let err = all
        .list(&ListParams::default().labels("app in (web"))
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 400);
}

#[tokio::test]
async fn field_selectors_filter_by_name_and_namespace() {
    let server = FakeApiServer::start().await;
    seed(&server).await;
    let all: Api<ConfigMap> = Api::all(server.client());
    let by_name = all
        .list(&ListParams::default().fields("metadata.name=web"))
        .await
        .unwrap();
    assert_eq!(names(&by_name.items), vec!["default/web", "team-a/web"]);
    let by_ns = all
        .list(&ListParams::default().fields("metadata.namespace!=default"))
        .await
        .unwrap();
    assert_eq!(names(&by_ns.items), vec!["team-a/cache", "team-a/web"]);
    let err = all
        .list(&ListParams::default().fields("data.key=value"))
        .await
        .unwrap_err();
    assert_eq!(
        api_code(&err),
        400,
        "unsupported field selectors are refused as on a real server"
    );

    let pods: Api<Pod> = Api::all(server.client());
    server.insert(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "a", "namespace": "default" },
        "spec": { "nodeName": "node-1", "containers": [] }, "status": { "phase": "Running" },
    }));
    server.insert(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "b", "namespace": "default" },
        "spec": { "containers": [] }, "status": { "phase": "Pending" },
    }));
    let on_node = pods
        .list(&ListParams::default().fields("spec.nodeName=node-1"))
        .await
        .unwrap();
    assert_eq!(
        on_node
            .items
            .iter()
            .map(|p| p.name_any())
            .collect::<Vec<_>>(),
        vec!["a"]
    );
    let pending = pods
        .list(&ListParams::default().fields("status.phase=Pending"))
        .await
        .unwrap();
    assert_eq!(
        pending
            .items
            .iter()
            .map(|p| p.name_any())
            .collect::<Vec<_>>(),
        vec!["b"]
    );
}

#[tokio::test]
async fn small_pages_cover_the_whole_list() {
    let server = FakeApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    for i in 0..7 {
        api.create(
            &PostParams::default(),
            &config_map("default", &format!("cm-{i}"), json!({ "n": "x" })),
        )
        .await
        .unwrap();
    }
    let mut seen = Vec::new();
    let mut pages = 0;
    let mut lp = ListParams::default().limit(3).labels("n=x");
    let mut first_rv = None;
    loop {
        let page = api.list(&lp).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= 3);
        let rv = page.metadata.resource_version.clone().unwrap();
        assert_eq!(
            first_rv.get_or_insert(rv.clone()),
            &rv,
            "every page carries the list's resourceVersion"
        );
        seen.extend(page.items.iter().map(|cm| cm.name_any()));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => {
                assert_eq!(
                    page.metadata.remaining_item_count,
                    Some(7 - seen.len() as i64)
                );
                lp = lp.continue_token(&token);
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, (0..7).map(|i| format!("cm-{i}")).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_continue_token_from_before_compaction_is_gone() {
    let server = FakeApiServer::start().await;
    seed(&server).await;
    let all: Api<ConfigMap> = Api::all(server.client());
    let page = all.list(&ListParams::default().limit(2)).await.unwrap();
    let token = page.metadata.continue_.unwrap();
    server.expire_watches();
    let err = all
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), 410);
}

#[tokio::test]
async fn metadata_only_lists_carry_no_data() {
    let server = FakeApiServer::start().await;
    seed(&server).await;
    let all: Api<ConfigMap> = Api::all(server.client());
    let list = all
        .list_metadata(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 2);
    let first = &list.items[0];
    assert_eq!(first.metadata.labels.as_ref().unwrap()["app"], "web");
    assert_eq!(first.types.as_ref().unwrap().kind, "PartialObjectMetadata");
    let request = server.requests().into_iter().last().unwrap();
    assert_eq!(request.verb, "list");
    let namespaced: Api<ConfigMap> = Api::default_namespaced(server.client());
    let one = namespaced.get_metadata("web").await.unwrap();
    assert_eq!(one.metadata.name.as_deref(), Some("web"));
}
