use std::time::Duration;

use bylaw_test_support::apiserver::FakeApiServer;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::ResourceExt;
use serde_json::json;

use crate::{config_map, eventually, WAIT};

type Events =
    std::pin::Pin<Box<dyn futures::Stream<Item = kube::Result<WatchEvent<ConfigMap>>> + Send>>;

async fn next(events: &mut Events) -> WatchEvent<ConfigMap> {
    tokio::time::timeout(WAIT, events.next())
        .await
        .expect("an event in time")
        .expect("stream open")
        .expect("event")
}

fn describe(event: &WatchEvent<ConfigMap>) -> String {
    match event {
        WatchEvent::Added(cm) => format!("ADDED {}", cm.name_any()),
        WatchEvent::Modified(cm) => format!("MODIFIED {}", cm.name_any()),
        WatchEvent::Deleted(cm) => format!("DELETED {}", cm.name_any()),
        WatchEvent::Bookmark(_) => "BOOKMARK".to_string(),
        WatchEvent::Error(e) => format!("ERROR {} {}", e.code, e.reason),
    }
}

async fn watch(api: &Api<ConfigMap>, params: &WatchParams, rv: &str) -> Events {
    api.watch(params, rv).await.unwrap().boxed()
}

#[tokio::test]
async fn a_watch_sends_the_current_state_then_every_change() {
    let server = FakeApiServer::start().await;
    server.insert(serde_json::to_value(config_map("default", "a", json!({}))).unwrap());
    server.insert(serde_json::to_value(config_map("default", "b", json!({}))).unwrap());
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let mut events = watch(&api, &WatchParams::default(), "0").await;
    assert_eq!(describe(&next(&mut events).await), "ADDED a");
    assert_eq!(describe(&next(&mut events).await), "ADDED b");

    api.create(
        &PostParams::default(),
        &config_map("default", "c", json!({})),
    )
    .await
    .unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({ "data": { "k": "v" } })),
    )
    .await
    .unwrap();
    api.delete("b", &DeleteParams::default()).await.unwrap();
    // Another namespace is outside this watch.
    server.insert(serde_json::to_value(config_map("elsewhere", "x", json!({}))).unwrap());
    let mut seen = Vec::new();
    let mut last_rv = 0u64;
    for _ in 0..3 {
        let event = next(&mut events).await;
        if let WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) = &event {
            let rv: u64 = o.resource_version().unwrap().parse().unwrap();
            assert!(rv > last_rv, "resourceVersions grow along the stream");
            last_rv = rv;
        }
        seen.push(describe(&event));
    }
    assert_eq!(seen, vec!["ADDED c", "MODIFIED a", "DELETED b"]);
}

#[tokio::test]
async fn a_watch_from_a_resource_version_replays_only_later_changes() {
    let server = FakeApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let a = api
        .create(
            &PostParams::default(),
            &config_map("default", "a", json!({})),
        )
        .await
        .unwrap();
    api.create(
        &PostParams::default(),
        &config_map("default", "b", json!({})),
    )
    .await
    .unwrap();
    let mut events = watch(
        &api,
        &WatchParams::default(),
        &a.resource_version().unwrap(),
    )
    .await;
    assert_eq!(describe(&next(&mut events).await), "ADDED b");
}

#[tokio::test]
async fn a_compacted_resource_version_gets_410_expired() {
    let server = FakeApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let a = api
        .create(
            &PostParams::default(),
            &config_map("default", "a", json!({})),
        )
        .await
        .unwrap();
    server.expire_watches();
    let mut events = watch(
        &api,
        &WatchParams::default(),
        &a.resource_version().unwrap(),
    )
    .await;
    assert_eq!(describe(&next(&mut events).await), "ERROR 410 Expired");
}

#[tokio::test]
async fn a_selector_watch_sees_objects_enter_and_leave_it() {
    let server = FakeApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let mut events = watch(&api, &WatchParams::default().labels("app=web"), "0").await;
    api.create(
        &PostParams::default(),
        &config_map("default", "other", json!({ "app": "db" })),
    )
    .await
    .unwrap();
    api.create(
        &PostParams::default(),
        &config_map("default", "cm", json!({ "app": "web" })),
    )
    .await
    .unwrap();
    assert_eq!(describe(&next(&mut events).await), "ADDED cm");
    let relabel = |app: &'static str| {
        let api = api.clone();
        async move {
            api.patch(
                "cm",
                &PatchParams::default(),
                &Patch::Merge(json!({ "metadata": { "labels": { "app": app } } })),
            )
            .await
            .unwrap()
        }
    };
    relabel("db").await;
    assert_eq!(
        describe(&next(&mut events).await),
        "DELETED cm",
        "stopped matching"
    );
    relabel("web").await;
    assert_eq!(
        describe(&next(&mut events).await),
        "ADDED cm",
        "matches again"
    );
    api.patch(
        "cm",
        &PatchParams::default(),
        &Patch::Merge(json!({ "data": { "x": "y" } })),
    )
    .await
    .unwrap();
    assert_eq!(describe(&next(&mut events).await), "MODIFIED cm");

    let mut by_name = watch(
        &api,
        &WatchParams::default().fields("metadata.name=other"),
        "0",
    )
    .await;
    assert_eq!(describe(&next(&mut by_name).await), "ADDED other");
}

