//! The HTTPS server: routes, admission handling with bounded work, and the accept loop.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bylaw_runtime::admission::FailurePolicy as PolicyFailure;
use bylaw_runtime::metrics::{ExecutionCause, ResourceLabels};
use bylaw_runtime::results::{ResourceRef, ReviewOutcomes};
use bylaw_runtime::{
    AdmissionEvaluator, EvalError, InlineEvaluation, Metrics, Operation, Phase, ResultsSender,
    ReviewRequest, ShutdownSignal, Verdict,
};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tracing::field::Empty;
use tracing::{instrument, Instrument, Span};

use crate::config::{evaluation_budget, WebhookConfig};
use crate::duration::parse_go_duration;
use crate::filter::{FilterError, ResourceFilters};
use crate::review::{
    parse_review_with, AdmissionResponse, ParseError, ParsedReview, ReviewVersion,
};
use crate::tls::{CertReloader, TlsError};

/// Longest an evaluation may hold an async thread; work that would take longer goes to the
/// blocking pool (and the evaluator stops trying inline for a while). A Pod Security review
/// takes 0.1–0.6 ms of CPU; the rest is room for the thread being preempted on a busy node.
const INLINE_BUDGET: Duration = Duration::from_millis(5);
/// Longest a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most connections served at once; more wait in the kernel's accept queue. The API server
/// keeps a few dozen; this bounds what idle or slow clients can hold (memory, descriptors).
const MAX_CONNECTIONS: usize = 4096;
/// Reviews up to this size are parsed on the async thread (tens of microseconds); larger ones
/// on the blocking pool.
const INLINE_PARSE_BYTES: usize = 64 * 1024;
/// Request bodies read or held at once, per evaluation slot: memory for bodies stays below
/// `BODIES_PER_SLOT × slots × --max-body-bytes` however many requests arrive.
const BODIES_PER_SLOT: usize = 4;
/// Streams an HTTP/2 client may reset before the server has accepted them (h2's default).
const MAX_PENDING_ACCEPT_RESETS: usize = 20;
/// Streams the server may reset on one HTTP/2 connection because the client misbehaved.
const MAX_LOCAL_ERROR_RESETS: usize = 1024;
/// Longest a client may take to send request headers (HTTP/1).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest open connections get to finish after shutdown starts.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// API-server review timeouts are between 1 and 30 seconds.
const MIN_REVIEW_TIMEOUT: Duration = Duration::from_secs(1);
const MAX_REVIEW_TIMEOUT: Duration = Duration::from_secs(30);

/// Errors starting or running the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No certificate configured.
    #[error("no TLS certificate configured: pass --tls-cert-file and --tls-key-file (or generate a development certificate)")]
    MissingTlsFiles,
    /// Certificate problems.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// `--resource-filters` does not parse.
    #[error("invalid --resource-filters: {0}")]
    Filters(#[from] FilterError),
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// What the endpoint does when evaluation fails: the webhook's `failurePolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Deny the request.
    Fail,
    /// Admit the request.
    Ignore,
}

impl FailurePolicy {
    fn as_str(self) -> &'static str {
        match self {
            FailurePolicy::Fail => "fail",
            FailurePolicy::Ignore => "ignore",
        }
    }
}

#[derive(Clone)]
struct AppState {
    evaluator: Arc<dyn AdmissionEvaluator>,
    metrics: Metrics,
    results: Option<ResultsSender>,
    filters: Arc<ResourceFilters>,
    permits: Arc<Semaphore>,
    /// Taken before a body is read and kept until its review is answered.
    body_permits: Arc<Semaphore>,
    max_body_bytes: usize,
    /// The API server sends a review in one go; a client that trickles holds a body slot for at
    /// most this long, not for the whole review deadline.
    body_read_timeout: Duration,
    timeout_margin: Duration,
    default_timeout: Duration,
}

