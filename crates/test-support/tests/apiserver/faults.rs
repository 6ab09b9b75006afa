use std::time::{Duration, Instant};

use bylaw_test_support::apiserver::FakeApiServer;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;

use crate::config_map;

#[tokio::test]
async fn requests_are_recorded_with_what_they_addressed() {
    let server = FakeApiServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    api.create(
        &PostParams::default(),
        &config_map("default", "cm", json!({})),
    )
    .await
    .unwrap();
    api.patch(
        "cm",
        &PatchParams::apply("bylaw"),
        &Patch::Apply(
            json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "cm" } }),
        ),
    )
    .await
    .unwrap();
    api.list(&ListParams::default().labels("a=b"))
        .await
        .unwrap();
    let _ = api.get("missing").await;

    let requests = server.requests();
    let summary: Vec<String> = requests
        .iter()
        .map(|r| {
            let ns = r.namespace.as_deref().unwrap_or("-");
            let name = r.name.as_deref().unwrap_or("-");
            format!("{} {} {ns} {name} {}", r.verb, r.resource, r.status)
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            "create configmaps default - 201",
            "patch configmaps default cm 200",
            "list configmaps default - 200",
            "get configmaps default missing 404",
        ]
    );
    assert!(requests[0].is_write() && requests[1].is_write() && !requests[2].is_write());
    assert_eq!(requests[0].body.as_ref().unwrap()["metadata"]["name"], "cm");
    assert!(requests[1].is_apply());
    assert_eq!(
        requests[1].query_param("fieldManager").as_deref(),
        Some("bylaw")
    );
    assert_eq!(
        requests[2].query_param("labelSelector").as_deref(),
        Some("a=b")
    );
    server.clear_requests();
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn latency_delays_every_response() {
    let server = FakeApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    server.set_latency(Duration::from_millis(200));
    let started = Instant::now();
    api.list(&ListParams::default()).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "answered after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn stop_refuses_connections_and_restart_serves_the_same_data() {
    let server = FakeApiServer::start().await;
    let url = server.url();
    let api: Api<ConfigMap> = Api::default_namespaced(server.client());
    api.create(
        &PostParams::default(),
        &config_map("default", "kept", json!({})),
    )
    .await
    .unwrap();
    server.stop().await;
    let refused = tokio::net::TcpStream::connect(url.trim_start_matches("http://")).await;
    assert_eq!(
        refused.unwrap_err().kind(),
        std::io::ErrorKind::ConnectionRefused
    );
    assert!(api.get("kept").await.is_err());
    server.restart().await;
    assert_eq!(server.url(), url, "same port");
    assert!(
        api.get("kept").await.is_ok(),
        "same data, and the old client reconnects"
    );
}

#[tokio::test]
async fn the_kubeconfig_points_a_client_at_the_server() {
    let server = FakeApiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    server.write_kubeconfig(&path).unwrap();
    let kubeconfig = Kubeconfig::read_from(&path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    assert_eq!(config.default_namespace, "default");
    let client = kube::Client::try_from(config).unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    api.create(
        &PostParams::default(),
        &config_map("default", "via-kubeconfig", json!({})),
    )
    .await
    .unwrap();
    assert!(server
        .get("v1", "ConfigMap", Some("default"), "via-kubeconfig")
        .is_some());
}
