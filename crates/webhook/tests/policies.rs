//! HTTPS round trips against a real server evaluating real policies read from files: the
//! engine adapter, the policy cache and its reload loop, wired as `bylaw serve` wires them.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bylaw_runtime::sources::{ContextError, ContextProvider};
use bylaw_runtime::{
    ContextSource, EmptyContext, FilePolicySource, Metrics, PolicyCache, PolicyEvaluator,
    PolicySource, Shutdown,
};
use bylaw_webhook::{DevCa, Server, WebhookConfig};
use hyper::StatusCode;
use serde_json::{json, Value};
use support::{names, Client};

const DISALLOW_LATEST: &str = r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: disallow-latest-tag
spec:
  validationFailureAction: Enforce
  rules:
    - name: validate-image-tag
      match:
        any:
          - resources:
              kinds: [Pod]
      validate:
        message: "Using a mutable image tag e.g. 'latest' is not allowed."
        pattern:
          spec:
            containers:
              - image: "!*:latest"
"#;

const REQUIRE_TEAM: &str = r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: require-team
spec:
  validationFailureAction: Audit
  emitWarning: true
  rules:
    - name: check-team
      match:
        any:
          - resources:
              kinds: [Pod]
      validate:
        message: "The label `team` is required."
        pattern:
          metadata:
            labels:
              team: "?*"
"#;

fn dir_root(dir: &std::path::Path) -> PathBuf {
    dir.to_owned()
}

struct PolicyServer {
    client: Client,
    dir: tempfile::TempDir,
    metrics: Metrics,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<()>,
    _certs: tempfile::TempDir,
}

impl PolicyServer {
    /// Serves the policies in a fresh directory holding `files`, re-read every 20ms.
    async fn start(files: &[(&str, &str)], context: Arc<dyn ContextSource>) -> PolicyServer {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        Self::serve(dir, dir_root, context).await
    }

    /// Serves the policies of a directory that does not exist yet (`path("")` once created).
    async fn start_without_policies() -> PolicyServer {
        let dir = tempfile::tempdir().unwrap();
        Self::serve(dir, |dir| dir.join("policies"), Arc::new(EmptyContext)).await
    }

    async fn serve(
        dir: tempfile::TempDir,
        root: fn(&std::path::Path) -> PathBuf,
        context: Arc<dyn ContextSource>,
    ) -> PolicyServer {
        let certs = tempfile::tempdir().unwrap();
        let ca = DevCa::generate("bylaw policy test CA").unwrap();
        let (cert, key) = ca
            .issue(&names())
            .unwrap()
            .write_files(certs.path())
            .unwrap();
        let mut config = WebhookConfig::with_tls_files(cert, key);
        config.listen = "127.0.0.1:0".parse().unwrap();

        let metrics = Metrics::new("0.0.0-test");
        let cache = Arc::new(PolicyCache::new(metrics.clone()));
        let source: Arc<dyn PolicySource> = Arc::new(FilePolicySource::new(vec![root(dir.path())]));
        cache.reload_from(source.as_ref());
        let evaluator = Arc::new(PolicyEvaluator::new(cache.clone(), context.clone()));
        let server = Server::new_from_config(config, evaluator, metrics.clone()).unwrap();
        let bound = server.bind().await.unwrap();
        let client = Client::new(bound.local_addr(), &ca.pem());
        let shutdown = Shutdown::new();
        tokio::spawn(cache.watch(
            source,
            context,
            Duration::from_millis(20),
            shutdown.signal(),
        ));
        let signal = shutdown.signal();
        let task = tokio::spawn(async move { bound.run(signal).await.unwrap() });
        PolicyServer {
            client,
            dir,
            metrics,
            shutdown,
            task,
            _certs: certs,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    async fn review(&self, path: &str, body: &Value) -> Value {
        let reply = self.client.post_json(path, body).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        reply.json()["response"].clone()
    }

    async fn stop(self) {
        self.shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("server stops after shutdown")
            .unwrap();
    }
}

fn pod(name: &str, image: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": {"containers": [{"name": "app", "image": image}]}
    })
}