/// The admission webhook server, configured but not yet listening.
pub struct Server {
    listen: SocketAddr,
    tls: Arc<CertReloader>,
    tls_reload_interval: Duration,
    state: AppState,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Validates the configuration and loads the certificate.
    pub fn new_from_config(
        config: WebhookConfig,
        evaluator: Arc<dyn AdmissionEvaluator>,
        metrics: Metrics,
    ) -> Result<Self, Error> {
        // Destructured so that a new flag cannot be silently ignored.
        let WebhookConfig {
            listen,
            tls_cert_file,
            tls_key_file,
            tls_reload_interval,
            max_body_bytes,
            body_read_timeout,
            max_concurrency,
            timeout_margin,
            default_timeout,
            resource_filters,
            own_namespace,
        } = config;
        let (Some(cert), Some(key)) = (tls_cert_file, tls_key_file) else {
            return Err(Error::MissingTlsFiles);
        };
        let tls = Arc::new(CertReloader::load(&cert, &key)?);
        let mut filters = ResourceFilters::parse(&resource_filters)?;
        let own_namespace = crate::config::resolve_namespace(own_namespace.as_deref());
        if !own_namespace.is_empty() {
            filters.exclude_namespace(&own_namespace);
        }
        let permits = max_concurrency.map_or_else(
            || std::thread::available_parallelism().map_or(4, |n| n.get().saturating_mul(2)),
            NonZeroUsize::get,
        );
        Ok(Server {
            listen,
            tls,
            tls_reload_interval,
            state: AppState {
                evaluator,
                metrics,
                results: None,
                filters: Arc::new(filters),
                permits: Arc::new(Semaphore::new(permits)),
                body_permits: Arc::new(Semaphore::new(permits.saturating_mul(BODIES_PER_SLOT))),
                max_body_bytes,
                body_read_timeout,
                timeout_margin,
                default_timeout,
            },
        })
    }

    /// Sends every review's rule outcomes to background reporting.
    #[must_use]
    pub fn with_results(mut self, results: ResultsSender) -> Self {
        self.state.results = Some(results);
        self
    }

    /// The HTTP routes, without TLS, for in-process tests.
    pub fn router(&self) -> Router {
        router(self.state.clone())
    }

    /// The certificate holder, e.g. to force a reload.
    pub fn certificates(&self) -> Arc<CertReloader> {
        self.tls.clone()
    }

    /// Binds the listen address.
    pub async fn bind(self) -> Result<BoundServer, Error> {
        let listener = TcpListener::bind(self.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: self.listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: self.listen,
            source,
        })?;
        Ok(BoundServer {
            listener,
            local_addr,
            router: router(self.state),
            tls: self.tls,
            tls_reload_interval: self.tls_reload_interval,
        })
    }

    /// Binds and serves until `shutdown`.
    pub async fn run(self, shutdown: ShutdownSignal) -> Result<(), Error> {
        self.bind().await?.run(shutdown).await
    }
}

/// A server bound to its address.
pub struct BoundServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    router: Router,
    tls: Arc<CertReloader>,
    tls_reload_interval: Duration,
}

