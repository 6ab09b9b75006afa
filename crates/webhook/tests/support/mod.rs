//! Test harness: a deterministic fake evaluator, a server on a loopback port with rcgen-made
//! certificates, and a rustls HTTPS client (HTTP/1.1 or HTTP/2).

#![allow(dead_code)]

pub mod openmetrics;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bylaw_runtime::{
    AdmissionEvaluator, EvalError, InlineEvaluation, Metrics, Phase, ReviewRequest, RuleOutcome,
    RuleResult, RuleType, Shutdown, Verdict,
};
use bylaw_webhook::{DevCa, DevCertificate, Server, WebhookConfig};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::{http1, http2};
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

pub type TestBody = BoxBody<Bytes, Infallible>;

/// A gate the slow evaluation waits on, so tests decide when it finishes.
#[derive(Default)]
pub struct Gate {
    open: Mutex<bool>,
    changed: Condvar,
}

impl Gate {
    pub fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.changed.notify_all();
    }

    /// Waits until opened, for at most `limit` of real time.
    fn wait(&self, limit: Duration) {
        let guard = self.open.lock().unwrap();
        let _ = self
            .changed
            .wait_timeout_while(guard, limit, |open| !*open)
            .unwrap();
    }
}

/// Decides by the object's labels:
/// - `deny=true`: validate denies (an enforced rule fails);
/// - `audit=true`: allowed with a warning (an audit rule fails);
/// - `slow=true`: blocks until the gate opens (at most 5s), then allows;
/// - `error=true`: returns an evaluation error whose text must never reach the user;
/// - `panic=true`: panics.
///
/// The mutate phase returns [`fixed_patch`].
#[derive(Default)]
pub struct FakeEvaluator {
    pub ready: AtomicBool,
    /// Evaluates on the server's async thread when asked to (except `slow=true` reviews).
    pub inline: AtomicBool,
    pub evaluations: AtomicUsize,
    pub inline_evaluations: AtomicUsize,
    pub slow_started: tokio::sync::Notify,
    pub gate: Gate,
}

pub const SECRET_ERROR_TEXT: &str = "connection to 10.0.0.7 refused (token=abc)";
pub const DENY_MESSAGE: &str =
    "validation error: label deny=true is not allowed. rule check-deny failed at path /metadata/labels/deny/";
pub const AUDIT_WARNING: &str = "policy audit-labels.check-audit: label audit=true is discouraged";

pub fn fixed_patch() -> json_patch::Patch {
    serde_json::from_value(json!([
        {"op": "add", "path": "/metadata/labels/mutated", "value": "true"},
        {"op": "replace", "path": "/spec/containers/0/image", "value": "registry.example/nginx:1.27"}
    ]))
    .unwrap()
}

fn outcome(
    policy: &str,
    rule: &str,
    rule_type: RuleType,
    result: RuleResult,
    enforce: bool,
) -> RuleOutcome {
    RuleOutcome {
        policy: policy.into(),
        policy_namespace: None,
        rule: rule.into(),
        rule_type,
        result,
        message: String::new(),
        enforce,
        background: true,
        duration: Duration::from_micros(30),
    }
}

fn has_label(request: &ReviewRequest, name: &str) -> bool {
    request
        .subject()
        .and_then(|o| o.pointer(&format!("/metadata/labels/{name}")))
        .and_then(Value::as_str)
        == Some("true")
}

impl AdmissionEvaluator for FakeEvaluator {
    fn try_evaluate_inline(
        &self,
        phase: Phase,
        request: ReviewRequest,
        budget: Instant,
        _failure_policy: Option<bylaw_runtime::admission::FailurePolicy>,
    ) -> InlineEvaluation {
        if !self.inline.load(Ordering::SeqCst) || has_label(&request, "slow") {
            return InlineEvaluation::Declined(Box::new(request));
        }
        self.inline_evaluations.fetch_add(1, Ordering::SeqCst);
        InlineEvaluation::Evaluated(self.evaluate(phase, &request, budget))
    }

