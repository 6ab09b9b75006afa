//! The fake API server, exercised the way bylaw's controllers use a real one: through
//! `kube::Client`, `kube::Discovery` and kube-runtime watchers over real HTTP.

mod controller;
mod crds;
mod crud;
mod deletion;
mod faults;
mod lists;
mod rbac;
mod ssa;
mod watches;

use std::future::Future;
use std::time::Duration;

/// Polls `check` until it returns `Some`, failing the test after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// bylaw's CRDs as JSON, generated once per test binary (generation is slow in debug builds).
pub fn bylaw_crds() -> Vec<serde_json::Value> {
    static CRDS: std::sync::OnceLock<Vec<serde_json::Value>> = std::sync::OnceLock::new();
    CRDS.get_or_init(|| {
        bylaw_api::all_crds()
            .iter()
            .map(|crd| serde_json::to_value(crd).expect("CRD serializes"))
            .collect()
    })
    .clone()
}

/// Five seconds: generous for a local server, short enough to fail fast.
pub const WAIT: Duration = Duration::from_secs(5);

/// A ConfigMap body for tests.
pub fn config_map(
    namespace: &str,
    name: &str,
    labels: serde_json::Value,
) -> k8s_openapi::api::core::v1::ConfigMap {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": { "name": name, "namespace": namespace, "labels": labels },
        "data": { "key": "value" },
    }))
    .expect("valid ConfigMap")
}

/// The HTTP status code of a kube API error.
pub fn api_code(error: &kube::Error) -> u16 {
    match error {
        kube::Error::Api(status) => status.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

pub fn api_reason(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => status.reason.clone(),
        other => panic!("expected an API error, got {other:?}"),
    }
}