fn review(operation: &str, object: Option<Value>, old: Option<Value>) -> Value {
    let subject = object.as_ref().or(old.as_ref()).unwrap();
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": format!("uid-{operation}"),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "name": subject["metadata"]["name"],
            "namespace": "default",
            "operation": operation,
            "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
            "object": object,
            "oldObject": old,
            "dryRun": false
        }
    })
}

fn create(object: Value) -> Value {
    review("CREATE", Some(object), None)
}

/// Waits (up to 10s) until `check` holds for the answer to `body`.
async fn eventually(
    server: &PolicyServer,
    body: &Value,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    loop {
        let response = server.review("/validate/fail", body).await;
        if check(&response) {
            return response;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{what}: still {response}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn enforce_denies_with_kyvernos_message_audit_warns_compliant_passes() {
    let server = PolicyServer::start(
        &[
            ("latest.yaml", DISALLOW_LATEST),
            ("team.yaml", REQUIRE_TEAM),
        ],
        Arc::new(EmptyContext),
    )
    .await;

    let denied = server
        .review(
            "/validate/fail",
            &create(pod("nginx", "nginx:latest", json!({"team": "web"}))),
        )
        .await;
    assert_eq!(denied["uid"], "uid-CREATE");
    assert_eq!(denied["allowed"], false);
    assert_eq!(denied["status"]["code"], 403);
    let message = denied["status"]["message"].as_str().unwrap();
    // Kyverno's shape: the resource, then `policy:` / `  rule: message`, the message naming the
    // offending field.
    let expected_start = "\n\nresource Pod/default/nginx was blocked due to the following policies \n\n\
        disallow-latest-tag:\n  validate-image-tag: 'validation error: Using a mutable image tag e.g. \
        ''latest'' is not allowed. rule validate-image-tag failed at path /spec/containers/0/image/";
    assert!(message.starts_with(expected_start), "{message:?}");
    assert!(message.ends_with("'\n"), "{message:?}");
    assert!(!message.contains("require-team"), "{message:?}");

    // An Audit failure is admitted; with emitWarning it comes back as a warning.
    let audited = server
        .review(
            "/validate/fail",
            &create(pod("nginx", "nginx:1.27", json!({}))),
        )
        .await;
    assert_eq!(audited["allowed"], true);
    assert!(audited.get("status").is_none(), "{audited}");
    let warnings = audited["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{audited}");
    assert!(
        warnings[0].as_str().unwrap().starts_with(
            "policy require-team.check-team: validation error: The label `team` is required. rule check-team failed at path /metadata/labels/team/"
        ),
        "{audited}"
    );

    let compliant = server
        .review(
            "/validate/fail",
            &create(pod("nginx", "nginx:1.27", json!({"team": "web"}))),
        )
        .await;
    assert_eq!(compliant["allowed"], true);
    assert!(compliant.get("warnings").is_none(), "{compliant}");

    // No mutate policy is loaded: the mutating endpoint admits without a patch.
    let mutated = server
        .review(
            "/mutate/fail",
            &create(pod("nginx", "nginx:latest", json!({}))),
        )
        .await;
    assert_eq!(mutated["allowed"], true);
    assert!(mutated.get("patch").is_none());

    // Every rule outcome reached the metrics, with Kyverno's labels.
    let text = server.metrics.encode_openmetrics().unwrap();
    for line in [
        "bylaw_policy_results_total{policy_name=\"disallow-latest-tag\",policy_namespace=\"-\",policy_type=\"cluster\",policy_validation_mode=\"enforce\",policy_background_mode=\"true\",rule_name=\"validate-image-tag\",rule_type=\"validate\",rule_result=\"fail\",rule_execution_cause=\"admission_request\",resource_kind=\"Pod\",resource_namespace=\"default\",resource_request_operation=\"create\"} 1",
        "bylaw_policy_results_total{policy_name=\"disallow-latest-tag\",policy_namespace=\"-\",policy_type=\"cluster\",policy_validation_mode=\"enforce\",policy_background_mode=\"true\",rule_name=\"validate-image-tag\",rule_type=\"validate\",rule_result=\"pass\",rule_execution_cause=\"admission_request\",resource_kind=\"Pod\",resource_namespace=\"default\",resource_request_operation=\"create\"} 2",
        "bylaw_policy_results_total{policy_name=\"require-team\",policy_namespace=\"-\",policy_type=\"cluster\",policy_validation_mode=\"audit\",policy_background_mode=\"true\",rule_name=\"check-team\",rule_type=\"validate\",rule_result=\"fail\",rule_execution_cause=\"admission_request\",resource_kind=\"Pod\",resource_namespace=\"default\",resource_request_operation=\"create\"} 1",
        "bylaw_policy_changes_total{policy_name=\"require-team\",policy_namespace=\"-\",policy_type=\"cluster\",policy_validation_mode=\"audit\",policy_background_mode=\"true\",policy_change_type=\"create\"} 1",
        "bylaw_policy_rule_info_total{policy_name=\"disallow-latest-tag\",policy_namespace=\"-\",policy_type=\"cluster\",policy_validation_mode=\"enforce\",policy_background_mode=\"true\",rule_name=\"validate-image-tag\",rule_type=\"validate\",status_ready=\"true\"} 1",
    ] {
        assert!(text.contains(line), "missing {line}\n{text}");
    }
    assert!(
        text.contains("bylaw_policy_execution_duration_seconds_count{policy_name=\"require-team\"")
    );
    server.stop().await;
}

#[tokio::test]
async fn mutation_returns_a_json_patch_for_the_request_object() {
    const ADD_TEAM: &str = r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: add-team-label
spec:
  rules:
    - name: default-team
      match:
        any:
          - resources:
              kinds: [Pod]
      mutate:
        patchStrategicMerge:
          metadata:
            labels:
              +(team): unassigned
"#;
    let server = PolicyServer::start(
        &[("team.yaml", ADD_TEAM), ("latest.yaml", DISALLOW_LATEST)],
        Arc::new(EmptyContext),
    )
    .await;
    let object = pod("nginx", "nginx:1.27", json!({"app": "web"}));
    let response = server.review("/mutate/fail", &create(object.clone())).await;
    assert_eq!(response["allowed"], true);
    assert_eq!(response["patchType"], "JSONPatch");
    let mut patched = object;
    json_patch::patch(&mut patched, &support::decode_patch(&response)).unwrap();
    assert_eq!(
        patched["metadata"]["labels"],
        json!({"app": "web", "team": "unassigned"})
    );
    // The validating endpoint never patches.
    let validated = server.review("/validate/fail", &create(patched)).await;
    assert_eq!(validated["allowed"], true);
    assert!(validated.get("patch").is_none());
    server.stop().await;
}

#[tokio::test]
async fn policy_files_changed_on_disk_apply_without_restart() {
    let server =
        PolicyServer::start(&[("latest.yaml", DISALLOW_LATEST)], Arc::new(EmptyContext)).await;
    let latest = create(pod("nginx", "nginx:latest", json!({})));
    assert_eq!(
        server.review("/validate/fail", &latest).await["allowed"],
        false
    );

    // Switched to Audit on disk: the same request is admitted once the file is re-read.
    std::fs::write(
        server.path("latest.yaml"),
        DISALLOW_LATEST.replace("Enforce", "Audit"),
    )
    .unwrap();
    eventually(&server, &latest, "Audit policy", |r| r["allowed"] == true).await;

    // A broken file is reported and its policy skipped (the error names the field); the
    // server stays ready and admits what only that policy refused.
    std::fs::write(
        server.path("latest.yaml"),
        DISALLOW_LATEST
            .replace("Enforce", "Sometimes")
            .replace("kinds: [Pod]", "kinds: [Pod, Deployment]"),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        server.review("/validate/fail", &latest).await["allowed"],
        true
    );
    assert_eq!(
        server.client.get("/readyz", &[]).await.status,
        StatusCode::OK
    );

    // A new file adds a policy; fixing the broken one brings Enforce back.
    std::fs::write(server.path("team.yaml"), REQUIRE_TEAM).unwrap();
    std::fs::write(server.path("latest.yaml"), DISALLOW_LATEST).unwrap();
    let denied = eventually(&server, &latest, "Enforce again", |r| r["allowed"] == false).await;
    assert!(denied["status"]["message"]
        .as_str()
        .unwrap()
        .contains("disallow-latest-tag:"));
    let warned = eventually(
        &server,
        &create(pod("nginx", "nginx:1.27", json!({}))),
        "new policy",
        |r| r["warnings"].is_array(),
    )
    .await;
    assert_eq!(warned["allowed"], true);

    let text = server.metrics.encode_openmetrics().unwrap();
    assert!(text.contains("bylaw_policy_changes_total{policy_name=\"disallow-latest-tag\",policy_namespace=\"-\",policy_type=\"cluster\",policy_validation_mode=\"audit\",policy_background_mode=\"true\",policy_change_type=\"update\"} 1"), "{text}");
    server.stop().await;
}

#[tokio::test]
async fn not_ready_until_the_policies_load() {
    let server = PolicyServer::start_without_policies().await;
    let reply = server.client.get("/readyz", &[]).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.text(), "policies are not loaded yet");
    // Reviews before the first load follow the failure policy.
    let latest = create(pod("nginx", "nginx:latest", json!({})));
    let refused = server.review("/validate/fail", &latest).await;
    assert_eq!(refused["allowed"], false);
    assert_eq!(refused["status"]["code"], 500);
    assert_eq!(
        server.review("/validate/ignore", &latest).await["allowed"],
        true
    );

    std::fs::create_dir(server.path("policies")).unwrap();
    std::fs::write(server.path("policies/latest.yaml"), DISALLOW_LATEST).unwrap();
    let started = Instant::now();
    while server.client.get("/readyz", &[]).await.status != StatusCode::OK {
        assert!(started.elapsed() < Duration::from_secs(10), "never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let denied = server.review("/validate/fail", &latest).await;
    assert_eq!(denied["allowed"], false);
    assert_eq!(denied["status"]["code"], 403);
    server.stop().await;
}

#[tokio::test]
async fn a_broken_policy_never_holds_the_others_or_readiness_back() {
    let broken = REQUIRE_TEAM.replace("Audit", "Sometimes");
    let unsupported = r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: check-signatures
spec:
  validationFailureAction: Enforce
  rules:
    - name: verify-signature
      match:
        any:
          - resources:
              kinds: [Pod]
      verifyImages:
        - imageReferences: ["*"]
          attestors: []
"#;
    let server = PolicyServer::start(
        &[
            ("broken.yaml", broken.as_str()),
            ("latest.yaml", DISALLOW_LATEST),
            ("signatures.yaml", unsupported),
            ("unparsable.yaml", "kind: [unclosed\n"),
        ],
        Arc::new(EmptyContext),
    )
    .await;
    assert_eq!(
        server.client.get("/readyz", &[]).await.status,
        StatusCode::OK
    );
    // The valid policy enforces; the broken one adds no warning and the unsupported one
    // denies nothing it cannot check.
    let latest = create(pod("nginx", "nginx:latest", json!({})));
    let denied = server.review("/validate/fail", &latest).await;
    assert_eq!(denied["allowed"], false);
    let message = denied["status"]["message"].as_str().unwrap();
    assert!(message.contains("disallow-latest-tag:"), "{message}");
    assert!(!message.contains("check-signatures"), "{message}");
    let fine = server
        .review(
            "/validate/fail",
            &create(pod("nginx", "nginx:1.27", json!({}))),
        )
        .await;
    assert_eq!(fine["allowed"], true);
    assert!(fine.get("warnings").is_none(), "{fine}");

    let text = server.metrics.encode_openmetrics().unwrap();
    for line in [
        "bylaw_policies_not_loaded{reason=\"invalid\"} 1",
        "bylaw_policies_not_loaded{reason=\"unsupported\"} 1",
        "bylaw_policies_not_loaded{reason=\"unreadable\"} 1",
    ] {
        assert!(text.contains(line), "missing {line}\n{text}");
    }

    // Fixed on disk: the policy is served from the next reload on.
    std::fs::write(server.path("broken.yaml"), REQUIRE_TEAM).unwrap();
    eventually(
        &server,
        &create(pod("nginx", "nginx:1.27", json!({}))),
        "the fixed policy",
        |r| r["warnings"].is_array(),
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn update_allows_existing_violations_and_delete_sees_the_old_object() {
    const PROTECT: &str = r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: protect-pods
spec:
  validationFailureAction: Enforce
  rules:
    - name: keep-protected
      match:
        any:
          - resources:
              kinds: [Pod]
              operations: [DELETE]
      validate:
        message: "Pod {{ request.oldObject.metadata.name }} is protected."
        deny:
          conditions:
            any:
              - key: "{{ request.oldObject.metadata.labels.protected || '' }}"
                operator: Equals
                value: "true"
"#;
    let server = PolicyServer::start(
        &[("latest.yaml", DISALLOW_LATEST), ("protect.yaml", PROTECT)],
        Arc::new(EmptyContext),
    )
    .await;
    let on_latest = pod("legacy", "nginx:latest", json!({}));
    let relabelled = pod("legacy", "nginx:latest", json!({"release": "2"}));
    // Already on :latest before the edit: Kyverno's default allowExistingViolations admits it.
    let kept = server
        .review(
            "/validate/fail",
            &review("UPDATE", Some(relabelled.clone()), Some(on_latest.clone())),
        )
        .await;
    assert_eq!(kept["allowed"], true, "{kept}");
    // Moving to :latest is a new violation.
    let moved = server
        .review(
            "/validate/fail",
            &review(
                "UPDATE",
                Some(relabelled),
                Some(pod("legacy", "nginx:1.27", json!({}))),
            ),
        )
        .await;
    assert_eq!(moved["allowed"], false, "{moved}");

    let protected = pod("db", "postgres:latest", json!({"protected": "true"}));
    let refused = server
        .review("/validate/fail", &review("DELETE", None, Some(protected)))
        .await;
    assert_eq!(refused["allowed"], false);
    let message = refused["status"]["message"].as_str().unwrap();
    assert!(
        message.ends_with("protect-pods:\n  keep-protected: Pod db is protected.\n"),
        "{message:?}"
    );
    let deleted = server
        .review("/validate/fail", &review("DELETE", None, Some(on_latest)))
        .await;
    assert_eq!(deleted["allowed"], true, "{deleted}");
    server.stop().await;
}

/// Context whose ConfigMap lookups are slow, as an overloaded API server would be.
struct SlowConfigMaps(Duration);

impl ContextProvider for SlowConfigMaps {
    fn config_map(&self, namespace: &str, name: &str) -> Result<Option<Value>, ContextError> {
        std::thread::sleep(self.0);
        Ok(Some(json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace},
            "data": {"blocked": "no"}
        })))
    }
}

impl ContextSource for SlowConfigMaps {
    fn namespace_labels(&self, _namespace: &str) -> Option<BTreeMap<String, String>> {
        None
    }
}

fn config_policy(name: &str) -> String {
    format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: {name}
spec:
  validationFailureAction: Enforce
  rules:
    - name: check
      match:
        any:
          - resources:
              kinds: [Pod]
      context:
        - name: settings
          configMap: {{name: settings, namespace: default}}
      validate:
        message: blocked by settings
        deny:
          conditions:
            any:
              - key: "{{{{ settings.data.blocked }}}}"
                operator: Equals
                value: "yes"
"#
    )
}

/// Real evaluations that outlast the review deadline (1s timeout → 500ms budget): each policy
/// waits 800ms on a ConfigMap, so the evaluator gives up between policies and the server answers
/// by the endpoint's failure policy.
#[tokio::test]
async fn slow_evaluation_past_the_deadline_follows_each_failure_policy() {
    let first = config_policy("settings-a");
    let second = config_policy("settings-b");
    let third = config_policy("settings-c");
    let server = PolicyServer::start(
        &[
            ("a.yaml", first.as_str()),
            ("b.yaml", second.as_str()),
            ("c.yaml", third.as_str()),
        ],
        Arc::new(SlowConfigMaps(Duration::from_millis(800))),
    )
    .await;
    let body = create(pod("nginx", "nginx:1.27", json!({})));

    let started = Instant::now();
    let fail = server.review("/validate/fail?timeout=1s", &body).await;
    let answered_in = started.elapsed();
    assert_eq!(fail["allowed"], false, "{fail}");
    assert_eq!(fail["status"]["code"], 500);
    assert_eq!(
        fail["status"]["message"],
        "bylaw could not evaluate policies within the webhook timeout"
    );
    // Answered soon after the 500ms deadline, not after the 2.4s the three lookups take (the
    // margin absorbs a loaded CI machine).
    assert!(answered_in < Duration::from_millis(2000), "{answered_in:?}");

    let ignore = server.review("/validate/ignore?timeout=1s", &body).await;
    assert_eq!(ignore["allowed"], true, "{ignore}");
    assert_eq!(
        ignore["warnings"],
        json!(["bylaw could not evaluate policies within the webhook timeout; admitted because the webhook's failure policy is Ignore"])
    );

    // With the default 10s timeout the same evaluation completes and admits.
    let slow_but_fine = server.review("/validate/fail", &body).await;
    assert_eq!(slow_but_fine["allowed"], true, "{slow_but_fine}");

    let text = server.metrics.encode_openmetrics().unwrap();
    for policy in ["fail", "ignore"] {
        let line = format!("bylaw_admission_failures_total{{request_webhook=\"ValidatingWebhookConfiguration\",failure_policy=\"{policy}\",reason=\"deadline_exceeded\"}} 1");
        assert!(text.contains(&line), "missing {line}\n{text}");
    }
    server.stop().await;
}

/// A context source that notes the thread of every call: a `#[tokio::test]` runs the server on
/// the test's own thread, so a call from any other thread came from the blocking pool.
#[derive(Default)]
struct ThreadRecorder {
    calls: std::sync::Mutex<Vec<(&'static str, std::thread::ThreadId)>>,
}

impl ThreadRecorder {
    fn note(&self, what: &'static str) {
        self.calls
            .lock()
            .unwrap()
            .push((what, std::thread::current().id()));
    }

    /// The calls since the last look, each with whether it ran on the server's async thread.
    fn take(&self) -> Vec<(&'static str, bool)> {
        let here = std::thread::current().id();
        std::mem::take(&mut *self.calls.lock().unwrap())
            .into_iter()
            .map(|(what, thread)| (what, thread == here))
            .collect()
    }
}

impl ContextProvider for ThreadRecorder {
    fn config_map(&self, namespace: &str, name: &str) -> Result<Option<Value>, ContextError> {
        self.note("configMap");
        Ok(Some(json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace},
            "data": {"blocked": "yes"}
        })))
    }
}

