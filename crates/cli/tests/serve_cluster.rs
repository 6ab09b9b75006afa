//! `bylaw serve --kubeconfig` as a user runs it, against the fake API server: a policy applied
//! in the cluster is enforced over HTTPS and shows Ready; a broken one shows why; the cluster's
//! role bindings make a cluster-admin exclusion fire.

mod support;

use std::time::{Duration, Instant};

use bylaw_test_support::apiserver::FakeApiServer;
use serde_json::{json, Value};
use support::Serve;

const WAIT: Duration = Duration::from_secs(20);

fn review(user: &str, groups: &[&str]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "e2e-1",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "web",
            "namespace": "shop",
            "operation": "CREATE",
            "userInfo": {"username": user, "groups": groups},
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "web", "namespace": "shop"},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}
            }
        }
    }))
    .unwrap()
}

/// Posts a review on a blocking thread (the fake API server runs on this test's runtime).
async fn post(serve: &std::sync::Arc<Serve>, body: Vec<u8>) -> Value {
    let serve = serve.clone();
    tokio::task::spawn_blocking(move || {
        let (status, text) = serve.request("POST", "/validate/fail?timeout=10s", &body);
        assert_eq!(status, 200, "{text}");
        serde_json::from_str::<Value>(&text).unwrap()["response"].clone()
    })
    .await
    .unwrap()
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_applied_in_the_cluster_are_enforced_and_report_their_status() {
    let server = FakeApiServer::start().await;
    server.install_crds(
        bylaw_api::all_crds()
            .iter()
            .map(|crd| serde_json::to_value(crd).unwrap()),
    );
    server.insert(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "cluster-admin"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "Group", "name": "system:masters", "apiGroup": "rbac.authorization.k8s.io"}]
    }));
    let config = tempfile::tempdir().unwrap();
    let kubeconfig = config.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();

    server.insert(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bylaw-system"}}),
    );
    let serve = tokio::task::spawn_blocking(move || {
        Serve::start(&[
            "--kubeconfig".into(),
            kubeconfig.into(),
            "--namespace".into(),
            "bylaw-system".into(),
        ])
    })
    .await
    .unwrap();
    let serve = std::sync::Arc::new(serve);
    until("ready", async || {
        let serve = serve.clone();
        let ready = tokio::task::spawn_blocking(move || serve.request("GET", "/readyz", b"").0)
            .await
            .unwrap();
        (ready == 200).then_some(())
    })
    .await;
    let response = post(&serve, review("dev", &["system:authenticated"])).await;
    assert_eq!(response["allowed"], true, "no policy yet: {response}");

    server.upsert(json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": "require-team"},
        "spec": {
            "validationFailureAction": "Enforce",
            "rules": [{
                "name": "check-team",
                "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "exclude": {"any": [{"clusterRoles": ["cluster-admin"]}]},
                "validate": {
                    "message": "label team is required",
                    "pattern": {"metadata": {"labels": {"team": "?*"}}}
                }
            }]
        }
    }));
    server.upsert(json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": "broken"},
        "spec": {"rules": [{"name": "r", "match": {}, "validate": {"pattern": {}}}]}
    }));

    let denied = until("the policy enforced", async || {
        let response = post(&serve, review("dev", &["system:authenticated"])).await;
        (response["allowed"] == false).then_some(response)
    })
    .await;
    let message = denied["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("require-team:\n  check-team: "),
        "{message}"
    );
    // The admin's roles come from the cluster's bindings: excluded.
    let admin = post(&serve, review("kubernetes-admin", &["system:masters"])).await;
    assert_eq!(admin["allowed"], true, "{admin}");

    let conditions = until("both statuses", async || {
        let ready = |name: &str| {
            server.get("kyverno.io/v1", "ClusterPolicy", None, name)?["status"]["conditions"][0]
                .as_object()
                .cloned()
        };
        Some((ready("require-team")?, ready("broken")?))
    })
    .await;
    assert_eq!(conditions.0["status"], "True");
    assert_eq!(conditions.1["status"], "False");
    assert!(
        conditions.1["message"]
            .as_str()
            .unwrap()
            .starts_with("spec.rules[0].match"),
        "{:?}",
        conditions.1
    );

    let serve = std::sync::Arc::try_unwrap(serve).ok().unwrap();
    tokio::task::spawn_blocking(move || serve.stop())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_namespace_is_a_clear_error() {
    let server = FakeApiServer::start().await;
    let config = tempfile::tempdir().unwrap();
    let kubeconfig = config.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_bylaw"))
            .args(["serve", "--kubeconfig"])
            .arg(&kubeconfig)
            .args([
                "--namespace",
                "nowhere",
                "--dev-tls",
                "--listen",
                "127.0.0.1:0",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("namespace \"nowhere\" does not exist")
            && stderr.contains("kubectl create namespace nowhere"),
        "{stderr}"
    );
}

#[test]
fn a_generate_rate_that_is_not_positive_is_refused() {
    for (flag, value, wanted) in [
        (
            "--generate-rate",
            "0",
            "--generate-rate must be a positive number",
        ),
        (
            "--generate-rate",
            "-3",
            "--generate-rate must be a positive number",
        ),
        (
            "--generate-workers",
            "0",
            "--generate-workers must be at least 1",
        ),
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_bylaw"))
            .args([
                "serve",
                "--kubeconfig",
                "/nonexistent/kubeconfig",
                "--dev-tls",
            ])
            .arg(format!("{flag}={value}"))
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(wanted), "{flag}={value}: {stderr}");
    }
}