impl std::fmt::Debug for BoundServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundServer")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl BoundServer {
    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves HTTPS (HTTP/1.1 and HTTP/2) until `shutdown`, then lets open requests finish for a
    /// short grace period.
    pub async fn run(self, shutdown: ShutdownSignal) -> Result<(), Error> {
        let BoundServer {
            listener,
            local_addr,
            router,
            tls,
            tls_reload_interval,
        } = self;
        let acceptor = TlsAcceptor::from(tls.server_config()?);
        let reload = tokio::spawn(tls.watch(tls_reload_interval, shutdown.clone()));

        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(256)
            // HTTP/2 rapid reset (CVE-2023-44487) and its mirror image: a client that resets
            // streams before they are served, or makes the server reset them, gets GOAWAY
            // past these counts. Set here, not left to hyper's defaults, so a dependency
            // update cannot lift them.
            .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESETS)
            .max_local_error_reset_streams(MAX_LOCAL_ERROR_RESETS);

        let graceful = GracefulShutdown::new();
        let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let stop = shutdown.wait();
        tokio::pin!(stop);
        tracing::info!(%local_addr, "admission webhook listening");
        loop {
            // A connection slot first: at the cap, new connections wait in the accept queue.
            let slot = tokio::select! {
                _ = &mut stop => break,
                slot = connections.clone().acquire_owned() => slot,
            };
            let Ok(slot) = slot else { break };
            let accepted = tokio::select! {
                _ = &mut stop => break,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Usually out of file descriptors; back off instead of spinning.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY");
            }
            let acceptor = acceptor.clone();
            let builder = builder.clone();
            let service = TowerToHyperService::new(router.clone());
            let watcher = graceful.watcher();
            tokio::spawn(
                async move {
                    let _slot = slot;
                    let tls_stream = match tokio::time::timeout(
                        HANDSHAKE_TIMEOUT,
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(tls_stream)) => tls_stream,
                        Ok(Err(error)) => {
                            tracing::debug!(%error, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!("TLS handshake timed out");
                            return;
                        }
                    };
                    let connection = builder
                        .serve_connection(TokioIo::new(tls_stream), service)
                        .into_owned();
                    if let Err(error) = watcher.watch(connection).await {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                }
                .instrument(tracing::debug_span!("connection", %peer)),
            );
        }
        drop(listener);
        tracing::info!("admission webhook stopping; waiting for open requests");
        if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("some connections did not finish within the grace period");
        }
        reload.abort();
        Ok(())
    }
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/validate/fail", post(validate_fail))
        .route("/validate/ignore", post(validate_ignore))
        .route("/mutate/fail", post(mutate_fail))
        .route("/mutate/ignore", post(mutate_ignore))
        .route("/validate/fail-policies", post(validate_fail_policies))
        .route("/validate/ignore-policies", post(validate_ignore_policies))
        .route("/mutate/fail-policies", post(mutate_fail_policies))
        .route("/mutate/ignore-policies", post(mutate_ignore_policies))
        .route("/policies/validate", post(policies_validate))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(Arc::new(state))
}

async fn validate_fail(State(state): State<Arc<AppState>>, request: Request) -> Response {
    admission(state, Phase::Validate, FailurePolicy::Fail, false, request).await
}

/// Only the policies whose `failurePolicy` is this path's: the webhooks bylaw registers.
async fn validate_fail_policies(State(state): State<Arc<AppState>>, request: Request) -> Response {
    admission(state, Phase::Validate, FailurePolicy::Fail, true, request).await
}

async fn validate_ignore(State(state): State<Arc<AppState>>, request: Request) -> Response {
    admission(
        state,
        Phase::Validate,
        FailurePolicy::Ignore,
        false,
        request,
    )
    .await
}

/// Only the policies whose `failurePolicy` is this path's: the webhooks bylaw registers.
async fn validate_ignore_policies(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Response {
    admission(state, Phase::Validate, FailurePolicy::Ignore, true, request).await
}

async fn mutate_fail(State(state): State<Arc<AppState>>, request: Request) -> Response {
    admission(state, Phase::Mutate, FailurePolicy::Fail, false, request).await
}

/// Only the policies whose `failurePolicy` is this path's: the webhooks bylaw registers.
async fn mutate_fail_policies(State(state): State<Arc<AppState>>, request: Request) -> Response {
    admission(state, Phase::Mutate, FailurePolicy::Fail, true, request).await
}

async fn mutate_ignore(State(state): State<Arc<AppState>>, request: Request) -> Response {
    admission(state, Phase::Mutate, FailurePolicy::Ignore, false, request).await
}

/// Only the policies whose `failurePolicy` is this path's: the webhooks bylaw registers.
async fn mutate_ignore_policies(State(state): State<Arc<AppState>>, request: Request) -> Response {
    admission(state, Phase::Mutate, FailurePolicy::Ignore, true, request).await
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.evaluator.is_ready() {
        (StatusCode::OK, "ok").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "policies are not loaded yet",
        )
            .into_response()
    }
}