impl ContextSource for ThreadRecorder {
    fn namespace_labels(&self, _namespace: &str) -> Option<BTreeMap<String, String>> {
        self.note("namespace");
        Some(BTreeMap::new())
    }
}

/// A set whose rules never ask the cluster is evaluated on the async thread; one rule with a
/// ConfigMap lookup sends the whole set to the blocking pool. Both answer as before.
#[tokio::test]
async fn sets_without_lookups_are_evaluated_inline_and_lookups_on_the_pool() {
    let context = Arc::new(ThreadRecorder::default());
    let server = PolicyServer::start(&[("latest.yaml", DISALLOW_LATEST)], context.clone()).await;
    let denied = server
        .review(
            "/validate/fail",
            &create(pod("web", "nginx:latest", json!({}))),
        )
        .await;
    assert_eq!(denied["allowed"], false, "{denied}");
    assert!(denied["status"]["message"]
        .as_str()
        .unwrap()
        .contains("Using a mutable image tag"));
    let admitted = server
        .review(
            "/validate/fail",
            &create(pod("web", "nginx:1.27", json!({}))),
        )
        .await;
    assert_eq!(admitted["allowed"], true, "{admitted}");
    let calls = context.take();
    assert!(!calls.is_empty());
    assert!(
        calls.iter().all(|(_, inline)| *inline),
        "evaluated off the async thread: {calls:?}"
    );
    server.stop().await;

    let settings = config_policy("settings");
    let server = PolicyServer::start(
        &[
            ("latest.yaml", DISALLOW_LATEST),
            ("settings.yaml", settings.as_str()),
        ],
        context.clone(),
    )
    .await;
    let denied = server
        .review(
            "/validate/fail",
            &create(pod("web", "nginx:1.27", json!({}))),
        )
        .await;
    assert_eq!(denied["allowed"], false, "{denied}");
    assert!(denied["status"]["message"]
        .as_str()
        .unwrap()
        .contains("blocked by settings"));
    let calls = context.take();
    assert!(
        calls.iter().any(|(what, _)| *what == "configMap"),
        "{calls:?}"
    );
    assert!(
        calls.iter().all(|(_, inline)| !inline),
        "a lookup ran on the async thread: {calls:?}"
    );
    server.stop().await;
}