/// `bylaw apply --cluster` reads what runs (only the kinds the policy selects) and prints the
/// same table as for files; nothing is written to the cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_with_cluster_evaluates_the_live_resources_without_writing() {
    let server = FakeApiServer::start().await;
    for (name, labels) in [("labelled", json!({"team": "a"})), ("bare", json!({}))] {
        server.insert(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "shop", "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}
        }));
    }
    server.insert(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "elsewhere", "namespace": "other"},
        "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}
    }));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: require-team
spec:
  validationFailureAction: Enforce
  rules:
    - name: check-team
      match:
        any:
          - resources:
              kinds: [Pod]
      validate:
        message: label team is required
        pattern:
          metadata:
            labels:
              team: "?*"
"#,
    )
    .unwrap();
    server.clear_requests();
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_bylaw"))
                .args(args)
                .output()
                .unwrap()
        })
    };
    let base = vec![
        "apply".to_owned(),
        policy.display().to_string(),
        "--cluster".to_owned(),
        "--kubeconfig".to_owned(),
        kubeconfig.display().to_string(),
        "-o".to_owned(),
        "json".to_owned(),
    ];
    let output = run(base.clone()).await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let results: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout} {}", String::from_utf8_lossy(&output.stderr)));
    let outcome = |resource: &str| {
        results
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == resource)
            .map(|r| r["status"].as_str().unwrap().to_owned())
    };
    assert_eq!(
        outcome("Pod/shop/bare").as_deref(),
        Some("fail"),
        "{results}"
    );
    assert_eq!(outcome("Pod/shop/labelled").as_deref(), Some("pass"));
    assert_eq!(outcome("Pod/other/elsewhere").as_deref(), Some("fail"));
    assert!(!output.status.success(), "an Enforce failure fails the run");
    let requests = server.requests();
    assert!(requests.iter().all(|r| !r.is_write()), "read-only");
    // Pods, and the Pod controllers the policy's autogen rules select; nothing else.
    let pod_kinds = [
        "pods",
        "replicationcontrollers",
        "daemonsets",
        "deployments",
        "replicasets",
        "statefulsets",
        "cronjobs",
        "jobs",
    ];
    let listed: Vec<&str> = requests
        .iter()
        .filter(|r| r.verb == "list")
        .map(|r| r.path.rsplit('/').next().unwrap())
        .collect();
    assert!(listed.contains(&"pods"), "{listed:?}");
    assert!(listed.iter().all(|p| pod_kinds.contains(p)), "{listed:?}");

    let mut in_shop = base;
    in_shop.extend(["-n".to_owned(), "shop".to_owned()]);
    let output = run(in_shop).await.unwrap();
    let results: Value = serde_json::from_slice(&output.stdout).unwrap();
    let resources: Vec<&str> = results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["resource"].as_str().unwrap())
        .collect();
    assert!(
        resources.iter().all(|r| r.starts_with("Pod/shop/")),
        "{resources:?}"
    );
    assert_eq!(resources.len(), 2);
}