    fn evaluate(
        &self,
        phase: Phase,
        request: &ReviewRequest,
        _deadline: Instant,
    ) -> Result<Verdict, EvalError> {
        self.evaluations.fetch_add(1, Ordering::SeqCst);
        let label = |name: &str| has_label(request, name);
        if label("slow") {
            self.slow_started.notify_one();
            self.gate.wait(Duration::from_secs(5));
            return Ok(Verdict::allow());
        }
        if label("error") {
            return Err(EvalError::Internal(SECRET_ERROR_TEXT.into()));
        }
        if label("panic") {
            panic!("evaluator bug");
        }
        match phase {
            Phase::Mutate => Ok(Verdict {
                allowed: true,
                patch: Some(fixed_patch()),
                results: vec![outcome(
                    "add-labels",
                    "mutated",
                    RuleType::Mutate,
                    RuleResult::Pass,
                    false,
                )],
                ..Verdict::default()
            }),
            Phase::Validate if label("deny") => Ok(Verdict {
                allowed: false,
                message: Some(DENY_MESSAGE.into()),
                results: vec![outcome(
                    "deny-label",
                    "check-deny",
                    RuleType::Validate,
                    RuleResult::Fail,
                    true,
                )],
                ..Verdict::default()
            }),
            Phase::Validate if label("audit") => Ok(Verdict {
                allowed: true,
                warnings: vec![AUDIT_WARNING.into()],
                results: vec![outcome(
                    "audit-labels",
                    "check-audit",
                    RuleType::Validate,
                    RuleResult::Fail,
                    false,
                )],
                ..Verdict::default()
            }),
            Phase::Validate => Ok(Verdict {
                allowed: true,
                results: vec![outcome(
                    "deny-label",
                    "check-deny",
                    RuleType::Validate,
                    RuleResult::Pass,
                    true,
                )],
                ..Verdict::default()
            }),
        }
    }

    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    fn validate_policy(&self, object: &Value) -> Result<(), Vec<String>> {
        match object.pointer("/spec/rules").and_then(Value::as_array) {
            Some(rules) if !rules.is_empty() => Ok(()),
            _ => Err(vec!["spec.rules: at least one rule is required".into()]),
        }
    }
}

pub fn pod(labels: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "labels": labels},
        "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}
    })
}

/// An AdmissionReview (v1) for a Pod CREATE.
pub fn review(uid: &str, namespace: &str, object: Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "web",
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
            "object": object,
            "oldObject": null,
            "dryRun": false,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
        }
    })
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub ca: Arc<DevCa>,
    pub evaluator: Arc<FakeEvaluator>,
    pub metrics: Metrics,
    pub shutdown: Shutdown,
    pub cert_dir: tempfile::TempDir,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub first_cert: DevCertificate,
    task: tokio::task::JoinHandle<()>,
}

pub fn names() -> Vec<String> {
    vec!["localhost".to_owned(), "127.0.0.1".to_owned()]
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(configure: impl FnOnce(&mut WebhookConfig)) -> TestServer {
        let cert_dir = tempfile::tempdir().unwrap();
        let ca = DevCa::generate("bylaw test CA").unwrap();
        let first_cert = ca.issue(&names()).unwrap();
        let (cert_file, key_file) = first_cert.write_files(cert_dir.path()).unwrap();
        let mut config = WebhookConfig::with_tls_files(&cert_file, &key_file);
        config.listen = "127.0.0.1:0".parse().unwrap();
        // Tests with paused time advance the clock whenever the runtime waits, even for bytes
        // in flight on loopback: a short body timeout would fire before the body arrives.
        config.body_read_timeout = Duration::from_secs(60);
        configure(&mut config);
        let evaluator = Arc::new(FakeEvaluator::default());
        evaluator.ready.store(true, Ordering::SeqCst);
        let metrics = Metrics::new("0.0.0-test");
        let server = Server::new_from_config(config, evaluator.clone(), metrics.clone()).unwrap();
        let bound = server.bind().await.unwrap();
        let addr = bound.local_addr();
        let shutdown = Shutdown::new();
        let signal = shutdown.signal();
        let task = tokio::spawn(async move { bound.run(signal).await.unwrap() });
        TestServer {
            addr,
            ca: Arc::new(ca),
            evaluator,
            metrics,
            shutdown,
            cert_dir,
            cert_file,
            key_file,
            first_cert,
            task,
        }
    }

    pub fn client(&self) -> Client {
        Client::new(self.addr, &self.ca.pem())
    }

    pub async fn stop(self) {
        self.evaluator.gate.open();
        self.shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("server stops after shutdown")
            .unwrap();
    }
}

/// A rustls client trusting only the test CA.
#[derive(Clone)]
pub struct Client {
    addr: SocketAddr,
    roots: Arc<rustls::RootCertStore>,
}

