//! The Prometheus registry and bylaw's metric families.
//!
//! Names and labels mirror Kyverno's (`kyverno_*` → `bylaw_*`) so its dashboards translate. Labels
//! are bounded: kinds, namespaces, policy and rule names, never a resource name, uid or error text.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use prometheus_client::encoding::{text, EncodeLabelSet};
use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};

use crate::admission::{Operation, Phase, RuleOutcome, RuleResult, RuleType};

/// Buckets for a whole admission review, fine enough below a millisecond.
pub const ADMISSION_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Buckets for one rule, starting at ten microseconds.
pub const RULE_BUCKETS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Content type of the OpenMetrics text exposition.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the classic Prometheus text exposition (format 0.0.4).
pub const PROMETHEUS_TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Labels of `bylaw_admission_requests_total` and `bylaw_admission_review_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AdmissionLabels {
    /// `"true"` or `"false"`.
    pub request_allowed: &'static str,
    /// `MutatingWebhookConfiguration` or `ValidatingWebhookConfiguration`.
    pub request_webhook: &'static str,
    /// Kind of the reviewed resource.
    pub resource_kind: String,
    /// Namespace of the reviewed resource, `-` when cluster-scoped.
    pub resource_namespace: String,
    /// `create`, `update`, `delete` or `connect`.
    pub resource_request_operation: &'static str,
}

/// Labels of `bylaw_policy_results_total` and `bylaw_policy_execution_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyResultLabels {
    /// Policy name.
    pub policy_name: String,
    /// Policy namespace, `-` for cluster policies.
    pub policy_namespace: String,
    /// `cluster` or `namespaced`.
    pub policy_type: &'static str,
    /// `enforce` or `audit`.
    pub policy_validation_mode: &'static str,
    /// `"true"` or `"false"`.
    pub policy_background_mode: &'static str,
    /// Rule name.
    pub rule_name: String,
    /// `validate`, `mutate`, `generate` or `imageVerify`.
    pub rule_type: &'static str,
    /// `pass`, `fail`, `warn`, `error` or `skip`.
    pub rule_result: &'static str,
    /// `admission_request` or `background_scan`.
    pub rule_execution_cause: &'static str,
    /// Kind of the evaluated resource.
    pub resource_kind: String,
    /// Namespace of the evaluated resource, `-` when cluster-scoped.
    pub resource_namespace: String,
    /// `create`, `update`, `delete` or `connect`.
    pub resource_request_operation: &'static str,
}

/// Labels of `bylaw_policy_rule_info_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleInfoLabels {
    /// Policy name.
    pub policy_name: String,
    /// Policy namespace, `-` for cluster policies.
    pub policy_namespace: String,
    /// `cluster` or `namespaced`.
    pub policy_type: &'static str,
    /// `enforce` or `audit`.
    pub policy_validation_mode: &'static str,
    /// `"true"` or `"false"`.
    pub policy_background_mode: &'static str,
    /// Rule name.
    pub rule_name: String,
    /// `validate`, `mutate`, `generate` or `imageVerify`.
    pub rule_type: &'static str,
    /// `"true"` when the policy is ready to serve admission.
    pub status_ready: &'static str,
}

/// Labels of `bylaw_policy_changes_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyChangeLabels {
    /// Policy name.
    pub policy_name: String,
    /// Policy namespace, `-` for cluster policies.
    pub policy_namespace: String,
    /// `cluster` or `namespaced`.
    pub policy_type: &'static str,
    /// `enforce` or `audit`.
    pub policy_validation_mode: &'static str,
    /// `"true"` or `"false"`.
    pub policy_background_mode: &'static str,
    /// `create`, `update` or `delete`.
    pub policy_change_type: &'static str,
}

/// Labels of `bylaw_admission_failures_total`: admission requests answered by failure policy.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// `MutatingWebhookConfiguration` or `ValidatingWebhookConfiguration`.
    pub request_webhook: &'static str,
    /// `fail` or `ignore`.
    pub failure_policy: &'static str,
    /// Bounded reason, e.g. `deadline_exceeded`, `internal`.
    pub reason: &'static str,
}

/// Labels of `bylaw_policy_results_dropped_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabels {
    /// `full` or `closed`.
    pub reason: &'static str,
}

/// Labels of `bylaw_policy_load_errors_total` and `bylaw_policies_not_loaded`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LoadErrorLabels {
    /// `unreadable`, `invalid`, `unsupported` or `duplicate`.
    pub reason: &'static str,
}

/// Labels of `bylaw_policy_evaluations_total` and `bylaw_policy_evaluation_seconds_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyCostLabels {
    /// Policy name.
    pub policy_name: String,
    /// Policy namespace, `-` for cluster policies.
    pub policy_namespace: String,
}

impl PolicyResultLabels {
    /// The labels of `outcome` for a resource of `kind` in `namespace`.
    fn of(
        outcome: &RuleOutcome,
        cause: ExecutionCause,
        kind: &str,
        namespace: Option<&str>,
        operation: &'static str,
    ) -> Self {
        let policy_namespace = outcome.policy_namespace.as_deref();
        PolicyResultLabels {
            policy_name: outcome.policy.to_string(),
            policy_namespace: dash(policy_namespace),
            policy_type: policy_type(policy_namespace),
            policy_validation_mode: validation_mode(outcome.enforce),
            policy_background_mode: bool_label(outcome.background),
            rule_name: outcome.rule.to_string(),
            rule_type: outcome.rule_type.metric_label(),
            rule_result: outcome.result.as_str(),
            rule_execution_cause: cause.label(),
            resource_kind: kind.to_owned(),
            resource_namespace: dash(namespace),
            resource_request_operation: operation,
        }
    }
}

