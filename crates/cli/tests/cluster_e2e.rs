//! `bylaw serve` against a real API server (`make e2e` with `KUBECONFIG`): the user's view of
//! the in-cluster mode. Every object it creates has a name unique to the run and is deleted at
//! the end. Webhooks are registered only by the test that checks them, under a configuration
//! name unique to the run, and removed with `bylaw serve --cleanup` even when it fails.

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

/// One test at a time: the webhooks one test registers would see the other's objects.
static CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The namespace bylaw runs in, created when missing.
async fn ensure_namespace(client: &Client) {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    if api.get_opt("bylaw-e2e").await.unwrap().is_none() {
        let namespace = serde_json::from_value(json!({"metadata": {"name": "bylaw-e2e"}})).unwrap();
        api.create(&Default::default(), &namespace).await.unwrap();
    }
}

async fn install_crds(client: &Client) {
    ensure_namespace(client).await;
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
    let _cluster = CLUSTER.lock().await;
    let kubeconfig = std::env::var("KUBECONFIG")
        .expect("KUBECONFIG must name a real cluster: run `make e2e` with KUBECONFIG set");
    let client = Client::try_default().await.unwrap();
    install_crds(&client).await;
    let serve = support::start_ready(&[
        "--kubeconfig".into(),
        kubeconfig.into(),
        "--namespace".into(),
        "bylaw-e2e".into(),
        "--register-webhooks".into(),
        "false".into(),
    ])
    .await;

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

/// Removes the run's webhook configurations when dropped, so a failing test leaves nothing
/// that could refuse the cluster's requests.
struct Registered {
    kubeconfig: String,
    name: String,
}

impl Registered {
    fn cleanup(&self) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_bylaw"))
            .args([
                "serve",
                "--kubeconfig",
                &self.kubeconfig,
                "--namespace",
                "bylaw-e2e",
            ])
            .args(["--webhook-name", &self.name, "--cleanup"])
            .output()
            .unwrap()
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        let _ = self.cleanup();
    }
}

fn privileged_pod(name: &str, privileged: bool) -> k8s_openapi::api::core::v1::Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "nginx:1.27",
                                 "securityContext": {"privileged": privileged}}]}
    }))
    .unwrap()
}

