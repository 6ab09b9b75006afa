//! `bylaw serve` against a real API server (`make e2e` with `KUBECONFIG`): the user's view of
//! the in-cluster mode. Every object it creates has a name unique to the run and is deleted at
//! the end; it registers no webhook, so it cannot disturb other users of the cluster.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;
use kube::Client;
use serde_json::{json, Value};
use support::Serve;

const MANAGER: &str = "bylaw-e2e";

async fn install_crds(client: &Client) {
    let output = Command::new(env!("CARGO_BIN_EXE_bylaw"))
        .arg("crds")
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
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
        let started = Instant::now();
        loop {
            let current = api.get(&name).await.unwrap();
            let established = current
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            if established {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{name} not established"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn cluster_policy(name: &str, operator: &str) -> Value {
    json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": name},
        "spec": {
            "validationFailureAction": "Enforce",
            "rules": [{
                "name": "check-team",
                "match": {"any": [{"resources": {"kinds": ["Pod"], "namespaces": ["bylaw-e2e-none"]}}]},
                "validate": {
                    "message": "label team is required",
                    "deny": {"conditions": {"any": [{
                        "key": "{{ request.object.metadata.labels.team || '' }}",
                        "operator": operator,
                        "value": ""
                    }]}}
                }
            }]
        }
    })
}

/// Waits until the policy's Ready condition is there, and returns it.
async fn ready_condition(api: &Api<DynamicObject>, name: &str) -> Value {
    let started = Instant::now();
    loop {
        let policy = api.get(name).await.unwrap();
        let condition = policy.data["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
            .cloned();
        if let Some(condition) = condition {
            return condition;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{name}: no Ready condition in {:?}",
            policy.data.get("status")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
#[ignore = "needs cluster: KUBECONFIG pointing at a real API server (make e2e)"]
async fn policies_applied_in_a_real_cluster_get_their_status() {
    let kubeconfig = std::env::var("KUBECONFIG").expect("make e2e sets KUBECONFIG");
    let client = Client::try_default().await.unwrap();
    install_crds(&client).await;
    let serve = Serve::start(&[
        "--kubeconfig".into(),
        kubeconfig.into(),
        "--namespace".into(),
        "bylaw-e2e".into(),
    ]);
    let serve = std::sync::Arc::new(serve);
    let started = Instant::now();
    loop {
        let probe = serve.clone();
        let status = tokio::task::spawn_blocking(move || probe.request("GET", "/readyz", b"").0)
            .await
            .unwrap();
        if status == 200 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let resource = ApiResource::erase::<bylaw_api::ClusterPolicy>(&());
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let run = std::process::id();
    let good = format!("e2e-require-team-{run}");
    let bad = format!("e2e-broken-{run}");
    for (name, operator) in [(&good, "Equals"), (&bad, "Sometimes")] {
        let object: DynamicObject = serde_json::from_value(cluster_policy(name, operator)).unwrap();
        api.patch(name, &PatchParams::apply(MANAGER), &Patch::Apply(&object))
            .await
            .unwrap();
    }

    let ready = ready_condition(&api, &good).await;
    assert_eq!(ready["status"], "True", "{ready}");
    assert_eq!(ready["reason"], "Succeeded");
    let status = api.get(&good).await.unwrap().data["status"].clone();
    assert_eq!(status["ready"], true);
    assert_eq!(status["rulecount"]["validate"], 1);
    assert_eq!(status["autogen"]["rules"][0]["name"], "autogen-check-team");

    let failed = ready_condition(&api, &bad).await;
    assert_eq!(failed["status"], "False", "{failed}");
    assert_eq!(failed["reason"], "Failed");
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .starts_with("spec.rules[0].validate.deny.conditions.any[0].operator"),
        "{failed}"
    );

    for name in [&good, &bad] {
        api.delete(name, &DeleteParams::default()).await.unwrap();
    }
    let serve = std::sync::Arc::try_unwrap(serve).ok().unwrap();
    tokio::task::spawn_blocking(move || serve.stop())
        .await
        .unwrap();
}
