//! Kyverno advisories that concern the in-cluster server, performed against `bylaw serve
//! --kubeconfig` with the fake API server. The engine-level advisories are in
//! crates/engine/tests/advisories.rs; docs/security.md lists them all.

mod support;

use std::ffi::OsString;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bylaw_test_support::apiserver::FakeApiServer;
use serde_json::{json, Value};
use support::Serve;

const WAIT: Duration = Duration::from_secs(30);

fn pod_review() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "advisory-1",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "miner",
            "namespace": "shop",
            "operation": "CREATE",
            "userInfo": {"username": "dev", "groups": ["system:authenticated"]},
            "object": {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "miner", "namespace": "shop"},
                "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}
            }
        }
    }))
    .unwrap()
}

fn deny_all(name: &str) -> Value {
    json!({
        "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
        "metadata": {"name": name},
        "spec": {"validationFailureAction": "Enforce", "background": false, "rules": [{
            "name": "check-team",
            "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
            "validate": {"message": "label team is required",
                         "pattern": {"metadata": {"labels": {"team": "?*"}}}}
        }]}
    })
}

fn exception_in(namespace: &str) -> Value {
    json!({
        "apiVersion": "kyverno.io/v2", "kind": "PolicyException",
        "metadata": {"name": format!("let-miner-in-{namespace}"), "namespace": namespace},
        "spec": {
            "exceptions": [{"policyName": "require-team", "ruleNames": ["check-team"]}],
            "match": {"any": [{"resources": {"kinds": ["Pod"], "names": ["miner"]}}]}
        }
    })
}

async fn post(serve: &Arc<Serve>) -> Value {
    let serve = serve.clone();
    tokio::task::spawn_blocking(move || {
        let (status, text) = serve.request("POST", "/validate/fail?timeout=10s", &pod_review());
        assert_eq!(status, 200, "{text}");
        serde_json::from_str::<Value>(&text).unwrap()["response"].clone()
    })
    .await
    .unwrap()
}

fn message(response: &Value) -> String {
    response["status"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn until<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(started.elapsed() < WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts `bylaw serve` against `server` with `extra` flags and waits until it is ready.
async fn serve(server: &FakeApiServer, extra: &[&str]) -> (Arc<Serve>, tempfile::TempDir) {
    let config = tempfile::tempdir().unwrap();
    let kubeconfig = config.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    let mut args: Vec<OsString> = vec![
        "--kubeconfig".into(),
        kubeconfig.into(),
        "--namespace".into(),
        "bylaw-system".into(),
    ];
    args.extend(extra.iter().map(OsString::from));
    let serve = tokio::task::spawn_blocking(move || Serve::start(&args))
        .await
        .unwrap();
    let serve = Arc::new(serve);
    until("ready", async || {
        let serve = serve.clone();
        let ready = tokio::task::spawn_blocking(move || serve.request("GET", "/readyz", b"").0)
            .await
            .unwrap();
        (ready == 200).then_some(())
    })
    .await;
    (serve, config)
}

async fn stop(serve: Arc<Serve>) {
    let serve = Arc::try_unwrap(serve).ok().unwrap();
    tokio::task::spawn_blocking(move || serve.stop())
        .await
        .unwrap();
}

/// Installs the policy and, once it is enforced, the exceptions; then a second policy whose
/// arrival shows the server has caught up with everything written before it. Returns the
/// denial message for the Pod the exceptions name (empty when it was admitted).
async fn verdict_with_exceptions(server: &FakeApiServer, serve: &Arc<Serve>) -> String {
    server.upsert(deny_all("require-team"));
    until("the policy enforced", async || {
        let response = post(serve).await;
        message(&response).contains("require-team").then_some(())
    })
    .await;
    // A user who may create PolicyExceptions in their own namespace writes one for their Pod.
    server.upsert(exception_in("shop"));
    server.upsert(exception_in("bylaw-system"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.upsert(deny_all("marker"));
    let response = until("the marker policy", async || {
        let response = post(serve).await;
        (response["allowed"] == true || message(&response).contains("marker")).then_some(response)
    })
    .await;
    message(&response)
}

fn namespaces(server: &FakeApiServer) {
    server.install_crds(
        bylaw_api::all_crds()
            .iter()
            .map(|crd| serde_json::to_value(crd).unwrap()),
    );
    for name in ["bylaw-system", "shop"] {
        server.insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}));
    }
}

/// GHSA-qjvc-p88j-j9rm: Kyverno honoured PolicyExceptions from every namespace, so anyone who
/// could create one anywhere could exempt themselves. bylaw reads none unless
/// `--exception-namespace` names where they may live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_exceptions_are_ignored_unless_their_namespace_is_configured() {
    let server = FakeApiServer::start().await;
    namespaces(&server);
    let (serve, _config) = serve(&server, &[]).await;
    let denial = verdict_with_exceptions(&server, &serve).await;
    assert!(
        denial.contains("require-team") && denial.contains("marker"),
        "no exception is honoured by default: {denial}"
    );
    stop(serve).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_policy_exceptions_in_the_configured_namespace_are_honoured() {
    let server = FakeApiServer::start().await;
    namespaces(&server);
    // Only the user's own namespace holds an exception here: it must not count.
    let (serve, _config) = serve(&server, &["--exception-namespace", "bylaw-system"]).await;
    server.upsert(deny_all("require-team"));
    until("the policy enforced", async || {
        message(&post(&serve).await)
            .contains("require-team")
            .then_some(())
    })
    .await;
    server.upsert(exception_in("shop"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.upsert(deny_all("marker"));
    let denial = until("the marker policy", async || {
        let text = message(&post(&serve).await);
        text.contains("marker").then_some(text)
    })
    .await;
    assert!(
        denial.contains("require-team"),
        "an exception in shop is ignored: {denial}"
    );
    // The same exception in the configured namespace is honoured.
    server.upsert(exception_in("bylaw-system"));
    let denial = until("the exception honoured", async || {
        let text = message(&post(&serve).await);
        (!text.contains("require-team")).then_some(text)
    })
    .await;
    assert!(denial.contains("marker"), "{denial}");
    stop(serve).await;
}
