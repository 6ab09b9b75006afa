//! `bylaw serve` end to end: the real binary on the bundled examples with a development
//! certificate, answering the sample AdmissionReviews of `examples/admission-reviews` over HTTPS.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Serve {
    child: Child,
    addr: String,
    tls: Arc<rustls::ClientConfig>,
    _dir: tempfile::TempDir,
}

impl Serve {
    fn start() -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let root = repo_root();
        let mut child = Command::new(env!("CARGO_BIN_EXE_bylaw"))
            .args(["serve", "--policies"])
            .arg(root.join("examples"))
            .arg("--namespace-labels")
            .arg(root.join("examples/admission-reviews/namespaces.yaml"))
            .args(["--dev-tls", "--dev-tls-dir"])
            .arg(dir.path())
            .args(["--listen", "127.0.0.1:0", "--log-filter", "warn"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("bylaw serve exited before listening")
                .unwrap();
            if let Some(addr) = line.strip_prefix("bylaw serve: listening on https://") {
                break addr.to_owned();
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));

        let ca = std::fs::read(dir.path().join("ca.crt")).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&ca) {
            roots.add(cert.unwrap()).unwrap();
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        Serve {
            child,
            addr,
            tls: Arc::new(tls),
            _dir: dir,
        }
    }

    /// One HTTP/1.1 request on a fresh TLS connection; returns the status and body.
    fn request(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        let conn = rustls::ClientConnection::new(
            self.tls.clone(),
            ServerName::try_from("localhost").unwrap(),
        )
        .unwrap();
        let tcp = TcpStream::connect(&self.addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut raw = Vec::new();
        if let Err(error) = stream.read_to_end(&mut raw) {
            // A peer that closes without close_notify still delivered the whole response.
            assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof, "{error}");
        }
        let text = String::from_utf8(raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, body.to_owned())
    }

    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let signalled = Command::new("kill").args(["-TERM", &pid]).status();
        if !signalled.is_ok_and(|s| s.success()) {
            self.child.kill().unwrap();
        }
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "bylaw serve exited with {status}");
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "bylaw serve did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn serves_the_examples_and_answers_the_sample_reviews() {
    let serve = Serve::start();
    let started = Instant::now();
    while serve.request("GET", "/readyz", b"").0 != 200 {
        assert!(started.elapsed() < Duration::from_secs(20), "never ready");
        std::thread::sleep(Duration::from_millis(20));
    }

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
