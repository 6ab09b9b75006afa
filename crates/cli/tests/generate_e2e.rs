//! Generate rules carried out by `bylaw serve` in a real cluster (`make e2e` with
//! `KUBECONFIG`): `kubectl create ns` is followed by the generated NetworkPolicy within two
//! seconds. Names are unique to the run; what the test creates is deleted at the end (a
//! control plane without a namespace controller keeps the namespaces Terminating).

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use kube::Client;
use serde_json::{json, Value};

const MANAGER: &str = "bylaw-e2e";
/// bylaw's own namespace for this test (its Lease lives there).
const HOME: &str = "bylaw-e2e-generate";

async fn ensure_namespace(client: &Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    if api.get_opt(name).await.unwrap().is_none() {
        let namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        api.create(&PostParams::default(), &namespace)
            .await
            .unwrap();
    }
}

async fn install_crds(client: &Client) {
    let output = Command::new(env!("CARGO_BIN_EXE_bylaw"))
        .arg("crds")
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let api: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let crd: Value = serde::Deserialize::deserialize(doc).unwrap();
        let name = crd["metadata"]["name"].as_str().unwrap().to_owned();
        api.patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
}

fn default_deny(name: &str, prefix: &str) -> Value {
    json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": name},
        "spec": {"rules": [{
            "name": "default-deny",
            "match": {"any": [{"resources": {"kinds": ["Namespace"], "names": [format!("{prefix}*")]}}]},
            "generate": {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "name": "default-deny",
                "namespace": "{{request.object.metadata.name}}",
                "synchronize": true,
                "data": {"spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}
            }
        }]}
    })
}

#[tokio::test]
#[ignore = "needs cluster: KUBECONFIG pointing at a real API server (make e2e)"]
async fn a_new_namespace_gets_its_network_policy_within_two_seconds() {
    let kubeconfig = std::env::var("KUBECONFIG")
        .expect("KUBECONFIG must name a real cluster: run `make e2e` with KUBECONFIG set");
    let client = Client::try_default().await.unwrap();
    ensure_namespace(&client, HOME).await;
    install_crds(&client).await;
    let serve = support::start_ready(&[
        "--kubeconfig".into(),
        kubeconfig.into(),
        "--namespace".into(),
        HOME.into(),
        "--register-webhooks".into(),
        "false".into(),
    ])
    .await;

    let run = std::process::id();
    let policy_name = format!("e2e-default-deny-{run}");
    let prefix = format!("e2e-gen-{run}-");
    let resource = ApiResource::erase::<bylaw_api::ClusterPolicy>(&());
    let policies: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let object: DynamicObject =
        serde_json::from_value(default_deny(&policy_name, &prefix)).unwrap();
    policies
        .patch(
            &policy_name,
            &PatchParams::apply(MANAGER),
            &Patch::Apply(&object),
        )
        .await
        .unwrap();
    // The Ready condition is written by the leader: once it is there, bylaw leads and
    // serves the policy.
    let started = Instant::now();
    loop {
        let policy = policies.get(&policy_name).await.unwrap();
        if policy.data["status"]["ready"] == true {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "policy never Ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let namespace = format!("{prefix}x");
    let created = Instant::now();
    let status = Command::new("kubectl")
        .args(["create", "namespace", &namespace])
        .status()
        .unwrap();
    assert!(status.success());
    let network_policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &namespace);
    let generated = loop {
        if let Some(found) = network_policies.get_opt("default-deny").await.unwrap() {
            break found;
        }
        assert!(
            created.elapsed() < Duration::from_secs(2),
            "no NetworkPolicy in {namespace} within two seconds"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let took = created.elapsed();
    eprintln!("NetworkPolicy generated {took:?} after `kubectl create namespace`");
    let labels = generated.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("bylaw")
    );
    assert_eq!(
        labels
            .get("generate.kyverno.io/policy-name")
            .map(String::as_str),
        Some(policy_name.as_str())
    );
    assert_eq!(
        labels
            .get("generate.kyverno.io/trigger-kind")
            .map(String::as_str),
        Some("Namespace")
    );

    // Deleting the synchronized policy removes what it generated.
    policies
        .delete(&policy_name, &DeleteParams::default())
        .await
        .unwrap();
    let deleted = Instant::now();
    while network_policies
        .get_opt("default-deny")
        .await
        .unwrap()
        .is_some()
    {
        assert!(
            deleted.elapsed() < Duration::from_secs(10),
            "NetworkPolicy not removed with its policy"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let _ = namespaces
        .delete(&namespace, &DeleteParams::default())
        .await;
    let serve = std::sync::Arc::try_unwrap(serve).ok().unwrap();
    tokio::task::spawn_blocking(move || serve.stop())
        .await
        .unwrap();
}