/// A review whose evaluation outlasts the inline budget (a foreach querying the whole list per
/// element, over 300 containers) is started inline, given up, and evaluated again on the pool,
/// with the same answer.
#[tokio::test]
async fn an_evaluation_past_the_inline_budget_finishes_on_the_pool() {
    const UNIQUE_NAMES: &str = r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: unique-container-names
spec:
  validationFailureAction: Enforce
  rules:
    - name: each
      match:
        any:
          - resources:
              kinds: [Pod]
      validate:
        message: "container names must be unique"
        foreach:
          - list: request.object.spec.containers
            deny:
              conditions:
                any:
                  - key: "{{ length(request.object.spec.containers[?name == '{{element.name}}']) }}"
                    operator: GreaterThan
                    value: 1
"#;
    let context = Arc::new(ThreadRecorder::default());
    let server = PolicyServer::start(&[("unique.yaml", UNIQUE_NAMES)], context.clone()).await;
    let mut object = pod("web", "nginx:1.27", json!({}));
    let containers = |names: &mut dyn Iterator<Item = String>| {
        Value::Array(
            names
                .map(|name| json!({"name": name, "image": "nginx:1.27"}))
                .collect(),
        )
    };
    object["spec"]["containers"] = containers(&mut (0..300).map(|i| format!("c{i}")));
    let admitted = server
        .review("/validate/fail", &create(object.clone()))
        .await;
    assert_eq!(admitted["allowed"], true, "{admitted}");
    let calls = context.take();
    assert!(
        calls.first().is_some_and(|(_, inline)| *inline)
            && calls.last().is_some_and(|(_, inline)| !inline),
        "started inline, finished on the pool: {calls:?}"
    );

    object["spec"]["containers"] = containers(&mut (0..300).map(|i| format!("c{}", i.min(298))));
    let denied = server.review("/validate/fail", &create(object)).await;
    assert_eq!(denied["allowed"], false, "{denied}");
    assert!(denied["status"]["message"]
        .as_str()
        .unwrap()
        .contains("container names must be unique"));
    server.stop().await;
}