pub struct Reply {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub enum Conn {
    H1(http1::SendRequest<TestBody>),
    H2(http2::SendRequest<TestBody>),
}

pub struct Connection {
    pub conn: Conn,
    pub alpn: Option<Vec<u8>>,
    pub peer_certificate: CertificateDer<'static>,
}

impl Client {
    pub fn new(addr: SocketAddr, ca_pem: &str) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        Client {
            addr,
            roots: Arc::new(roots),
        }
    }

    fn connector(&self, alpn: &[u8]) -> TlsConnector {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(self.roots.clone())
            .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        TlsConnector::from(Arc::new(config))
    }

    /// Opens a TLS stream, offering one ALPN protocol.
    pub async fn tls(
        &self,
        alpn: &[u8],
    ) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(self.addr).await?;
        self.connector(alpn)
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
    }

    pub async fn connect(&self, http2: bool) -> Result<Connection, String> {
        let alpn: &[u8] = if http2 { b"h2" } else { b"http/1.1" };
        let tls = self.tls(alpn).await.map_err(|e| format!("tls: {e}"))?;
        let (_, session) = tls.get_ref();
        let negotiated = session.alpn_protocol().map(<[u8]>::to_vec);
        let peer_certificate = session
            .peer_certificates()
            .and_then(|chain| chain.first().cloned())
            .ok_or("no peer certificate")?;
        let io = TokioIo::new(tls);
        let conn = if http2 {
            let (sender, connection) = http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| format!("h2 handshake: {e}"))?;
            tokio::spawn(connection);
            Conn::H2(sender)
        } else {
            let (sender, connection) = http1::handshake(io)
                .await
                .map_err(|e| format!("h1 handshake: {e}"))?;
            tokio::spawn(connection);
            Conn::H1(sender)
        };
        Ok(Connection {
            conn,
            alpn: negotiated,
            peer_certificate,
        })
    }

    /// One request on a fresh HTTP/1.1 connection.
    pub async fn post_json(&self, path: &str, body: &Value) -> Reply {
        let mut connection = self.connect(false).await.unwrap();
        connection
            .send("POST", path, full(serde_json::to_vec(body).unwrap()), &[])
            .await
            .unwrap()
    }

    pub async fn post_bytes(&self, path: &str, body: Vec<u8>) -> Reply {
        let mut connection = self.connect(false).await.unwrap();
        connection
            .send("POST", path, full(body), &[])
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut connection = self.connect(false).await.unwrap();
        connection
            .send("GET", path, full(Vec::new()), headers)
            .await
            .unwrap()
    }
}

pub fn full(bytes: Vec<u8>) -> TestBody {
    Full::new(Bytes::from(bytes)).boxed()
}

impl Connection {
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        body: TestBody,
        headers: &[(&str, &str)],
    ) -> Result<Reply, String> {
        let h2 = matches!(self.conn, Conn::H2(_));
        // HTTP/2 requests carry scheme and authority in the URI; HTTP/1.1 uses a Host header.
        let uri = if h2 {
            format!("https://localhost{path}")
        } else {
            path.to_owned()
        };
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json");
        if !h2 {
            builder = builder.header("host", "localhost");
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(body).map_err(|e| e.to_string())?;
        let response = match &mut self.conn {
            Conn::H1(sender) => {
                sender.ready().await.map_err(|e| format!("h1 ready: {e}"))?;
                sender.send_request(request).await
            }
            Conn::H2(sender) => {
                sender.ready().await.map_err(|e| format!("h2 ready: {e}"))?;
                sender.send_request(request).await
            }
        }
        .map_err(|e| format!("request: {e}"))?;
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        Ok(Reply {
            status,
            content_type,
            body,
        })
    }

    pub fn sender_h2(&self) -> http2::SendRequest<TestBody> {
        match &self.conn {
            Conn::H2(sender) => sender.clone(),
            Conn::H1(_) => panic!("not an HTTP/2 connection"),
        }
    }
}

/// Decodes `response.patch` (base64 JSON patch).
pub fn decode_patch(response: &Value) -> json_patch::Patch {
    use base64::Engine as _;
    let encoded = response["patch"].as_str().expect("response has a patch");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("patch is base64");
    serde_json::from_slice(&bytes).expect("patch is a JSON patch")
}