impl PolicyCostLabels {
    /// Overwrites these labels with `outcome`'s policy, reusing the buffers.
    fn set(&mut self, outcome: &RuleOutcome) {
        self.policy_name.clear();
        self.policy_name.push_str(&outcome.policy);
        self.policy_namespace.clear();
        self.policy_namespace
            .push_str(match outcome.policy_namespace.as_deref() {
                Some(namespace) if !namespace.is_empty() => namespace,
                _ => "-",
            });
    }
}

/// The outcomes of one review grouped by policy (a policy's outcomes are adjacent): each
/// group's first outcome and the seconds its rules took.
fn policy_groups(outcomes: &[RuleOutcome]) -> impl Iterator<Item = (&RuleOutcome, f64)> {
    let mut rest = outcomes;
    std::iter::from_fn(move || {
        let first = rest.first()?;
        let same = rest
            .iter()
            .take_while(|o| {
                o.policy == first.policy && o.policy_namespace == first.policy_namespace
            })
            .count();
        let (group, tail) = rest.split_at(same);
        rest = tail;
        let seconds = group.iter().map(|o| o.duration).sum::<Duration>();
        Some((first, seconds.as_secs_f64()))
    })
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InfoLabels {
    version: String,
}

/// Why a rule ran: the `rule_execution_cause` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExecutionCause {
    /// `admission_request`
    AdmissionRequest,
    /// `background_scan`
    BackgroundScan,
}

impl ExecutionCause {
    fn label(self) -> &'static str {
        match self {
            ExecutionCause::AdmissionRequest => "admission_request",
            ExecutionCause::BackgroundScan => "background_scan",
        }
    }
}

/// What happened to a policy: the `policy_change_type` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyChange {
    /// `create`
    Create,
    /// `update`
    Update,
    /// `delete`
    Delete,
}

/// Identity of a policy as metric labels see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyIdentity<'a> {
    /// Policy name.
    pub name: &'a str,
    /// Namespace of a namespaced `Policy`; `None` for a `ClusterPolicy`.
    pub namespace: Option<&'a str>,
    /// Failure action is `Enforce`.
    pub enforce: bool,
    /// `spec.background`.
    pub background: bool,
}

/// The resource a request or scan is about, as metric labels see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResourceLabels<'a> {
    /// Kind, e.g. `Pod`.
    pub kind: &'a str,
    /// Namespace; `None` when cluster-scoped.
    pub namespace: Option<&'a str>,
    /// Operation that triggered evaluation.
    pub operation: Operation,
}

/// Cumulative evaluation count and time of one policy (see [`Metrics::policy_cost`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PolicyCost {
    /// Evaluations so far.
    pub evaluations: u64,
    /// Seconds spent in them.
    pub seconds: f64,
}

/// Builds histograms with fixed buckets for a [`Family`].
#[derive(Clone, Copy, Debug)]
pub struct Buckets(&'static [f64]);

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(self.0.iter().copied())
    }
}

/// The shared metrics registry. Cheap to clone; all clones update the same series.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<RwLock<Registry>>,
    admission_requests: Family<AdmissionLabels, Counter>,
    admission_review_duration: Family<AdmissionLabels, Histogram, Buckets>,
    admission_failures: Family<FailureLabels, Counter>,
    policy_results: Family<PolicyResultLabels, Counter>,
    policy_execution_duration: Family<PolicyResultLabels, Histogram, Buckets>,
    policy_rule_info: Family<RuleInfoLabels, Gauge>,
    policy_changes: Family<PolicyChangeLabels, Counter>,
    results_dropped: Family<DropLabels, Counter>,
    policy_load_errors: Family<LoadErrorLabels, Counter>,
    policies_not_loaded: Family<LoadErrorLabels, Gauge>,
    policy_evaluations: Family<PolicyCostLabels, Counter>,
    policy_evaluation_seconds: Family<PolicyCostLabels, Counter<f64, AtomicU64>>,
    /// The rule-outcome series admission has used, each found with one quick lookup rather
    /// than one SipHash lookup per family: a review records a few dozen outcomes.
    rule_series: Arc<RwLock<RuleSeriesMap>>,
    /// The policy-cost series admission has used, found the same way: a review records one
    /// evaluation per policy.
    cost_series: Arc<RwLock<CostSeriesMap>>,
}

type FoldHash = foldhash::fast::RandomState;

/// `bylaw_policy_results_total` and `bylaw_policy_execution_duration_seconds` of one label set,
/// in two levels: the resource's labels are the same for every outcome of a review, so they
/// are looked up once, and each outcome hashes and compares only its policy's and rule's.
type RuleSeriesMap =
    HashMap<ResourceSeriesKey, HashMap<OutcomeSeriesKey, (Counter, Histogram), FoldHash>, FoldHash>;

/// The labels of a rule outcome that come from the request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ResourceSeriesKey {
    cause: ExecutionCause,
    kind: String,
    namespace: Option<String>,
    operation: Operation,
}

/// A policy or rule name compared and hashed by its address. The compiled policy set gives
/// every outcome of a rule the same `Arc`s, so a series is found without reading a name. The
/// key holds its `Arc`, so the address cannot pass to another name while the entry exists.
/// A name that arrives as a new `Arc` each time only adds entries, which
/// [`MAX_FAST_SERIES`] bounds.
#[derive(Clone, Debug)]
struct ByAddress(Arc<str>);

impl PartialEq for ByAddress {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for ByAddress {}

impl std::hash::Hash for ByAddress {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::ptr::hash(Arc::as_ptr(&self.0).cast::<u8>(), state);
    }
}

impl ByAddress {
    /// Points at `name`, taking a reference only when it is another `Arc`.
    fn point_at(&mut self, name: &Arc<str>) {
        if !Arc::ptr_eq(&self.0, name) {
            self.0 = Arc::clone(name);
        }
    }
}