const DENY_KUBECTL_MANAGED: &str = r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: deny-kubectl-managed
spec:
  validationFailureAction: Enforce
  rules:
    - name: managed-by-controllers
      match:
        any:
          - resources:
              kinds: [Pod]
      validate:
        message: "Pods are created by controllers, not by kubectl."
        deny:
          conditions:
            any:
              - key: "{{ request.object.metadata.managedFields[0].manager || '' }}"
                operator: Equals
                value: kubectl-create
"#;

#[tokio::test]
async fn managed_fields_are_decoded_exactly_when_a_served_policy_reads_them() {
    let server =
        PolicyServer::start(&[("latest.yaml", DISALLOW_LATEST)], Arc::new(EmptyContext)).await;
    let with_managed_fields = |image: &str| {
        let mut pod = pod("nginx", image, json!({}));
        pod["metadata"]["managedFields"] = json!([{
            "manager": "kubectl-create",
            "operation": "Update",
            "apiVersion": "v1",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}}}}}
        }]);
        create(pod)
    };
    // No served policy reads them: they are left out, and the answers are the same.
    let latest = server
        .review("/validate/fail", &with_managed_fields("nginx:latest"))
        .await;
    assert_eq!(latest["allowed"], false, "{latest}");
    let pinned = server
        .review("/validate/fail", &with_managed_fields("nginx:1.27"))
        .await;
    assert_eq!(pinned["allowed"], true, "{pinned}");

    // A policy that reads them is added: from then on they reach it.
    std::fs::write(server.path("managed.yaml"), DENY_KUBECTL_MANAGED).unwrap();
    let denied = eventually(
        &server,
        &with_managed_fields("nginx:1.27"),
        "policy reading managedFields",
        |r| r["allowed"] == false,
    )
    .await;
    assert!(
        denied["status"]["message"]
            .as_str()
            .unwrap()
            .contains("not by kubectl"),
        "{denied}"
    );
    let without = server
        .review(
            "/validate/fail",
            &create(pod("nginx", "nginx:1.27", json!({}))),
        )
        .await;
    assert_eq!(without["allowed"], true, "{without}");
    server.stop().await;
}