#[tokio::test]
#[ignore = "needs cluster: KUBECONFIG pointing at a real API server (make e2e)"]
async fn the_api_server_enforces_a_policy_through_the_webhooks_bylaw_registers() {
    let _cluster = CLUSTER.lock().await;
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::PostParams;

    let kubeconfig = std::env::var("KUBECONFIG")
        .expect("KUBECONFIG must name a real cluster: run `make e2e` with KUBECONFIG set");
    let client = Client::try_default().await.unwrap();
    install_crds(&client).await;
    let run = std::process::id();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let registered = Registered {
        kubeconfig: kubeconfig.clone(),
        name: format!("bylaw-e2e-{run}"),
    };
    let serve = Serve::start_on(
        &[
            "--kubeconfig".into(),
            kubeconfig.clone().into(),
            "--namespace".into(),
            "bylaw-e2e".into(),
            "--webhook-name".into(),
            registered.name.clone().into(),
            "--webhook-url".into(),
            format!("https://127.0.0.1:{port}").into(),
        ],
        &format!("127.0.0.1:{port}"),
    );

    // The configurations exist (the policy webhook at least) once bylaw is up.
    let configurations: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource {
            group: "admissionregistration.k8s.io".into(),
            version: "v1".into(),
            api_version: "admissionregistration.k8s.io/v1".into(),
            kind: "ValidatingWebhookConfiguration".into(),
            plural: "validatingwebhookconfigurations".into(),
        },
    );
    let started = Instant::now();
    while configurations
        .get_opt(&registered.name)
        .await
        .unwrap()
        .is_none()
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never registered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // An Enforce Pod Security policy: the API server refuses a privileged Pod within a second.
    let policy_name = format!("e2e-no-privileged-{run}");
    let policy = json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": policy_name},
        "spec": {
            "validationFailureAction": "Enforce",
            "background": false,
            "rules": [{
                "name": "privileged-containers",
                "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "validate": {
                    "message": "Privileged mode is not allowed.",
                    "pattern": {"spec": {"containers": [{"=(securityContext)": {"=(privileged)": "false"}}]}}
                }
            }]
        }
    });
    let policies: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::erase::<bylaw_api::ClusterPolicy>(&()),
    );
    let object: DynamicObject = serde_json::from_value(policy).unwrap();
    let applied = Instant::now();
    policies
        .patch(
            &policy_name,
            &PatchParams::apply(MANAGER),
            &Patch::Apply(&object),
        )
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let denial = loop {
        match pods
            .create(&dry_run, &privileged_pod("e2e-privileged", true))
            .await
        {
            Err(kube::Error::Api(status)) => break status,
            Ok(_) => {
                assert!(
                    applied.elapsed() < Duration::from_secs(10),
                    "the privileged Pod was never refused"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(other) => panic!("unexpected error: {other}"),
        }
    };
    let enforced_after = applied.elapsed();
    assert!(
        denial.message.contains(&policy_name) && denial.message.contains("Privileged mode"),
        "{}",
        denial.message
    );
    assert!(
        enforced_after < Duration::from_secs(1),
        "enforced only after {enforced_after:?}"
    );
    pods.create(&dry_run, &privileged_pod("e2e-compliant", false))
        .await
        .expect("a compliant Pod is admitted");
    let ready = ready_condition(&policies, &policy_name).await;
    assert_eq!(ready["status"], "True", "{ready}");

    // An invalid policy is refused at apply, naming the field.
    let broken: DynamicObject =
        serde_json::from_value(cluster_policy(&format!("e2e-refused-{run}"), "Sometimes")).unwrap();
    let refused = policies
        .patch(
            &format!("e2e-refused-{run}"),
            &PatchParams::apply(MANAGER),
            &Patch::Apply(&broken),
        )
        .await
        .expect_err("an invalid policy is refused");
    assert!(
        refused
            .to_string()
            .contains("spec.rules[0].validate.deny.conditions.any[0].operator"),
        "{refused}"
    );

    policies
        .delete(&policy_name, &DeleteParams::default())
        .await
        .unwrap();
    tokio::task::spawn_blocking(move || serve.stop())
        .await
        .unwrap();
    // --cleanup leaves no webhook configuration behind.
    let output = registered.cleanup();
    assert!(output.status.success(), "{output:?}");
    assert!(configurations
        .get_opt(&registered.name)
        .await
        .unwrap()
        .is_none());
    let mutating: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource {
            group: "admissionregistration.k8s.io".into(),
            version: "v1".into(),
            api_version: "admissionregistration.k8s.io/v1".into(),
            kind: "MutatingWebhookConfiguration".into(),
            plural: "mutatingwebhookconfigurations".into(),
        },
    );
    assert!(mutating.get_opt(&registered.name).await.unwrap().is_none());
}

#[tokio::test]
#[ignore = "needs cluster: KUBECONFIG pointing at a real API server (make e2e)"]
async fn pods_that_existed_before_bylaw_are_reported_within_seconds_of_the_policy() {
    existing_objects_are_reported(
        "Pod",
        "pods",
        |name| json!({"spec": {"containers": [{"name": "c", "image": format!("nginx:1.{name}")}]}}),
    )
    .await;
}

#[tokio::test]
#[ignore = "needs cluster: KUBECONFIG pointing at a real API server (make e2e)"]
async fn config_maps_that_existed_before_bylaw_are_reported_within_seconds_of_the_policy() {
    existing_objects_are_reported(
        "ConfigMap",
        "configmaps",
        |name| json!({"data": {"name": name}}),
    )
    .await;
}