/// Entries a fast-lookup map holds before it is emptied and refilled from the families
/// (which keep every series): a bound for names that do not come from a compiled policy set.
const MAX_FAST_SERIES: usize = 65_536;

/// The labels of a rule outcome that come from its policy and rule (`policy_type` and
/// `policy_validation_mode` follow from `policy_namespace` and `enforce`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct OutcomeSeriesKey {
    policy: ByAddress,
    policy_namespace: Option<String>,
    rule: ByAddress,
    rule_type: RuleType,
    result: RuleResult,
    enforce: bool,
    background: bool,
}

impl OutcomeSeriesKey {
    fn of(outcome: &RuleOutcome) -> Self {
        OutcomeSeriesKey {
            policy: ByAddress(Arc::clone(&outcome.policy)),
            policy_namespace: outcome.policy_namespace.clone(),
            rule: ByAddress(Arc::clone(&outcome.rule)),
            rule_type: outcome.rule_type,
            result: outcome.result,
            enforce: outcome.enforce,
            background: outcome.background,
        }
    }

    /// Overwrites this key with `outcome`'s labels, reusing its buffers.
    fn set(&mut self, outcome: &RuleOutcome) {
        self.policy.point_at(&outcome.policy);
        if self.policy_namespace != outcome.policy_namespace {
            self.policy_namespace.clone_from(&outcome.policy_namespace);
        }
        self.rule.point_at(&outcome.rule);
        self.rule_type = outcome.rule_type;
        self.result = outcome.result;
        self.enforce = outcome.enforce;
        self.background = outcome.background;
    }
}

/// `bylaw_policy_evaluations_total` and `bylaw_policy_evaluation_seconds_total` of one policy.
type CostSeriesMap = HashMap<CostSeriesKey, (Counter, Counter<f64, AtomicU64>), FoldHash>;

/// A policy as the cost series are found: by its name's address (see [`ByAddress`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct CostSeriesKey {
    policy: ByAddress,
    policy_namespace: Option<String>,
}

impl CostSeriesKey {
    fn of(outcome: &RuleOutcome) -> Self {
        CostSeriesKey {
            policy: ByAddress(Arc::clone(&outcome.policy)),
            policy_namespace: outcome.policy_namespace.clone(),
        }
    }

    /// Overwrites this key with `outcome`'s policy.
    fn set(&mut self, outcome: &RuleOutcome) {
        self.policy.point_at(&outcome.policy);
        if self.policy_namespace != outcome.policy_namespace {
            self.policy_namespace.clone_from(&outcome.policy_namespace);
        }
    }

    /// Whether this is the policy `name` in `namespace` (`None` or empty: a cluster policy).
    fn is(&self, name: &str, namespace: Option<&str>) -> bool {
        let cluster_wide = |ns: Option<&str>| ns.is_none_or(str::is_empty);
        *self.policy.0 == *name
            && match (self.policy_namespace.as_deref(), namespace) {
                (a, b) if cluster_wide(a) && cluster_wide(b) => true,
                (a, b) => a == b,
            }
    }
}

/// Reasons a policy document is not loaded, as `reason` label values.
pub const LOAD_ERROR_REASONS: [&str; 4] = ["unreadable", "invalid", "unsupported", "duplicate"];

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn dash(value: Option<&str>) -> String {
    match value {
        Some(v) if !v.is_empty() => v.to_owned(),
        _ => "-".to_owned(),
    }
}

fn bool_label(value: bool) -> &'static str {
    if value {
        "true"
    } else {
        "false"
    }
}

fn policy_type(namespace: Option<&str>) -> &'static str {
    match namespace {
        Some(ns) if !ns.is_empty() => "namespaced",
        _ => "cluster",
    }
}

fn validation_mode(enforce: bool) -> &'static str {
    if enforce {
        "enforce"
    } else {
        "audit"
    }
}

