//! `bylaw serve` end to end: the real binary on the bundled examples with a development
//! certificate, answering the sample AdmissionReviews of `examples/admission-reviews` over HTTPS.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::Serve;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn serves_the_examples_and_answers_the_sample_reviews() {
    let root = repo_root();
    let serve = Serve::start(&[
        "--policies".into(),
        root.join("examples").into(),
        "--namespace-labels".into(),
        root.join("examples/admission-reviews/namespaces.yaml")
            .into(),
    ]);
    serve.wait_ready();

    // (review file, admitted, text the denial must contain)
    let cases: &[(&str, bool, &[&str])] = &[
        ("01-create-pod-compliant.json", true, &[]),
        (
            "02-create-pod-latest-tag.json",
            false,
            &["resource Pod/shop/web was blocked due to the following policies \n\ndisallow-latest-tag:\n  forbid-latest: 'validation error: The `latest` tag is not allowed. rule forbid-latest failed at path /spec/containers/0/image/"],
        ),
        (
            "03-create-pod-privileged.json",
            false,
            &[
                "disallow-latest-tag:\n  require-image-tag: ",
                "pod-security-restricted:\n  restricted: ",
                "spec.containers[0].securityContext.privileged",
            ],
        ),
        // The team label policy is Audit without emitWarning: admitted silently.
        ("04-create-configmap-without-team.json", true, &[]),
        ("05-update-pod-existing-violation.json", true, &[]),
        (
            "06-update-pod-new-violation.json",
            false,
            &["disallow-latest-tag:\n  forbid-latest: "],
        ),
        ("07-delete-pod.json", true, &[]),
        // kube-system is in the default resource filters: never evaluated.
        ("08-create-pod-kube-system.json", true, &[]),
    ];
    let dir = repo_root().join("examples/admission-reviews");
    for (file, admitted, fragments) in cases {
        let body = std::fs::read(dir.join(file)).unwrap();
        let sent: Value = serde_json::from_slice(&body).unwrap();
        let (status, answer) = serve.request("POST", "/validate/fail?timeout=10s", &body);
        assert_eq!(status, 200, "{file}: {answer}");
        let answer: Value = serde_json::from_str(&answer).unwrap();
        let response = &answer["response"];
        assert_eq!(response["uid"], sent["request"]["uid"], "{file}");
        assert_eq!(response["allowed"], *admitted, "{file}: {response}");
        let message = response["status"]["message"].as_str().unwrap_or_default();
        for fragment in *fragments {
            assert!(message.contains(fragment), "{file}: {message:?}");
        }
        assert!(response.get("warnings").is_none(), "{file}: {response}");

        // The add-team-label example patches only the Pod without a team label.
        let (status, answer) = serve.request("POST", "/mutate/fail", &body);
        assert_eq!(status, 200, "{file}: {answer}");
        let answer: Value = serde_json::from_str(&answer).unwrap();
        let patched = answer["response"]["patchType"] == "JSONPatch";
        assert_eq!(
            patched,
            *file == "03-create-pod-privileged.json",
            "{file}: {answer}"
        );
        assert_eq!(answer["response"]["allowed"], true, "{file}");
    }

    let (status, metrics) = serve.request("GET", "/metrics", b"");
    assert_eq!(status, 200);
    assert!(metrics.contains("bylaw_policy_rule_info_total{policy_name=\"disallow-latest-tag\""));
    assert!(metrics.contains("bylaw_policy_results_total{policy_name=\"pod-security-restricted\""));
    // The ValidatingPolicy example (Audit) is evaluated too.
    assert!(
        metrics.contains("bylaw_policy_results_total{policy_name=\"allowed-registries\""),
        "{metrics}"
    );
    serve.stop();
}

/// Standalone, outcomes go only to the debug log (and are not even sent when it is off): with
/// it on, each failing rule is logged with its policy, rule and message.
#[test]
fn with_debug_logging_failing_rules_are_logged() {
    let root = repo_root();
    let serve = Serve::start_logging(
        &[
            "--policies".into(),
            root.join("examples/disallow-latest-tag/policy.yaml").into(),
        ],
        "bylaw=debug,warn",
    );
    serve.wait_ready();
    let body = std::fs::read(root.join("examples/admission-reviews/02-create-pod-latest-tag.json"))
        .unwrap();
    let (status, answer) = serve.request("POST", "/validate/fail?timeout=10s", &body);
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("\"allowed\":false"), "{answer}");
    // The logging task takes outcomes in batches; give it time to write.
    let started = Instant::now();
    let logged = loop {
        // Piped, the log is plain text: no colour codes between a key and its value.
        let log = serve.log();
        if let Some(line) = log.lines().find(|l| l.contains("rule outcome")) {
            break line.to_owned();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "nothing logged: {log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        !logged.contains('\u{1b}'),
        "colour codes in a piped log: {logged:?}"
    );
    for fragment in [
        "policy=disallow-latest-tag",
        "rule=forbid-latest",
        "result=\"fail\"",
        "The `latest` tag is not allowed",
    ] {
        assert!(logged.contains(fragment), "{fragment} in {logged}");
    }
    serve.stop();
}

#[test]
fn missing_policy_directory_is_a_clear_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_bylaw"))
        .args([
            "serve",
            "--policies",
            "/nonexistent/bylaw-policies",
            "--dev-tls",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--policies /nonexistent/bylaw-policies: no such file or directory"),
        "{stderr}"
    );
}

#[test]
fn without_policies_or_a_cluster_the_error_says_what_to_pass() {
    let output = Command::new(env!("CARGO_BIN_EXE_bylaw"))
        .args(["serve", "--dev-tls", "--listen", "127.0.0.1:0"])
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("pass --policies DIR (standalone) or --kubeconfig FILE (a cluster)"),
        "{stderr}"
    );

    // Cluster flags make no sense with files.
    let output = Command::new(env!("CARGO_BIN_EXE_bylaw"))
        .args(["serve", "--policies", ".", "--exception-namespace", "x"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot be used with"), "{stderr}");
}