async fn metrics(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let accept = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    match state.metrics.encode_for_accept(accept) {
        Ok((body, content_type)) => (
            [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
            body,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot encode metrics");
            json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

fn json_error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": message }).to_string();
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

fn review_response(response: &AdmissionResponse, version: ReviewVersion) -> Response {
    match response.to_review_json(version) {
        Ok(body) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot serialize the admission response");
            json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

/// The `?timeout=10s` the API server appends, clamped to the range Kubernetes allows.
fn review_timeout(query: Option<&str>, default: Duration) -> Duration {
    let requested = query.and_then(|query| {
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(key, _)| *key == "timeout")
            .and_then(|(_, value)| parse_go_duration(value).ok())
    });
    requested
        .unwrap_or(default)
        .clamp(MIN_REVIEW_TIMEOUT, MAX_REVIEW_TIMEOUT)
}

/// Reads a review body within the size limit and the deadline, or says why not.
/// With `leave_out_managed_fields` the objects are decoded without their managedFields (no
/// served policy can read them); the body comes back too, to decode again whole should the
/// policies change before the review is evaluated.
async fn read_review(
    state: &AppState,
    request: Request,
    deadline: Instant,
    leave_out_managed_fields: bool,
) -> Result<(ParsedReview, hyper::body::Bytes), Response> {
    let too_large = || {
        json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "request body is larger than the {} byte limit (--max-body-bytes)",
                state.max_body_bytes
            ),
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > state.max_body_bytes as u64) {
        return Err(too_large());
    }
    let body = Limited::new(request.into_body(), state.max_body_bytes);
    let read_by = deadline.min(Instant::now() + state.body_read_timeout);
    let bytes = match tokio::time::timeout_at(read_by, body.collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(error)) if error.downcast_ref::<LengthLimitError>().is_some() => {
            return Err(too_large())
        }
        Ok(Err(error)) => {
            return Err(json_error(
                StatusCode::BAD_REQUEST,
                &format!("cannot read request body: {error}"),
            ))
        }
        Err(_) => {
            return Err(json_error(
                StatusCode::REQUEST_TIMEOUT,
                "request body did not arrive in time",
            ))
        }
    };
    // Parsing a large review takes milliseconds of CPU: not on the async threads. A small one
    // costs less than the hand-off.
    let parsed = if bytes.len() <= INLINE_PARSE_BYTES {
        parse_review_with(&bytes, leave_out_managed_fields)
    } else {
        let body = bytes.clone();
        match tokio::task::spawn_blocking(move || {
            parse_review_with(&body, leave_out_managed_fields)
        })
        .await
        {
            Ok(parsed) => parsed,
            Err(_join_error) => {
                return Err(json_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error",
                ))
            }
        }
    };
    match parsed {
        Ok(parsed) => Ok((parsed, bytes)),
        Err(ParseError::Unanswerable(reason)) => {
            tracing::info!(%reason, "rejecting an unreadable AdmissionReview");
            Err(json_error(StatusCode::BAD_REQUEST, &reason))
        }
        Err(ParseError::Invalid {
            version,
            uid,
            reason,
        }) => {
            Span::current().record("uid", uid.as_str());
            tracing::info!(%reason, "rejecting an invalid AdmissionReview");
            Err(review_response(
                &AdmissionResponse::invalid(&uid, reason),
                version,
            ))
        }
    }
}

/// Why a review was answered by failure policy; the metric label and log field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    Overloaded,
    DeadlineExceeded,
    Panicked,
    Eval(&'static str),
}

impl Failure {
    fn reason(self) -> &'static str {
        match self {
            Failure::Overloaded => "overloaded",
            Failure::DeadlineExceeded => "deadline_exceeded",
            Failure::Panicked => "panic",
            Failure::Eval(kind) => kind,
        }
    }

    fn user_message(self) -> &'static str {
        match self {
            Failure::Overloaded
            | Failure::DeadlineExceeded
            | Failure::Eval("deadline_exceeded") => {
                "bylaw could not evaluate policies within the webhook timeout"
            }
            _ => "bylaw could not evaluate policies for this request",
        }
    }
}

/// A body slot, taken before the body is read so that bodies in memory stay bounded whatever
/// arrives; `Err` with an answer (503: the API server applies the webhook's failurePolicy)
/// when none frees up before the deadline.
async fn body_slot(
    state: &AppState,
    deadline: Instant,
) -> Result<tokio::sync::OwnedSemaphorePermit, Response> {
    match tokio::time::timeout_at(deadline, state.body_permits.clone().acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "bylaw is at its limit of requests in progress",
        )),
    }
}