impl Metrics {
    /// Creates the registry with every bylaw family registered and `bylaw_info{version}` set to 1.
    pub fn new(version: &str) -> Self {
        let mut registry = Registry::default();
        let admission_requests = Family::<AdmissionLabels, Counter>::default();
        registry.register(
            "bylaw_admission_requests",
            "Admission requests reviewed, by outcome, webhook and resource",
            admission_requests.clone(),
        );
        let admission_review_duration = Family::new_with_constructor(Buckets(ADMISSION_BUCKETS));
        registry.register(
            "bylaw_admission_review_duration_seconds",
            "Time to answer one admission review, in seconds",
            admission_review_duration.clone(),
        );
        let admission_failures = Family::<FailureLabels, Counter>::default();
        registry.register(
            "bylaw_admission_failures",
            "Admission reviews answered by the webhook failure policy because evaluation failed",
            admission_failures.clone(),
        );
        let policy_results = Family::<PolicyResultLabels, Counter>::default();
        registry.register(
            "bylaw_policy_results",
            "Rule evaluations, by policy, rule, result and resource",
            policy_results.clone(),
        );
        let policy_execution_duration = Family::new_with_constructor(Buckets(RULE_BUCKETS));
        registry.register(
            "bylaw_policy_execution_duration_seconds",
            "Time to evaluate one rule, in seconds",
            policy_execution_duration.clone(),
        );
        let policy_rule_info = Family::<RuleInfoLabels, Gauge>::default();
        // Kyverno exposes this gauge with a `_total` suffix; the name is kept for its dashboards.
        registry.register(
            "bylaw_policy_rule_info_total",
            "1 for each rule of each loaded policy, 0 once it is gone",
            policy_rule_info.clone(),
        );
        let policy_changes = Family::<PolicyChangeLabels, Counter>::default();
        registry.register(
            "bylaw_policy_changes",
            "Policy creations, updates and deletions",
            policy_changes.clone(),
        );
        let results_dropped = Family::<DropLabels, Counter>::default();
        registry.register(
            "bylaw_policy_results_dropped",
            "Rule outcomes not delivered to background reporting because the channel was full or closed",
            results_dropped.clone(),
        );
        let policy_load_errors = Family::<LoadErrorLabels, Counter>::default();
        registry.register(
            "bylaw_policy_load_errors",
            "Policy documents that could not be loaded, each time they were read",
            policy_load_errors.clone(),
        );
        let policies_not_loaded = Family::<LoadErrorLabels, Gauge>::default();
        for reason in LOAD_ERROR_REASONS {
            policies_not_loaded
                .get_or_create(&LoadErrorLabels { reason })
                .set(0);
        }
        registry.register(
            "bylaw_policies_not_loaded",
            "Policy documents currently skipped because they cannot be served, by reason",
            policies_not_loaded.clone(),
        );
        let policy_evaluations = Family::<PolicyCostLabels, Counter>::default();
        registry.register(
            "bylaw_policy_evaluations",
            "Admission evaluations of each policy that produced rule results",
            policy_evaluations.clone(),
        );
        let policy_evaluation_seconds =
            Family::<PolicyCostLabels, Counter<f64, AtomicU64>>::default();
        registry.register(
            "bylaw_policy_evaluation_seconds",
            "Time spent evaluating each policy during admission, in seconds",
            policy_evaluation_seconds.clone(),
        );
        let info = Family::<InfoLabels, Gauge>::default();
        info.get_or_create(&InfoLabels {
            version: version.to_owned(),
        })
        .set(1);
        registry.register("bylaw_info", "bylaw build information", info);

        Metrics {
            registry: Arc::new(RwLock::new(registry)),
            admission_requests,
            admission_review_duration,
            admission_failures,
            policy_results,
            policy_execution_duration,
            policy_rule_info,
            policy_changes,
            results_dropped,
            policy_load_errors,
            policies_not_loaded,
            policy_evaluations,
            policy_evaluation_seconds,
            rule_series: Arc::default(),
            cost_series: Arc::default(),
        }
    }