/// Three objects of `kind` exist before bylaw starts, two without the `team` label; a
/// background policy requiring it is applied; within 5 s the namespace's PolicyReports show
/// one pass and two failures for it.
async fn existing_objects_are_reported(kind: &str, plural: &str, body: impl Fn(&str) -> Value) {
    let _cluster = CLUSTER.lock().await;
    use kube::api::{ListParams, PostParams};

    let kubeconfig = std::env::var("KUBECONFIG")
        .expect("KUBECONFIG must name a real cluster: run `make e2e` with KUBECONFIG set");
    let client = Client::try_default().await.unwrap();
    install_crds(&client).await;
    let run = std::process::id();
    let namespace = format!("e2e-reports-{}-{run}", plural);
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap(),
        )
        .await
        .unwrap();
    let resource = ApiResource {
        group: String::new(),
        version: "v1".into(),
        api_version: "v1".into(),
        kind: kind.into(),
        plural: plural.into(),
    };
    let objects: Api<DynamicObject> = Api::namespaced_with(client.clone(), &namespace, &resource);
    for (name, team) in [("a", None), ("b", None), ("c", Some("payments"))] {
        let mut object = body(name);
        object["apiVersion"] = json!("v1");
        object["kind"] = json!(kind);
        object["metadata"] = json!({"name": name, "namespace": namespace});
        if let Some(team) = team {
            object["metadata"]["labels"] = json!({"team": team});
        }
        let object: DynamicObject = serde_json::from_value(object).unwrap();
        objects
            .create(&PostParams::default(), &object)
            .await
            .unwrap();
    }
    // The scan sees what LIST returns: check the API server's side first, so that a server
    // that does not list what it stores fails here, named, rather than as missing reports.
    let listed = objects.list(&ListParams::default()).await.unwrap();
    assert_eq!(
        listed.items.len(),
        3,
        "the API server lists {} of the 3 {kind}s just created (list resourceVersion {:?})",
        listed.items.len(),
        listed.metadata.resource_version
    );

    let serve = support::start_ready(&[
        "--kubeconfig".into(),
        kubeconfig.into(),
        "--namespace".into(),
        "bylaw-e2e".into(),
        "--register-webhooks".into(),
        "false".into(),
    ])
    .await;

    let policy_name = format!("e2e-team-{}-{run}", plural);
    let policy: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": policy_name},
        "spec": {
            "validationFailureAction": "Audit",
            "background": true,
            "rules": [{
                "name": "team",
                "match": {"any": [{"resources": {"kinds": [kind], "namespaces": [namespace]}}]},
                "validate": {
                    "message": "the team label is required",
                    "pattern": {"metadata": {"labels": {"team": "?*"}}}
                }
            }]
        }
    }))
    .unwrap();
    let policies: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::erase::<bylaw_api::ClusterPolicy>(&()),
    );
    let applied = Instant::now();
    policies
        .patch(
            &policy_name,
            &PatchParams::apply(MANAGER),
            &Patch::Apply(&policy),
        )
        .await
        .unwrap();
    let reports: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &namespace,
        &ApiResource::erase::<bylaw_api::policyreport::PolicyReport>(&()),
    );
    let counts = loop {
        let list = reports.list(&ListParams::default()).await.unwrap();
        let mut counts = (0, 0);
        for report in &list.items {
            for result in report.data["results"].as_array().into_iter().flatten() {
                if result["policy"] == policy_name.as_str() {
                    match result["result"].as_str() {
                        Some("pass") => counts.0 += 1,
                        Some("fail") => counts.1 += 1,
                        _ => {}
                    }
                }
            }
        }
        if counts == (1, 2) || applied.elapsed() > Duration::from_secs(5) {
            break counts;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let took = applied.elapsed();
    policies
        .delete(&policy_name, &DeleteParams::default())
        .await
        .unwrap();
    let _ = namespaces
        .delete(&namespace, &DeleteParams::default())
        .await;
    let serve = std::sync::Arc::try_unwrap(serve).ok().unwrap();
    tokio::task::spawn_blocking(move || serve.stop())
        .await
        .unwrap();
    assert_eq!(
        counts,
        (1, 2),
        "pass/fail results of the policy after {took:?}"
    );
    assert!(took <= Duration::from_secs(5), "reported after {took:?}");
    eprintln!("{kind}s reported {took:?} after the policy was applied");
}
