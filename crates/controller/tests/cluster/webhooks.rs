//! Webhook registration and the serving certificate through the fake API server: the
//! configurations follow the policies, only the leader writes them, `--cleanup` removes them,
//! and the certificate Secret is made once and reused.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bylaw_controller::certs::{CertificateManager, IssuedCertificate};
use bylaw_controller::webhooks::{
    remove_configurations, Endpoint, WebhookRegistrar, WebhookSettings,
};
use bylaw_controller::{leadership, Leadership};
use bylaw_runtime::Shutdown;
use serde_json::{json, Value};

use crate::{eventually, require_team, Harness};

fn registrar(harness: &Harness, leadership: Leadership) -> WebhookRegistrar {
    WebhookRegistrar {
        client: harness.server.client(),
        settings: WebhookSettings {
            name: "bylaw".into(),
            endpoint: Endpoint::Url("https://127.0.0.1:9443".into()),
            ca_bundle: String::new(),
            excluded_namespaces: Vec::new(),
            namespace: "bylaw-system".into(),
        },
        leadership,
        discovery_interval: Duration::from_secs(300),
    }
}

fn validating(harness: &Harness) -> Option<Value> {
    harness.server.get(
        "admissionregistration.k8s.io/v1",
        "ValidatingWebhookConfiguration",
        None,
        "bylaw",
    )
}

/// Resources of the `validate-fail` webhook, if there is one.
fn fail_resources(configuration: &Value) -> Option<Vec<String>> {
    let hook = configuration["webhooks"]
        .as_array()?
        .iter()
        .find(|h| h["name"] == "validate-fail.bylaw.bylaw.io")?;
    Some(
        hook["rules"]
            .as_array()?
            .iter()
            .flat_map(|r| r["resources"].as_array().cloned().unwrap_or_default())
            .filter_map(|r| r.as_str().map(str::to_owned))
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_configurations_follow_the_policies_and_cleanup_removes_them() {
    let harness = Harness::start().await;
    let shutdown = Shutdown::new();
    let (_bundle_tx, bundle_rx) = tokio::sync::watch::channel("CA".to_owned());
    tokio::spawn(registrar(&harness, Leadership::always()).run(
        harness.cache.clone(),
        bundle_rx,
        shutdown.signal(),
    ));

    // No policies yet: only the policy webhook.
    let configuration = eventually("the configuration written", || validating(&harness)).await;
    assert_eq!(configuration["webhooks"].as_array().unwrap().len(), 1);
    assert_eq!(
        configuration["webhooks"][0]["name"],
        "policies.bylaw.bylaw.io"
    );
    assert_eq!(
        configuration["webhooks"][0]["clientConfig"]["url"],
        "https://127.0.0.1:9443/policies/validate"
    );
    let writes = |harness: &Harness| {
        harness
            .server
            .requests()
            .into_iter()
            .filter(|r| r.is_write() && r.resource == "validatingwebhookconfigurations")
            .count()
    };

    // A Pod policy: the API server must now send Pods.
    harness.apply(require_team("require-team", "Enforce"));
    let resources = eventually("Pods registered", || {
        let resources = fail_resources(&validating(&harness)?)?;
        resources.contains(&"pods".to_owned()).then_some(resources)
    })
    .await;
    assert!(
        !resources
            .iter()
            .any(|r| r == "nodes" || r == "leases" || r == "events"),
        "{resources:?}"
    );
    assert!(harness
        .server
        .requests()
        .iter()
        .any(|r| r.is_apply() && r.resource == "validatingwebhookconfigurations"));

    // Nothing changed: nothing written again. The registration may still be finishing a write
    // it started (seen as a flake under load), so count from when the writes have settled.
    let mut before = writes(&harness);
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = writes(&harness);
        if now == before {
            break;
        }
        before = now;
    }
    harness.apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": "unrelated", "namespace": "default"}}));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(writes(&harness), before);

    // The policy deleted: the Pod rules go.
    harness
        .server
        .remove("kyverno.io/v1", "ClusterPolicy", None, "require-team");
    eventually("Pods unregistered", || {
        fail_resources(&validating(&harness)?)
            .is_none()
            .then_some(())
    })
    .await;

    shutdown.trigger();
    assert_eq!(
        remove_configurations(&harness.server.client(), "bylaw")
            .await
            .unwrap(),
        2
    );
    assert!(validating(&harness).is_none());
    assert_eq!(
        remove_configurations(&harness.server.client(), "bylaw")
            .await
            .unwrap(),
        0,
        "cleanup twice is fine"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_registers_webhooks() {
    let harness = Harness::start().await;
    let shutdown = Shutdown::new();
    let (elector, leadership) = leadership();
    let (_bundle_tx, bundle_rx) = tokio::sync::watch::channel("CA".to_owned());
    tokio::spawn(registrar(&harness, leadership).run(
        harness.cache.clone(),
        bundle_rx,
        shutdown.signal(),
    ));
    harness.apply(require_team("require-team", "Enforce"));
    eventually("the policy served", || {
        harness
            .served()
            .contains(&"require-team".to_owned())
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(validating(&harness).is_none(), "a follower wrote");
    elector.set(true);
    eventually("written once leading", || {
        fail_resources(&validating(&harness)?).filter(|r| r.contains(&"pods".to_owned()))
    })
    .await;
    shutdown.trigger();
}

fn fake_issuer(count: Arc<std::sync::atomic::AtomicUsize>) -> bylaw_controller::certs::Issuer {
    Arc::new(move |names: &[String]| {
        let n = count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(IssuedCertificate {
            ca_pem: format!("-----BEGIN CERTIFICATE-----\nca-{n}\n-----END CERTIFICATE-----\n"),
            cert_pem: format!("cert-{n} for {}", names.join(",")),
            key_pem: format!("key-{n}"),
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_serving_certificate_is_kept_in_a_secret_and_reused() {
    let harness = Harness::start().await;
    harness.apply(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bylaw-system"}}),
    );
    let dir = tempfile::tempdir().unwrap();
    let issued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let manager = |dir: PathBuf| CertificateManager {
        client: harness.server.client(),
        namespace: "bylaw-system".into(),
        secret_name: "bylaw-tls".into(),
        names: vec!["bylaw.bylaw-system.svc".into()],
        dir,
        issuer: fake_issuer(issued.clone()),
    };
    let first = manager(dir.path().join("a")).ensure(true).await.unwrap();
    assert!(first.contains("ca-0"));
    let secret = harness
        .server
        .get("v1", "Secret", Some("bylaw-system"), "bylaw-tls")
        .unwrap();
    assert_eq!(secret["type"], "kubernetes.io/tls");
    // A second replica (or a restart) reuses it and writes the same files.
    let second = manager(dir.path().join("b")).ensure(true).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(issued.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("b/tls.crt")).unwrap(),
        "cert-0 for bylaw.bylaw-system.svc"
    );
    // A replica that may not issue fails clearly when there is nothing to reuse.
    harness
        .server
        .remove("v1", "Secret", Some("bylaw-system"), "bylaw-tls");
    let error = manager(dir.path().join("c"))
        .ensure(false)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("bylaw-tls"), "{error}");
}