/// Runs `work` on the blocking pool under a concurrency permit, giving up at `deadline`.
/// The permit is held until the work really finishes, so abandoned work still counts.
async fn run_bounded<T, F>(state: &AppState, deadline: Instant, work: F) -> Result<T, Failure>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let permit =
        match tokio::time::timeout_at(deadline, state.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_closed)) => return Err(Failure::Panicked),
            Err(_elapsed) => return Err(Failure::Overloaded),
        };
    let span = Span::current();
    let task = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        span.in_scope(work)
    });
    match tokio::time::timeout_at(deadline, task).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(_join_error)) => Err(Failure::Panicked),
        Err(_elapsed) => Err(Failure::DeadlineExceeded),
    }
}

/// Evaluates on this async thread when the evaluator can (no policy of the set may wait on
/// the cluster, decided per policy set) and a concurrency permit is free at once: a Pod
/// Security review takes about as long as the hand-off to the blocking pool and back. `Err`
/// gives the review back for [`run_bounded`].
///
/// The evaluator ends the work by [`INLINE_BUDGET`] (the engine checks it in its loops) and
/// declines what it could not finish, so this thread is held for about that long at most,
/// far below the review's deadline; the deadline needs no timer here. A panic is caught and
/// answered as the blocking path answers a panicked task.
fn evaluate_inline(
    state: &AppState,
    phase: Phase,
    review: ReviewRequest,
    deadline: std::time::Instant,
    only: Option<PolicyFailure>,
) -> Result<Result<Result<Verdict, EvalError>, Failure>, Box<ReviewRequest>> {
    let Ok(_permit) = state.permits.try_acquire() else {
        return Err(Box::new(review));
    };
    let budget = deadline.min(std::time::Instant::now() + INLINE_BUDGET);
    let evaluated = std::panic::catch_unwind(AssertUnwindSafe(|| {
        state
            .evaluator
            .try_evaluate_inline(phase, review, budget, only)
    }));
    match evaluated {
        Ok(InlineEvaluation::Evaluated(outcome)) => Ok(Ok(outcome)),
        Ok(InlineEvaluation::Declined(review)) => Err(review),
        Err(_panic) => Ok(Err(Failure::Panicked)),
    }
}

fn record_span_fields(request: &ReviewRequest) {
    let span = Span::current();
    span.record("uid", request.uid.as_str());
    span.record("kind", request.kind.kind.as_str());
    span.record("namespace", request.namespace.as_deref().unwrap_or(""));
    span.record("name", request.name.as_str());
    span.record("operation", request.operation.as_str());
}

struct RequestLabels {
    kind: String,
    namespace: Option<String>,
    operation: Operation,
}

impl RequestLabels {
    fn of(request: &ReviewRequest) -> Self {
        RequestLabels {
            kind: request.kind.kind.clone(),
            namespace: request.namespace.clone(),
            operation: request.operation,
        }
    }

    fn resource(&self) -> ResourceLabels<'_> {
        ResourceLabels {
            kind: &self.kind,
            namespace: self.namespace.as_deref(),
            operation: self.operation,
        }
    }
}

