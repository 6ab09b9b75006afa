//! The in-cluster controllers through `kube::Client` against the fake API server: policies
//! applied, their status and events, the API server going away, and the cluster context with
//! its security rules. Admission is evaluated by the real `PolicyEvaluator` over the cache the
//! controllers fill, as `bylaw serve` wires them.

mod context;
mod generate;
mod lease;
mod policies;
mod reports;
mod webhooks;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bylaw_controller::generate::queue::QueueConfig;
use bylaw_controller::generate::GenerateConfig;
use bylaw_controller::{
    leadership, Cluster, ClusterContext, ClusterContextConfig, ClusterOptions, Leadership,
    LeadershipSender, Running,
};
use bylaw_runtime::admission::{
    AdmissionEvaluator, GroupVersionKind, GroupVersionResource, Operation, Phase, ReviewRequest,
    UserInfo, Verdict,
};
use bylaw_runtime::results::{ResourceRef, ResultsSender, ReviewOutcomes};
use bylaw_runtime::{results_channel, Metrics, PolicyCache, PolicyEvaluator, Shutdown};
use bylaw_test_support::apiserver::FakeApiServer;
use serde_json::{json, Value};

/// How long anything may take before a test gives up.
pub const WAIT: Duration = Duration::from_secs(10);

/// Polls `check` every 20 ms until it returns `Some`, or fails naming `what`.
pub async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(started.elapsed() < WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The fake API server with bylaw's CRDs and the controllers of `bylaw serve` running on it.
pub struct Harness {
    pub server: Arc<FakeApiServer>,
    pub cache: Arc<PolicyCache>,
    pub evaluator: Arc<PolicyEvaluator>,
    pub results: ResultsSender,
    pub running: Running,
    pub metrics: Metrics,
    /// Set when the harness was started without leadership.
    pub elector: Option<LeadershipSender>,
    shutdown: Shutdown,
}

impl Harness {
    pub async fn start() -> Harness {
        Self::start_with(|_| {}, Leadership::always(), None).await
    }

    /// A harness whose replica is not the leader until `elector.set(true)`.
    pub async fn start_follower() -> Harness {
        let (elector, leadership) = leadership();
        Self::start_with(|_| {}, leadership, Some(elector)).await
    }

    pub async fn start_with(
        configure: impl FnOnce(&mut (ClusterOptions, ClusterContextConfig)),
        leadership: Leadership,
        elector: Option<LeadershipSender>,
    ) -> Harness {
        let server = FakeApiServer::start().await;
        server.install_crds(
            bylaw_api::all_crds()
                .iter()
                .map(|crd| serde_json::to_value(crd).unwrap()),
        );
        Self::start_on(server, configure, leadership, elector).await
    }

    /// A harness on `server`, whose CRDs the caller installed.
    pub async fn start_on(
        server: FakeApiServer,
        configure: impl FnOnce(&mut (ClusterOptions, ClusterContextConfig)),
        leadership: Leadership,
        elector: Option<LeadershipSender>,
    ) -> Harness {
        Self::start_shared(Arc::new(server), configure, leadership, elector).await
    }

    /// Stops these controllers and starts new ones on the same API server, as a restart of
    /// bylaw does.
    pub async fn restart(self) -> Harness {
        self.shutdown.trigger();
        let server = Arc::clone(&self.server);
        drop(self);
        Self::start_shared(server, |_| {}, Leadership::always(), None).await
    }

    /// Stops the controllers, leaving the API server running.
    pub fn stop_controllers(&self) {
        self.shutdown.trigger();
    }

    /// A harness on a server another harness may have used.
    pub async fn start_shared(
        server: Arc<FakeApiServer>,
        configure: impl FnOnce(&mut (ClusterOptions, ClusterContextConfig)),
        leadership: Leadership,
        elector: Option<LeadershipSender>,
    ) -> Harness {
        let mut settings = (
            ClusterOptions {
                event_flush: Duration::from_millis(100),
                instance: "bylaw-test".into(),
                generate: GenerateConfig {
                    queue: QueueConfig {
                        base_backoff: Duration::from_millis(50),
                        max_backoff: Duration::from_millis(500),
                        ..QueueConfig::default()
                    },
                    ..GenerateConfig::default()
                },
                ..ClusterOptions::default()
            },
            ClusterContextConfig::default(),
        );
        configure(&mut settings);
        let (options, context_config) = settings;
        let metrics = Metrics::new("test");
        let cache = Arc::new(PolicyCache::new(metrics.clone()));
        let shutdown = Shutdown::new();
        let client = server.client();
        let context = ClusterContext::start(client.clone(), context_config, shutdown.signal());
        let evaluator = Arc::new(PolicyEvaluator::new(cache.clone(), context.clone()));
        let (results, outcomes) = results_channel(64, metrics.clone());
        let cluster = Cluster {
            client,
            namespace: "bylaw-system".into(),
            cache: cache.clone(),
            metrics: metrics.clone(),
            leadership,
            shutdown: shutdown.signal(),
        };
        let running = tokio::time::timeout(WAIT, cluster.run(context, options, outcomes))
            .await
            .expect("the controllers start once the context is listed");
        let harness = Harness {
            server,
            cache,
            evaluator,
            results,
            running,
            metrics,
            elector,
            shutdown,
        };
        eventually("the first policy set", || {
            harness.cache.is_loaded().then_some(())
        })
        .await;
        harness
    }

    /// Creates an object through the fake's store (watches see it as any client's write).
    pub fn apply(&self, object: Value) -> Value {
        self.server.upsert(object)
    }

    /// The stored policy's status.
    pub fn status(&self, kind: &str, namespace: Option<&str>, name: &str) -> Value {
        let api_version = if kind.ends_with("ValidatingPolicy") {
            "policies.kyverno.io/v1"
        } else {
            "kyverno.io/v1"
        };
        self.server
            .get(api_version, kind, namespace, name)
            .and_then(|p| p.get("status").cloned())
            .unwrap_or(Value::Null)
    }

    /// Waits for the policy's Ready condition to have `status` and returns it.
    pub async fn ready_condition(
        &self,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        status: &str,
    ) -> Value {
        eventually(&format!("{kind} {name} Ready={status}"), || {
            let condition = self.status(kind, namespace, name)["conditions"][0].clone();
            (condition["status"] == status).then_some(condition)
        })
        .await
    }

    /// Names of the policies served now.
    pub fn served(&self) -> Vec<String> {
        self.cache
            .current()
            .map(|set| set.policies.iter().map(|p| p.key()).collect())
            .unwrap_or_default()
    }

    /// Evaluates a review on the blocking pool, as the webhook does.
    pub async fn evaluate(&self, phase: Phase, review: ReviewRequest) -> Verdict {
        let evaluator = self.evaluator.clone();
        tokio::task::spawn_blocking(move || {
            evaluator
                .evaluate(phase, &review, Instant::now() + WAIT)
                .expect("evaluated")
        })
        .await
        .unwrap()
    }

    /// Events (`events.k8s.io/v1`) whose reason is `reason`.
    pub fn events(&self, reason: &str) -> Vec<Value> {
        self.server
            .list("events.k8s.io/v1", "Event", None)
            .into_iter()
            .filter(|e| e["reason"] == reason)
            .collect()
    }

    /// Sends admission outcomes as the webhook does after answering a review.
    pub fn send_outcomes(&self, review: &ReviewRequest, verdict: Verdict) {
        self.results.send(ReviewOutcomes {
            phase: Phase::Validate,
            request_uid: review.uid.clone(),
            resource: ResourceRef {
                kind: review.kind.clone(),
                namespace: review.namespace.clone(),
                name: review.name.clone(),
                uid: None,
            },
            operation: review.operation,
            dry_run: review.dry_run,
            allowed: verdict.allowed,
            at: SystemTime::now(),
            outcomes: verdict.results,
        });
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// A ClusterPolicy requiring the `team` label on Pods.
pub fn require_team(name: &str, action: &str) -> Value {
    json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": name},
        "spec": {
            "validationFailureAction": action,
            "rules": [{
                "name": "check-team",
                "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "validate": {
                    "message": "label team is required",
                    "pattern": {"metadata": {"labels": {"team": "?*"}}}
                }
            }]
        }
    })
}

/// A Pod CREATE review in `namespace` by `user` in `groups`.
pub fn pod_review(namespace: &str, labels: Value, user: &str, groups: &[&str]) -> ReviewRequest {
    ReviewRequest {
        uid: "review-1".into(),
        kind: GroupVersionKind {
            group: String::new(),
            version: "v1".into(),
            kind: "Pod".into(),
        },
        resource: GroupVersionResource {
            group: String::new(),
            version: "v1".into(),
            resource: "pods".into(),
        },
        sub_resource: None,
        request_kind: None,
        request_resource: None,
        request_sub_resource: None,
        name: "web".into(),
        namespace: Some(namespace.into()),
        operation: Operation::Create,
        user_info: UserInfo {
            username: user.into(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            ..UserInfo::default()
        },
        object: Some(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "namespace": namespace, "labels": labels},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}
        })),
        old_object: None,
        dry_run: false,
        options: None,
        managed_fields_left_out: false,
    }
}