    /// Registers an additional metric (for other components) in the same exposition.
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        let mut registry = self
            .registry
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        registry.register(name, help, metric);
    }

    /// Counts one admission review and observes its duration.
    pub fn record_admission(
        &self,
        phase: Phase,
        resource: ResourceLabels<'_>,
        allowed: bool,
        duration: Duration,
    ) {
        let labels = AdmissionLabels {
            request_allowed: bool_label(allowed),
            request_webhook: phase.webhook_label(),
            resource_kind: resource.kind.to_owned(),
            resource_namespace: dash(resource.namespace),
            resource_request_operation: resource.operation.metric_label(),
        };
        self.admission_requests.get_or_create(&labels).inc();
        self.admission_review_duration
            .get_or_create(&labels)
            .observe(duration.as_secs_f64());
    }

    /// Counts a review answered by failure policy (`fail_closed` true for `Fail`).
    pub fn record_admission_failure(&self, phase: Phase, fail_closed: bool, reason: &'static str) {
        self.admission_failures
            .get_or_create(&FailureLabels {
                request_webhook: phase.webhook_label(),
                failure_policy: if fail_closed { "fail" } else { "ignore" },
                reason,
            })
            .inc();
    }

    /// Counts one rule outcome and observes its duration.
    pub fn record_rule_outcome(
        &self,
        outcome: &RuleOutcome,
        cause: ExecutionCause,
        resource: ResourceLabels<'_>,
    ) {
        self.record_rule_outcomes(std::slice::from_ref(outcome), cause, resource);
    }

    /// Counts every rule outcome of one review and observes their durations. The series are
    /// found under one read lock per review; only outcomes with labels never seen before
    /// take the write lock and create their series.
    pub fn record_rule_outcomes(
        &self,
        outcomes: &[RuleOutcome],
        cause: ExecutionCause,
        resource: ResourceLabels<'_>,
    ) {
        let Some(first) = outcomes.first() else {
            return;
        };
        let resource_key = ResourceSeriesKey {
            cause,
            kind: resource.kind.to_owned(),
            namespace: resource
                .namespace
                .filter(|n| !n.is_empty())
                .map(str::to_owned),
            operation: resource.operation,
        };
        let mut key = OutcomeSeriesKey::of(first);
        let mut unseen: Vec<&RuleOutcome> = Vec::new();
        {
            let known = self
                .rule_series
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            let series = known.get(&resource_key);
            for outcome in outcomes {
                key.set(outcome);
                match series.and_then(|series| series.get(&key)) {
                    Some((count, duration)) => {
                        count.inc();
                        duration.observe(outcome.duration.as_secs_f64());
                    }
                    None => unseen.push(outcome),
                }
            }
        }
        if unseen.is_empty() {
            return;
        }
        let mut known = self
            .rule_series
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let series = known.entry(resource_key).or_default();
        for outcome in unseen {
            let labels = PolicyResultLabels::of(
                outcome,
                cause,
                resource.kind,
                resource.namespace,
                resource.operation.metric_label(),
            );
            // Series are never removed from these families, so a kept handle stays exposed.
            let count = self.policy_results.get_or_create_owned(&labels);
            let duration = self.policy_execution_duration.get_or_create_owned(&labels);
            count.inc();
            duration.observe(outcome.duration.as_secs_f64());
            key.set(outcome);
            if series.len() >= MAX_FAST_SERIES {
                series.clear();
            }
            series.insert(key.clone(), (count, duration));
        }
    }

    /// Counts one rule outcome of the background scan (`rule_execution_cause="background_scan"`,
    /// `resource_request_operation="background"`: no request caused it).
    pub fn record_background_outcome(
        &self,
        outcome: &RuleOutcome,
        resource_kind: &str,
        resource_namespace: Option<&str>,
    ) {
        let labels = PolicyResultLabels::of(
            outcome,
            ExecutionCause::BackgroundScan,
            resource_kind,
            resource_namespace,
            "background",
        );
        self.policy_results.get_or_create(&labels).inc();
        self.policy_execution_duration
            .get_or_create(&labels)
            .observe(outcome.duration.as_secs_f64());
    }

    /// Sets `bylaw_policy_rule_info_total` for one rule: 1 while present, 0 once removed.
    pub fn set_rule_info(
        &self,
        policy: &PolicyIdentity<'_>,
        rule: &str,
        rule_type: crate::admission::RuleType,
        ready: bool,
        present: bool,
    ) {
        self.policy_rule_info
            .get_or_create(&RuleInfoLabels {
                policy_name: policy.name.to_owned(),
                policy_namespace: dash(policy.namespace),
                policy_type: policy_type(policy.namespace),
                policy_validation_mode: validation_mode(policy.enforce),
                policy_background_mode: bool_label(policy.background),
                rule_name: rule.to_owned(),
                rule_type: rule_type.metric_label(),
                status_ready: bool_label(ready),
            })
            .set(i64::from(present));
    }

    /// Counts a policy creation, update or deletion.
    pub fn record_policy_change(&self, policy: &PolicyIdentity<'_>, change: PolicyChange) {
        self.policy_changes
            .get_or_create(&PolicyChangeLabels {
                policy_name: policy.name.to_owned(),
                policy_namespace: dash(policy.namespace),
                policy_type: policy_type(policy.namespace),
                policy_validation_mode: validation_mode(policy.enforce),
                policy_background_mode: bool_label(policy.background),
                policy_change_type: match change {
                    PolicyChange::Create => "create",
                    PolicyChange::Update => "update",
                    PolicyChange::Delete => "delete",
                },
            })
            .inc();
    }

    /// Counts one policy document that could not be loaded (`reason` from
    /// [`LOAD_ERROR_REASONS`]).
    pub fn record_load_error(&self, reason: &'static str) {
        self.policy_load_errors
            .get_or_create(&LoadErrorLabels { reason })
            .inc();
    }

    /// Sets how many policy documents are skipped now, per reason; reasons not listed are 0.
    pub fn set_policies_not_loaded(&self, counts: &[(&'static str, usize)]) {
        for reason in LOAD_ERROR_REASONS {
            let count = counts
                .iter()
                .filter(|(r, _)| *r == reason)
                .map(|(_, n)| *n)
                .sum::<usize>();
            self.policies_not_loaded
                .get_or_create(&LoadErrorLabels { reason })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }

    /// Records the time each policy took in one review: the rule outcomes of a policy come
    /// together, so consecutive outcomes of one policy are one evaluation.
    pub fn record_policy_evaluations(&self, outcomes: &[RuleOutcome]) {
        let Some(first) = outcomes.first() else {
            return;
        };
        // One key and one read lock for the review; policies without a series yet are
        // created afterwards under the write lock.
        let mut key = CostSeriesKey::of(first);
        let mut unseen: Vec<(&RuleOutcome, f64)> = Vec::new();
        {
            let known = self
                .cost_series
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            for (first, seconds) in policy_groups(outcomes) {
                key.set(first);
                match known.get(&key) {
                    Some((count, time)) => {
                        count.inc();
                        time.inc_by(seconds);
                    }
                    None => unseen.push((first, seconds)),
                }
            }
        }
        if unseen.is_empty() {
            return;
        }
        // Taken under the write lock, so that `forget_policy_cost` (which removes the
        // series under the same lock) cannot leave a handle here to a removed series.
        let mut known = self
            .cost_series
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let mut labels = PolicyCostLabels {
            policy_name: String::new(),
            policy_namespace: String::new(),
        };
        for (first, seconds) in unseen {
            labels.set(first);
            let count = self.policy_evaluations.get_or_create_owned(&labels);
            let time = self.policy_evaluation_seconds.get_or_create_owned(&labels);
            count.inc();
            time.inc_by(seconds);
            if known.len() >= MAX_FAST_SERIES {
                known.clear();
            }
            known.insert(CostSeriesKey::of(first), (count, time));
        }
    }

    /// Evaluations of a policy so far and the time they took, for status reporting.
    pub fn policy_cost(&self, name: &str, namespace: Option<&str>) -> PolicyCost {
        let labels = PolicyCostLabels {
            policy_name: name.to_owned(),
            policy_namespace: dash(namespace),
        };
        PolicyCost {
            evaluations: self.policy_evaluations.get(&labels).map_or(0, |c| c.get()),
            seconds: self
                .policy_evaluation_seconds
                .get(&labels)
                .map_or(0.0, |c| c.get()),
        }
    }

    /// Drops the cost series of a policy that is gone, so labels stay bounded.
    pub fn forget_policy_cost(&self, name: &str, namespace: Option<&str>) {
        let labels = PolicyCostLabels {
            policy_name: name.to_owned(),
            policy_namespace: dash(namespace),
        };
        let mut known = self
            .cost_series
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        known.retain(|key, _| !key.is(name, namespace));
        self.policy_evaluations.remove(&labels);
        self.policy_evaluation_seconds.remove(&labels);
    }

    /// Counts rule outcomes that could not be queued for reporting.
    pub fn record_results_dropped(&self, reason: &'static str, count: u64) {
        self.results_dropped
            .get_or_create(&DropLabels { reason })
            .inc_by(count);
    }

    /// The OpenMetrics text exposition (ends with `# EOF`).
    pub fn encode_openmetrics(&self) -> Result<String, crate::Error> {
        let registry = self
            .registry
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = String::new();
        text::encode(&mut out, &registry).map_err(|_| crate::Error::MetricsEncoding)?;
        Ok(out)
    }

    /// The classic Prometheus text exposition (format 0.0.4), for clients that do not ask for
    /// OpenMetrics (`curl`, `promtool check metrics`).
    pub fn encode_prometheus_text(&self) -> Result<String, crate::Error> {
        Ok(openmetrics_to_prometheus_text(&self.encode_openmetrics()?))
    }

    /// Encodes for an HTTP `Accept` header: OpenMetrics when the client lists it, else the classic
    /// text format. Returns the body and its content type.
    pub fn encode_for_accept(
        &self,
        accept: Option<&str>,
    ) -> Result<(String, &'static str), crate::Error> {
        let wants_openmetrics = accept.is_some_and(|a| a.contains("application/openmetrics-text"));
        if wants_openmetrics {
            Ok((self.encode_openmetrics()?, OPENMETRICS_CONTENT_TYPE))
        } else {
            Ok((self.encode_prometheus_text()?, PROMETHEUS_TEXT_CONTENT_TYPE))
        }
    }
}

/// Rewrites an OpenMetrics exposition as produced by `prometheus-client` into the classic text
/// format: counter families are named with their `_total` sample name, info families become gauges
/// named `<name>_info`, `# UNIT` and `# EOF` lines and `_created` samples are dropped.
pub fn openmetrics_to_prometheus_text(openmetrics: &str) -> String {
    use std::collections::HashMap;

    // Family name → (renamed family, sample suffix to drop).
    let mut renames: HashMap<&str, (String, Option<String>)> = HashMap::new();
    for line in openmetrics.lines() {
        let mut parts = line.splitn(4, ' ');
        if let (Some("#"), Some("TYPE"), Some(name), Some(kind)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        {
            match kind {
                "counter" => {
                    renames.insert(
                        name,
                        (format!("{name}_total"), Some(format!("{name}_created"))),
                    );
                }
                "info" => {
                    renames.insert(name, (format!("{name}_info"), None));
                }
                _ => {}
            }
        }
    }

    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let mut parts = line.splitn(4, ' ');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("#"), Some(keyword @ ("TYPE" | "HELP")), Some(name), rest) => {
                let new_name = renames.get(name).map_or(name, |(n, _)| n.as_str());
                let rest = match (keyword, rest) {
                    ("TYPE", Some("counter")) => "counter",
                    ("TYPE", Some("info" | "stateset")) => "gauge",
                    ("TYPE", Some("unknown")) => "untyped",
                    (_, Some(r)) => r,
                    (_, None) => "",
                };
                out.push_str(&format!("# {keyword} {new_name} {rest}\n"));
            }
            _ => {
                let sample_name = line.split(['{', ' ']).next().unwrap_or_default();
                let is_created = renames
                    .values()
                    .any(|(_, created)| created.as_deref() == Some(sample_name));
                if !is_created {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::{RuleResult, RuleType};

    fn outcome() -> RuleOutcome {
        RuleOutcome {
            policy: "require-labels".into(),
            policy_namespace: None,
            rule: "check-team".into(),
            rule_type: RuleType::Validate,
            result: RuleResult::Fail,
            message: "label team is required".into(),
            enforce: true,
            background: true,
            duration: Duration::from_micros(40),
        }
    }

    const POD_CREATE: ResourceLabels<'static> = ResourceLabels {
        kind: "Pod",
        namespace: Some("default"),
        operation: Operation::Create,
    };

    #[test]
    fn outcomes_of_a_review_count_as_one_by_one() {
        let mut outcomes = Vec::new();
        for (policy, namespace, rule, result, enforce, background, micros) in [
            ("a", None, "r1", RuleResult::Pass, true, true, 40),
            ("a", None, "r2", RuleResult::Fail, true, true, 5),
            ("b", Some("team"), "r1", RuleResult::Skip, false, false, 700),
            (
                "c",
                Some(""),
                "a-much-longer-rule-name",
                RuleResult::Error,
                false,
                true,
                1,
            ),
            ("a", None, "r1", RuleResult::Pass, true, true, 12),
        ] {
            outcomes.push(RuleOutcome {
                policy: policy.into(),
                policy_namespace: namespace.map(str::to_owned),
                rule: rule.into(),
                rule_type: if enforce {
                    RuleType::Validate
                } else {
                    RuleType::Mutate
                },
                result,
                message: String::new(),
                enforce,
                background,
                duration: Duration::from_micros(micros),
            });
        }
        let cluster_scoped = ResourceLabels {
            kind: "Namespace",
            namespace: None,
            operation: Operation::Update,
        };
        for resource in [POD_CREATE, cluster_scoped] {
            let batched = Metrics::new("1");
            batched.record_rule_outcomes(&outcomes, ExecutionCause::AdmissionRequest, resource);
            let one_by_one = Metrics::new("1");
            for outcome in &outcomes {
                one_by_one.record_rule_outcome(outcome, ExecutionCause::AdmissionRequest, resource);
            }
            // Series come out in hash order: compare them sorted.
            let sorted = |metrics: &Metrics| {
                let text = metrics.encode_openmetrics().unwrap();
                let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
                lines.sort();
                lines
            };
            assert_eq!(sorted(&batched), sorted(&one_by_one));
            let text = batched.encode_openmetrics().unwrap();
            assert!(text.contains("policy_namespace=\"team\""), "{text}");
            // The reused label buffers are reset: policy `c` after `b` has no namespace.
            assert!(
                text.contains("policy_name=\"c\",policy_namespace=\"-\""),
                "{text}"
            );
            assert!(
                text.contains("rule_name=\"a-much-longer-rule-name\""),
                "{text}"
            );
        }
        // Series found again across reviews keep counting, each under its own resource.
        let reviews = Metrics::new("1");
        for resource in [POD_CREATE, cluster_scoped, POD_CREATE] {
            reviews.record_rule_outcomes(&outcomes, ExecutionCause::AdmissionRequest, resource);
        }
        reviews.record_rule_outcomes(&outcomes[..1], ExecutionCause::BackgroundScan, POD_CREATE);
        let text = reviews.encode_openmetrics().unwrap();
        let count = |fragments: &[&str]| -> Vec<String> {
            text.lines()
                .filter(|l| l.starts_with("bylaw_policy_results_total{"))
                .filter(|l| fragments.iter().all(|f| l.contains(f)))
                .map(|l| l.rsplit(' ').next().unwrap_or_default().to_owned())
                .collect()
        };
        let a_r1 = ["policy_name=\"a\"", "rule_name=\"r1\""];
        let admission = "rule_execution_cause=\"admission_request\"";
        assert_eq!(
            count(&[a_r1[0], a_r1[1], admission, "resource_kind=\"Pod\""]),
            ["4"]
        );
        assert_eq!(
            count(&[a_r1[0], a_r1[1], admission, "resource_kind=\"Namespace\""]),
            ["2"]
        );
        assert_eq!(
            count(&[a_r1[0], a_r1[1], "rule_execution_cause=\"background_scan\""]),
            ["1"]
        );
        assert_eq!(
            count(&["policy_name=\"b\"", "resource_kind=\"Pod\""]),
            ["2"]
        );

        let nothing = Metrics::new("1");
        nothing.record_rule_outcomes(&[], ExecutionCause::AdmissionRequest, POD_CREATE);
        assert!(!nothing
            .encode_openmetrics()
            .unwrap()
            .contains("bylaw_policy_results_total{"));
    }

    #[test]
    fn exposition_has_every_family_with_kyverno_labels() {
        let metrics = Metrics::new("1.2.3");
        metrics.record_admission(
            Phase::Validate,
            POD_CREATE,
            false,
            Duration::from_micros(300),
        );
        metrics.record_rule_outcome(&outcome(), ExecutionCause::AdmissionRequest, POD_CREATE);
        let policy = PolicyIdentity {
            name: "require-labels",
            namespace: None,
            enforce: true,
            background: true,
        };
        metrics.set_rule_info(&policy, "check-team", RuleType::Validate, true, true);
        metrics.record_policy_change(&policy, PolicyChange::Create);
        let text = metrics.encode_openmetrics().unwrap();

        assert!(text.contains(
            "bylaw_admission_requests_total{request_allowed=\"false\",request_webhook=\"ValidatingWebhookConfiguration\",resource_kind=\"Pod\",resource_namespace=\"default\",resource_request_operation=\"create\"} 1"
        ), "{text}");
        // 300µs lands in the 0.0005 bucket but not the 0.00025 one.
        assert!(text.contains("bylaw_admission_review_duration_seconds_bucket{le=\"0.00025\",request_allowed=\"false\",request_webhook=\"ValidatingWebhookConfiguration\",resource_kind=\"Pod\",resource_namespace=\"default\",resource_request_operation=\"create\"} 0"), "{text}");
        assert!(text.contains("bylaw_admission_review_duration_seconds_bucket{le=\"0.0005\",request_allowed=\"false\",request_webhook=\"ValidatingWebhookConfiguration\",resource_kind=\"Pod\",resource_namespace=\"default\",resource_request_operation=\"create\"} 1"), "{text}");
        assert!(text.contains(
            "bylaw_policy_results_total{policy_name=\"require-labels\",policy_namespace=\"-\",policy_type=\"cluster\",policy_validation_mode=\"enforce\",policy_background_mode=\"true\",rule_name=\"check-team\",rule_type=\"validate\",rule_result=\"fail\",rule_execution_cause=\"admission_request\",resource_kind=\"Pod\",resource_namespace=\"default\",resource_request_operation=\"create\"} 1"
        ), "{text}");
        assert!(text.contains("# TYPE bylaw_policy_execution_duration_seconds histogram"));
        assert!(text.contains("bylaw_policy_rule_info_total{policy_name=\"require-labels\",policy_namespace=\"-\",policy_type=\"cluster\",policy_validation_mode=\"enforce\",policy_background_mode=\"true\",rule_name=\"check-team\",rule_type=\"validate\",status_ready=\"true\"} 1"), "{text}");
        assert!(text.contains("bylaw_policy_changes_total{policy_name=\"require-labels\",policy_namespace=\"-\",policy_type=\"cluster\",policy_validation_mode=\"enforce\",policy_background_mode=\"true\",policy_change_type=\"create\"} 1"), "{text}");
        assert!(text.contains("bylaw_info{version=\"1.2.3\"} 1"), "{text}");
        assert!(text.ends_with("# EOF\n"));
        // The message never becomes a label.
        assert!(!text.contains("label team is required"));
    }

    #[test]
    fn policy_cost_counts_one_evaluation_per_policy_per_review() {
        let metrics = Metrics::new("dev");
        let rule = |policy: &str, namespace: Option<&str>, micros: u64| RuleOutcome {
            policy: policy.into(),
            policy_namespace: namespace.map(str::to_owned),
            duration: Duration::from_micros(micros),
            ..outcome()
        };
        metrics.record_policy_evaluations(&[
            rule("a", None, 10),
            rule("a", None, 30),
            rule("b", None, 5),
            rule("a", Some("team"), 7),
        ]);
        metrics.record_policy_evaluations(&[rule("a", None, 60)]);
        let a = metrics.policy_cost("a", None);
        assert_eq!(a.evaluations, 2);
        assert!((a.seconds - 100e-6).abs() < 1e-9, "{a:?}");
        assert_eq!(metrics.policy_cost("b", None).evaluations, 1);
        assert_eq!(metrics.policy_cost("a", Some("team")).evaluations, 1);
        assert_eq!(metrics.policy_cost("c", None), PolicyCost::default());
        let text = metrics.encode_openmetrics().unwrap();
        assert!(
            text.contains(
                "bylaw_policy_evaluations_total{policy_name=\"a\",policy_namespace=\"-\"} 2"
            ),
            "{text}"
        );
        metrics.forget_policy_cost("a", None);
        assert_eq!(metrics.policy_cost("a", None), PolicyCost::default());
        // A policy of the same name later starts again from zero, and is exposed.
        metrics.record_policy_evaluations(&[rule("a", None, 20)]);
        let again = metrics.policy_cost("a", None);
        assert_eq!(again.evaluations, 1);
        assert!((again.seconds - 20e-6).abs() < 1e-9, "{again:?}");
        assert!(metrics.encode_openmetrics().unwrap().contains(
            "bylaw_policy_evaluations_total{policy_name=\"a\",policy_namespace=\"-\"} 1"
        ));
        assert_eq!(metrics.policy_cost("b", None).evaluations, 1);
    }

    /// Series are found by the address of the outcome's names: outcomes sharing the compiled
    /// policy's `Arc`s hit one entry, and names that come as new `Arc`s every time still
    /// count into the same series while the lookup maps stay bounded.
    #[test]
    fn series_are_found_by_shared_names_and_new_names_stay_bounded() {
        let metrics = Metrics::new("dev");
        let policy: Arc<str> = "shared".into();
        let rule: Arc<str> = "r".into();
        let shared = RuleOutcome {
            policy: Arc::clone(&policy),
            rule: Arc::clone(&rule),
            ..outcome()
        };
        for _ in 0..3 {
            metrics.record_rule_outcomes(
                std::slice::from_ref(&shared),
                ExecutionCause::AdmissionRequest,
                POD_CREATE,
            );
            metrics.record_policy_evaluations(std::slice::from_ref(&shared));
        }
        let entries = |metrics: &Metrics| {
            let rules = metrics
                .rule_series
                .read()
                .unwrap()
                .values()
                .map(HashMap::len)
                .sum::<usize>();
            (rules, metrics.cost_series.read().unwrap().len())
        };
        assert_eq!(entries(&metrics), (1, 1));
        assert_eq!(metrics.policy_cost("shared", None).evaluations, 3);

        let fresh = || RuleOutcome {
            policy: "fresh".into(),
            rule: "r".into(),
            ..outcome()
        };
        let reviews = MAX_FAST_SERIES + 10;
        for _ in 0..reviews / 1000 + 1 {
            let batch: Vec<RuleOutcome> = (0..1000).map(|_| fresh()).collect();
            metrics.record_rule_outcomes(&batch, ExecutionCause::AdmissionRequest, POD_CREATE);
            for outcome in &batch {
                metrics.record_policy_evaluations(std::slice::from_ref(outcome));
            }
        }
        let total = (reviews / 1000 + 1) * 1000;
        let (rules, costs) = entries(&metrics);
        assert!(
            rules <= MAX_FAST_SERIES + 1 && costs <= MAX_FAST_SERIES + 1,
            "{rules} {costs}"
        );
        assert_eq!(metrics.policy_cost("fresh", None).evaluations, total as u64);
        let text = metrics.encode_openmetrics().unwrap();
        let counted = text
            .lines()
            .find(|l| {
                l.starts_with("bylaw_policy_results_total{") && l.contains("policy_name=\"fresh\"")
            })
            .unwrap_or_default();
        assert!(counted.ends_with(&format!(" {total}")), "{counted}");
    }

    #[test]
    fn classic_text_names_counter_families_by_their_samples() {
        let metrics = Metrics::new("dev");
        metrics.record_admission(Phase::Mutate, POD_CREATE, true, Duration::from_millis(2));
        let text = metrics.encode_prometheus_text().unwrap();
        assert!(text.contains("# TYPE bylaw_admission_requests_total counter\n"));
        assert!(text.contains("# HELP bylaw_admission_requests_total "));
        assert!(text.contains("# TYPE bylaw_admission_review_duration_seconds histogram\n"));
        assert!(text.contains("# TYPE bylaw_info gauge\n"));
        assert!(!text.contains("# EOF"));
        assert!(!text.contains("# UNIT"));
    }

    #[test]
    fn accept_header_selects_the_format() {
        let metrics = Metrics::new("dev");
        let (_, om) = metrics
            .encode_for_accept(Some(
                "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
            ))
            .unwrap();
        assert_eq!(om, OPENMETRICS_CONTENT_TYPE);
        let (_, classic) = metrics.encode_for_accept(Some("*/*")).unwrap();
        assert_eq!(classic, PROMETHEUS_TEXT_CONTENT_TYPE);
        let (_, classic) = metrics.encode_for_accept(None).unwrap();
        assert_eq!(classic, PROMETHEUS_TEXT_CONTENT_TYPE);
    }

    #[test]
    fn converter_renames_info_and_drops_created_samples() {
        let om = "# HELP a Thing.\n# TYPE a counter\na_total 1\na_created 1.5\n# TYPE b info\nb_info{v=\"1\"} 1\n# EOF\n";
        assert_eq!(
            openmetrics_to_prometheus_text(om),
            "# HELP a_total Thing.\n# TYPE a_total counter\na_total 1\n# TYPE b_info gauge\nb_info{v=\"1\"} 1\n"
        );
    }
}