#[instrument(
    name = "admission",
    skip_all,
    fields(phase = %phase, failure_policy = failure_policy.as_str(), uid = Empty, kind = Empty, namespace = Empty, name = Empty, operation = Empty)
)]
async fn admission(
    state: Arc<AppState>,
    phase: Phase,
    failure_policy: FailurePolicy,
    only: bool,
    request: Request,
) -> Response {
    let started = Instant::now();
    let query = request.uri().query().map(str::to_owned);
    let timeout = review_timeout(query.as_deref(), state.default_timeout);
    let deadline = started + evaluation_budget(timeout, state.timeout_margin);
    let _body_slot = match body_slot(&state, deadline).await {
        Ok(slot) => slot,
        Err(response) => {
            state.metrics.record_admission_failure(
                phase,
                failure_policy == FailurePolicy::Fail,
                Failure::Overloaded.reason(),
            );
            return response;
        }
    };
    let leave_out_managed_fields = !state.evaluator.reads_managed_fields(phase);
    let (
        ParsedReview {
            version,
            request: review,
        },
        body,
    ) = match read_review(&state, request, deadline, leave_out_managed_fields).await {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    record_span_fields(&review);
    let uid = review.uid.clone();

    if state.filters.matches(&review) {
        tracing::debug!("resource filtered; admitted without evaluation");
        return review_response(&AdmissionResponse::allow(&uid), version);
    }

    let labels = RequestLabels::of(&review);
    // What the answer and the results need of the review, so the review itself (its objects)
    // can be handed to the evaluator whole.
    let reviewed = Reviewed::of(&review);
    let std_deadline = deadline.into_std();
    let only = only.then_some(match failure_policy {
        FailurePolicy::Fail => PolicyFailure::Fail,
        FailurePolicy::Ignore => PolicyFailure::Ignore,
    });
    let outcome = match evaluate_inline(&state, phase, review, std_deadline, only) {
        Ok(outcome) => outcome,
        Err(review) => {
            let evaluator = state.evaluator.clone();
            run_bounded(&state, deadline, move || {
                evaluator.evaluate_owned(phase, *review, std_deadline, only)
            })
            .await
        }
    };
    let outcome = match outcome {
        Ok(Err(EvalError::ManagedFieldsLeftOut)) => {
            // The policies changed since the body was decoded and can now read the
            // managedFields: decode it again whole (it decoded once, so it does again).
            match parse_review_with(&body, false) {
                Ok(whole) => {
                    let evaluator = state.evaluator.clone();
                    run_bounded(&state, deadline, move || {
                        evaluator.evaluate_owned(phase, whole.request, std_deadline, only)
                    })
                    .await
                }
                Err(_) => outcome,
            }
        }
        outcome => outcome,
    };

    let failure = match outcome {
        Ok(Ok(verdict)) => {
            // Under load, yielding before the answer lets the other reviews this worker has
            // ready be evaluated first, so that answers go out in bursts: the server and its
            // client switch threads less often (docs/performance.md, round 13). Not before the
            // evaluation: reviews run in between would push this one's object out of the cache
            // (round 14). A review no policy evaluated (no outcome) does not yield.
            if !verdict.results.is_empty() {
                tokio::task::yield_now().await;
            }
            return answer_verdict(&state, phase, version, reviewed, verdict, &labels, started);
        }
        Ok(Err(error)) => {
            tracing::warn!(error = %error, kind = error.kind(), "policy evaluation failed");
            Failure::Eval(error.kind())
        }
        Err(failure) => {
            tracing::warn!(
                reason = failure.reason(),
                "policy evaluation did not complete"
            );
            failure
        }
    };
    state.metrics.record_admission_failure(
        phase,
        failure_policy == FailurePolicy::Fail,
        failure.reason(),
    );
    let response = match failure_policy {
        FailurePolicy::Fail => AdmissionResponse::refuse(
            &uid,
            failure.user_message().to_owned(),
            500,
            "InternalError",
        ),
        FailurePolicy::Ignore => AdmissionResponse::allow(&uid).with_warnings(vec![format!(
            "{}; admitted because the webhook's failure policy is Ignore",
            failure.user_message()
        )]),
    };
    state.metrics.record_admission(
        phase,
        labels.resource(),
        response.allowed,
        started.elapsed(),
    );
    review_response(&response, version)
}

/// The parts of a review its answer and its results need once the evaluator has the review.
struct Reviewed {
    uid: String,
    resource: ResourceRef,
    operation: Operation,
    dry_run: bool,
}

impl Reviewed {
    fn of(review: &ReviewRequest) -> Self {
        let object_uid = review
            .subject()
            .and_then(|object| object.pointer("/metadata/uid"))
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned);
        Reviewed {
            uid: review.uid.clone(),
            resource: ResourceRef {
                kind: review.kind.clone(),
                namespace: review.namespace.clone(),
                name: review.name.clone(),
                uid: object_uid,
            },
            operation: review.operation,
            dry_run: review.dry_run,
        }
    }
}