#[tokio::test]
async fn bookmarks_carry_the_resource_version_and_timeouts_end_the_stream() {
    let server = FakeApiServer::start().await;
    server.set_bookmark_interval(Duration::from_millis(20));
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let created = api
        .create(
            &PostParams::default(),
            &config_map("default", "a", json!({})),
        )
        .await
        .unwrap();
    let mut events = watch(
        &api,
        &WatchParams::default().timeout(1),
        &created.resource_version().unwrap(),
    )
    .await;
    let WatchEvent::Bookmark(bookmark) = next(&mut events).await else {
        panic!("expected a bookmark")
    };
    assert_eq!(
        Some(bookmark.metadata.resource_version),
        created.resource_version()
    );
    assert_eq!(bookmark.types.kind, "ConfigMap");
    // timeoutSeconds=1: the server ends the stream.
    let ended = tokio::time::timeout(WAIT, async {
        while let Some(event) = events.next().await {
            event.unwrap();
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream ends after timeoutSeconds");
}

fn start_reflector(api: Api<ConfigMap>, config: watcher::Config) -> Store<ConfigMap> {
    let (store, writer) = reflector::store();
    let stream = watcher(api, config)
        .default_backoff()
        .reflect(writer)
        .applied_objects();
    tokio::spawn(stream.for_each(|_| async {}));
    store
}

async fn wait_for_names(store: &Store<ConfigMap>, expected: &[&str], timeout: Duration) {
    let expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    eventually(&format!("store holding {expected:?}"), timeout, || {
        let mut names: Vec<String> = store.state().iter().map(|cm| cm.name_any()).collect();
        names.sort();
        let done = names == expected;
        async move { done.then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn a_reflector_follows_creates_updates_and_deletes() {
    let server = FakeApiServer::start().await;
    server.insert(serde_json::to_value(config_map("default", "seeded", json!({}))).unwrap());
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let store = start_reflector(api.clone(), watcher::Config::default());
    tokio::time::timeout(WAIT, store.wait_until_ready())
        .await
        .unwrap()
        .unwrap();
    wait_for_names(&store, &["seeded"], WAIT).await;

    api.create(
        &PostParams::default(),
        &config_map("default", "new", json!({})),
    )
    .await
    .unwrap();
    api.patch(
        "seeded",
        &PatchParams::default(),
        &Patch::Merge(json!({ "data": { "key": "changed" } })),
    )
    .await
    .unwrap();
    api.delete("new", &DeleteParams::default()).await.unwrap();
    api.create(
        &PostParams::default(),
        &config_map("default", "last", json!({})),
    )
    .await
    .unwrap();
    wait_for_names(&store, &["last", "seeded"], WAIT).await;
    let seeded = store
        .state()
        .into_iter()
        .find(|cm| cm.name_any() == "seeded")
        .unwrap();
    assert_eq!(seeded.data.as_ref().unwrap()["key"], "changed");
}

#[tokio::test]
async fn a_watcher_relists_after_its_watch_expires() {
    let server = FakeApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let store = start_reflector(api.clone(), watcher::Config::default());
    tokio::time::timeout(WAIT, store.wait_until_ready())
        .await
        .unwrap()
        .unwrap();
    api.create(
        &PostParams::default(),
        &config_map("default", "before", json!({})),
    )
    .await
    .unwrap();
    wait_for_names(&store, &["before"], WAIT).await;
    let lists_before = server
        .requests()
        .iter()
        .filter(|r| r.verb == "list")
        .count();

    server.expire_watches();
    // Changes right after the expiry reach the store through a new list: the old watch ended
    // and resuming from its resourceVersion answers 410 Gone.
    server.remove("v1", "ConfigMap", Some("default"), "before");
    server.insert(serde_json::to_value(config_map("default", "after", json!({}))).unwrap());
    wait_for_names(&store, &["after"], Duration::from_secs(10)).await;
    let requests = server.requests();
    assert!(
        requests.iter().filter(|r| r.verb == "list").count() > lists_before,
        "the watcher listed again"
    );
    // The store holds the relisted objects before the watcher opens its next watch.
    let watches = || {
        server
            .requests()
            .iter()
            .filter(|r| r.verb == "watch")
            .count()
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    while watches() < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let watches = watches();
    assert!(
        watches >= 3,
        "first watch, the expired resume, the watch after the relist: {watches}"
    );
}

#[tokio::test]
async fn a_watcher_converges_after_the_server_stops_and_restarts() {
    let server = FakeApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let store = start_reflector(api.clone(), watcher::Config::default());
    tokio::time::timeout(WAIT, store.wait_until_ready())
        .await
        .unwrap()
        .unwrap();
    api.create(
        &PostParams::default(),
        &config_map("default", "before", json!({})),
    )
    .await
    .unwrap();
    wait_for_names(&store, &["before"], WAIT).await;

    server.stop().await;
    let err = api.get("before").await.unwrap_err();
    assert!(
        !matches!(err, kube::Error::Api(_)),
        "no server answers while stopped: {err:?}"
    );
    // Changes made while the server is down are picked up after the restart.
    server.insert(serde_json::to_value(config_map("default", "while-down", json!({}))).unwrap());
    server.remove("v1", "ConfigMap", Some("default"), "before");
    server.restart().await;
    wait_for_names(&store, &["while-down"], Duration::from_secs(15)).await;
    assert_eq!(
        api.get("while-down").await.unwrap().name_any(),
        "while-down",
        "same data after restart"
    );
}

#[tokio::test]
async fn streaming_lists_end_their_initial_events_with_a_bookmark() {
    let server = FakeApiServer::start().await;
    server.insert(serde_json::to_value(config_map("default", "a", json!({}))).unwrap());
    server.insert(serde_json::to_value(config_map("default", "b", json!({}))).unwrap());
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let store = start_reflector(api.clone(), watcher::Config::default().streaming_lists());
    tokio::time::timeout(WAIT, store.wait_until_ready())
        .await
        .unwrap()
        .unwrap();
    wait_for_names(&store, &["a", "b"], WAIT).await;
    api.create(
        &PostParams::default(),
        &config_map("default", "c", json!({})),
    )
    .await
    .unwrap();
    wait_for_names(&store, &["a", "b", "c"], WAIT).await;
    let requests = server.requests();
    assert!(
        requests.iter().all(|r| r.verb != "list"),
        "no list call with streaming lists"
    );
    assert!(requests
        .iter()
        .any(|r| r.query_param("sendInitialEvents").as_deref() == Some("true")));
}

#[tokio::test]
async fn a_metadata_watcher_follows_changes_without_data() {
    let server = FakeApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let metadata: Api<PartialObjectMeta<ConfigMap>> = Api::default_namespaced(server.client());
    let stream = watcher(metadata, watcher::Config::default())
        .default_backoff()
        .applied_objects();
    let mut stream = Box::pin(stream);
    api.create(
        &PostParams::default(),
        &config_map("default", "meta", json!({ "app": "x" })),
    )
    .await
    .unwrap();
    let first = tokio::time::timeout(WAIT, stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.metadata.name.as_deref(), Some("meta"));
    assert_eq!(first.metadata.labels.as_ref().unwrap()["app"], "x");
    let list = server
        .requests()
        .into_iter()
        .find(|r| r.verb == "list")
        .expect("the initial list");
    assert!(
        list.accept
            .unwrap_or_default()
            .contains("as=PartialObjectMetadataList"),
        "metadata-only list"
    );
    // The stream is lazy: the next object can only come from the watch.
    api.create(
        &PostParams::default(),
        &config_map("default", "second", json!({})),
    )
    .await
    .unwrap();
    let second = tokio::time::timeout(WAIT, stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(second.metadata.name.as_deref(), Some("second"));
    let watch = server
        .requests()
        .into_iter()
        .find(|r| r.verb == "watch")
        .expect("a watch request");
    assert!(
        watch
            .accept
            .unwrap_or_default()
            .contains("as=PartialObjectMetadata"),
        "metadata-only watch"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_and_watches_at_once_see_every_write() {
    const WRITERS: usize = 20;
    const WATCHERS: usize = 5;
    let server = FakeApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    let mut watchers = Vec::new();
    for _ in 0..WATCHERS {
        let mut events = watch(
            &api,
            &WatchParams::default(),
            &server.resource_version().to_string(),
        )
        .await;
        watchers.push(tokio::spawn(async move {
            let mut names = Vec::new();
            while names.len() < WRITERS {
                match next(&mut events).await {
                    WatchEvent::Added(cm) => names.push(cm.name_any()),
                    WatchEvent::Bookmark(_) => {}
                    other => panic!("unexpected {}", describe(&other)),
                }
            }
            names.sort();
            names
        }));
    }
    let writers: Vec<_> = (0..WRITERS)
        .map(|i| {
            let api = Api::<ConfigMap>::default_namespaced(server.client());
            tokio::spawn(async move {
                api.create(
                    &PostParams::default(),
                    &config_map("default", &format!("cm-{i:02}"), json!({})),
                )
                .await
                .unwrap();
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let expected: Vec<String> = (0..WRITERS).map(|i| format!("cm-{i:02}")).collect();
    for watcher in watchers {
        assert_eq!(watcher.await.unwrap(), expected);
    }
}