fn answer_verdict(
    state: &AppState,
    phase: Phase,
    version: ReviewVersion,
    review: Reviewed,
    verdict: Verdict,
    labels: &RequestLabels,
    started: Instant,
) -> Response {
    let Verdict {
        allowed,
        message,
        warnings,
        patch,
        results,
    } = verdict;
    let mut response = if allowed {
        AdmissionResponse::allow(&review.uid)
    } else {
        let message = message
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| "denied by bylaw policy".to_owned());
        AdmissionResponse::refuse(&review.uid, message, 403, "")
    };
    response = response.with_warnings(warnings);
    if let Some(patch) = patch {
        if phase == Phase::Mutate && allowed {
            response = match response.with_patch(&patch) {
                Ok(with_patch) => with_patch,
                Err(error) => {
                    tracing::error!(%error, "cannot serialize the mutation patch");
                    return json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
                }
            };
        } else if !patch.0.is_empty() {
            tracing::debug!("ignoring a patch returned outside an allowed mutation");
        }
    }

    state.metrics.record_rule_outcomes(
        &results,
        ExecutionCause::AdmissionRequest,
        labels.resource(),
    );
    state.metrics.record_policy_evaluations(&results);
    state
        .metrics
        .record_admission(phase, labels.resource(), allowed, started.elapsed());
    if allowed {
        tracing::debug!(rules = results.len(), "admitted");
    } else {
        tracing::info!(rules = results.len(), "denied");
    }
    if let Some(sender) = &state.results {
        sender.send(ReviewOutcomes {
            phase,
            request_uid: review.uid,
            resource: review.resource,
            operation: review.operation,
            dry_run: review.dry_run,
            allowed,
            at: SystemTime::now(),
            outcomes: results,
        });
    }
    review_response(&response, version)
}

#[instrument(
    name = "policy_validation",
    skip_all,
    fields(uid = Empty, kind = Empty, namespace = Empty, name = Empty, operation = Empty)
)]
async fn policies_validate(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let timeout = review_timeout(request.uri().query(), state.default_timeout);
    let deadline = Instant::now() + evaluation_budget(timeout, state.timeout_margin);
    let _body_slot = match body_slot(&state, deadline).await {
        Ok(slot) => slot,
        Err(response) => return response,
    };
    let (
        ParsedReview {
            version,
            request: review,
        },
        _body,
    ) = match read_review(&state, request, deadline, false).await {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    record_span_fields(&review);
    let uid = review.uid;
    let Some(object) = review.object else {
        // DELETE carries no new object; removing a policy is always allowed.
        return review_response(&AdmissionResponse::allow(&uid), version);
    };
    let evaluator = state.evaluator.clone();
    let response =
        match run_bounded(&state, deadline, move || evaluator.validate_policy(&object)).await {
            Ok(Ok(())) => AdmissionResponse::allow(&uid),
            Ok(Err(problems)) => {
                tracing::info!(problems = problems.len(), "policy rejected");
                let message = if problems.is_empty() {
                    "invalid policy".to_owned()
                } else {
                    format!("invalid policy: {}", problems.join("; "))
                };
                AdmissionResponse::refuse(&uid, message, 400, "Invalid")
            }
            Err(failure) => {
                tracing::warn!(
                    reason = failure.reason(),
                    "policy validation did not complete"
                );
                AdmissionResponse::refuse(
                    &uid,
                    "bylaw could not validate the policy; try again".to_owned(),
                    500,
                    "InternalError",
                )
            }
        };
    review_response(&response, version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_query_is_read_and_clamped() {
        let default = Duration::from_secs(10);
        let s = Duration::from_secs;
        assert_eq!(review_timeout(Some("timeout=5s"), default), s(5));
        assert_eq!(review_timeout(Some("a=b&timeout=2m"), default), s(30));
        assert_eq!(review_timeout(Some("timeout=100ms"), default), s(1));
        assert_eq!(review_timeout(Some("timeout=soon"), default), s(10));
        assert_eq!(review_timeout(None, default), s(10));
    }

    #[test]
    fn failure_messages_are_opaque() {
        for failure in [
            Failure::Overloaded,
            Failure::DeadlineExceeded,
            Failure::Panicked,
            Failure::Eval("internal"),
        ] {
            let message = failure.user_message();
            assert!(message.starts_with("bylaw could not evaluate policies"));
        }
    }
}
