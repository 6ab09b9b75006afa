//! Background scanning and PolicyReports in the cluster.
//!
//! The scanner watches only the kinds that background policies select (found through API
//! discovery): one paginated list, then a watch, per kind, every replica. Each object is kept
//! as compact JSON without `managedFields` (a third of a Pod's parsed size), so that a policy
//! change can rescan the kinds it selects without listing again. Evaluation runs on the
//! blocking pool in batches; results go into the [`ReportBook`].
//!
//! Admission results of policies the scan cannot re-derive (`background: false`) arrive
//! through the results channel and go into a second book, whose reports (`<uid>-admission`)
//! the replica that answered the review writes itself: results reach the cluster whichever
//! replica served the request, without a hand-over between replicas.
//!
//! The writer runs only on the lease holder: it server-side applies the reports the book says
//! changed, deletes those whose resource or last result went, and on gaining leadership first
//! reads what the cluster holds so that nothing identical is rewritten.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use bylaw_api::policyreport::{ClusterPolicyReport, PolicyReport};
use bylaw_engine::compile::{CompiledPolicy, RuleBody};
use bylaw_engine::engine::PolicySet;
use bylaw_engine::response::{MessageFormat, RuleStatus};
use bylaw_reports::book::{ResourceIdentity, Source, MANAGED_BY, MANAGED_BY_LABEL};
use bylaw_reports::results::{admission_result, timestamp, PolicyFacts, PolicyKey, ResultFilter};
use bylaw_reports::scan::{is_scanned, scan_object, ScanPolicies};
use bylaw_reports::{ReportBook, ReportChange};
use bylaw_runtime::admission::{Operation, RuleOutcome, RuleResult, RuleType};
use bylaw_runtime::results::ReviewOutcomes;
use bylaw_runtime::sources::ContextSource;
use bylaw_runtime::{Metrics, PolicyCache, ShutdownSignal};
use futures::StreamExt;
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::discovery::{ApiResource, Discovery};
use kube::runtime::watcher;
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::kinds::{KindCatalog, ServedKind};
use crate::leader::Leadership;
use crate::webhooks::FIELD_MANAGER;

/// Resources never scanned, whatever a wildcard selects: short-lived or security-sensitive
/// objects whose reports would only churn.
const NEVER_SCANNED: &[(&str, &str)] = &[
    ("", "events"),
    ("events.k8s.io", "events"),
    ("coordination.k8s.io", "leases"),
    ("wgpolicyk8s.io", "policyreports"),
    ("wgpolicyk8s.io", "clusterpolicyreports"),
    ("", "secrets"),
];

/// Appended to the resource uid to name the report of admission results.
pub const ADMISSION_SUFFIX: &str = "-admission";

/// Objects evaluated in one blocking batch at most.
const BATCH: usize = 500;
/// Report writes computed and sent per round at most.
const WRITE_ROUND: usize = 256;
/// Report writes in flight at once.
const WRITES_IN_FLIGHT: usize = 8;

/// Settings of background scanning and reports.
#[derive(Clone, Debug)]
pub struct ReportOptions {
    /// Write PolicyReports at all (`--reports`); when false neither the scan nor admission
    /// results write anything.
    pub enabled: bool,
    /// Scan existing resources (`--background-scan`).
    pub background_scan: bool,
    /// How often every watched resource is evaluated again (`--background-scan-interval`).
    pub rescan_interval: Duration,
    /// Which results reports keep (`--report-results`).
    pub filter: ResultFilter,
    /// How scan results' messages are written (`--report-message-format`): Kyverno's text by
    /// default, compact and long-lived; bylaw's adds what was found and wanted.
    pub messages: MessageFormat,
    /// How often the writer flushes changes.
    pub flush_interval: Duration,
    /// How often API discovery is refreshed (new CRDs make new kinds scannable).
    pub discovery_interval: Duration,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            enabled: true,
            background_scan: true,
            rescan_interval: Duration::from_secs(3600),
            filter: ResultFilter::default(),
            messages: MessageFormat::Kyverno,
            flush_interval: Duration::from_secs(1),
            discovery_interval: Duration::from_secs(60),
        }
    }
}

/// The report metrics.
#[derive(Clone, Debug)]
pub struct ReportMetrics {
    scan_duration: Family<ScanLabels, Histogram>,
    scanned: Family<KindLabels, Counter>,
    writes: Family<WriteLabels, Counter>,
    bytes: Gauge,
    reports: Gauge,
    runtime: Metrics,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct ScanLabels {
    /// `full` (start, periodic) or `policy_change`.
    trigger: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct KindLabels {
    resource_kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct WriteLabels {
    /// `apply` or `delete`.
    operation: &'static str,
    /// `success` or `error`.
    result: &'static str,
}

impl ReportMetrics {
    /// Observes one scan pass: `full` (start, periodic) or `policy_change`.
    pub fn observe_scan(&self, trigger: &'static str, elapsed: Duration) {
        self.scan_duration
            .get_or_create(&ScanLabels { trigger })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts one resource evaluated by the scan.
    pub fn scanned(&self, resource_kind: &str) {
        self.scanned
            .get_or_create(&KindLabels {
                resource_kind: resource_kind.to_owned(),
            })
            .inc();
    }

    /// Counts one report write: `apply` or `delete`.
    pub fn write(&self, operation: &'static str, ok: bool) {
        self.writes
            .get_or_create(&WriteLabels {
                operation,
                result: if ok { "success" } else { "error" },
            })
            .inc();
    }

    /// Sets the number of reports bylaw holds and their total serialized size.
    pub fn set_totals(&self, reports: usize, bytes: usize) {
        self.reports.set(i64::try_from(reports).unwrap_or(i64::MAX));
        self.bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Registers the report families in `metrics`.
    pub fn register(metrics: &Metrics) -> ReportMetrics {
        let this = ReportMetrics {
            scan_duration: Family::new_with_constructor(|| {
                Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0])
            }),
            scanned: Family::default(),
            writes: Family::default(),
            bytes: Gauge::default(),
            reports: Gauge::default(),
            runtime: metrics.clone(),
        };
        metrics.register(
            "bylaw_background_scan_duration_seconds",
            "Wall time of a background scan pass over the watched resources",
            this.scan_duration.clone(),
        );
        metrics.register(
            "bylaw_background_scan_resources",
            "Resources evaluated by the background scan",
            this.scanned.clone(),
        );
        metrics.register(
            "bylaw_policy_report_writes",
            "PolicyReport and ClusterPolicyReport writes",
            this.writes.clone(),
        );
        metrics.register(
            "bylaw_policy_report_bytes",
            "Serialized size of the reports bylaw last wrote, in total",
            this.bytes.clone(),
        );
        metrics.register(
            "bylaw_policy_reports",
            "Reports bylaw holds in the cluster",
            this.reports.clone(),
        );
        this
    }
}

/// A resource kind the scanner watches.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScannedKind {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
}

impl ScannedKind {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn api_resource(&self) -> ApiResource {
        ApiResource {
            group: self.group.clone(),
            version: self.version.clone(),
            api_version: self.api_version(),
            kind: self.kind.clone(),
            plural: self.plural.clone(),
        }
    }
}

impl From<&ServedKind> for ScannedKind {
    fn from(served: &ServedKind) -> Self {
        ScannedKind {
            group: served.resource.group.clone(),
            version: served.resource.version.clone(),
            kind: served.resource.kind.clone(),
            plural: served.resource.plural.clone(),
            namespaced: served.namespaced,
        }
    }
}

/// The kinds the scanned rules of `policy` (validate, verifyImages) select among `catalog`.
pub fn kinds_of(policy: &CompiledPolicy, catalog: &KindCatalog) -> BTreeSet<ScannedKind> {
    kinds_selected(policy, catalog, |body| {
        matches!(body, RuleBody::Validate(_) | RuleBody::VerifyImages(_))
    })
}

/// The listable kinds the rules `wanted` accepts select among `catalog` (the preferred version
/// unless a selector names one, as generate resolves them), never the resources no scan should
/// read (events, leases, reports, Secrets).
pub fn kinds_selected(
    policy: &CompiledPolicy,
    catalog: &KindCatalog,
    wanted: impl Fn(&RuleBody) -> bool,
) -> BTreeSet<ScannedKind> {
    let mut selected: Vec<&ServedKind> = Vec::new();
    if policy.kind.is_ruleless() {
        let rules = policy
            .source
            .pointer("/spec/matchConstraints/resourceRules")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let listed = |rule: &Value, field: &str, value: &str| {
            rule.get(field)
                .and_then(Value::as_array)
                .is_some_and(|items| items.iter().any(|i| i == "*" || i == value))
        };
        selected.extend(catalog.kinds().iter().filter(|kind| {
            kind.preferred
                && rules.iter().any(|rule| {
                    listed(rule, "apiGroups", &kind.resource.group)
                        && listed(rule, "resources", &kind.resource.plural)
                })
        }));
    } else {
        for rule in policy.rules.iter().filter(|rule| wanted(&rule.body)) {
            for selector in rule.match_block.kinds() {
                selected.extend(catalog.select(selector));
            }
        }
    }
    selected
        .into_iter()
        .filter(|k| k.listable)
        .filter(|k| {
            !NEVER_SCANNED
                .iter()
                .any(|(g, r)| *g == k.resource.group && *r == k.resource.plural)
        })
        .map(ScannedKind::from)
        .collect()
}

/// A watched object: who it is and its JSON without `managedFields`.
#[derive(Debug)]
struct Stored {
    identity: ResourceIdentity,
    json: Box<str>,
}

#[derive(Debug)]
enum WatchEvent {
    Applied(Value),
    Deleted(Value),
    Relist,
    RelistDone,
}

#[derive(Debug, Default)]
struct KindState {
    objects: HashMap<String, Stored>,
    /// Uids seen since a relist started.
    relisting: Option<HashSet<String>>,
    synced: bool,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Shared state of the reports machinery.
#[derive(Clone, Debug)]
pub struct Reports {
    /// Background results; written by the lease holder.
    pub book: Arc<Mutex<ReportBook>>,
    /// Admission results of policies the scan cannot re-derive, in reports named
    /// `<uid>-admission`; written by the replica that answered the review.
    pub admission_book: Arc<Mutex<ReportBook>>,
    /// True once every watched kind has been listed for the current policies.
    pub synced: Arc<AtomicBool>,
    /// Resources evaluated so far (for tests and benchmarks).
    pub scanned: Arc<AtomicU64>,
    pub metrics: ReportMetrics,
}

impl Reports {
    pub fn new(metrics: &Metrics) -> Reports {
        Reports {
            book: Arc::new(Mutex::new(ReportBook::new())),
            admission_book: Arc::new(Mutex::new(ReportBook::with_suffix(ADMISSION_SUFFIX))),
            synced: Arc::new(AtomicBool::new(false)),
            scanned: Arc::new(AtomicU64::new(0)),
            metrics: ReportMetrics::register(metrics),
        }
    }

    fn book(&self) -> std::sync::MutexGuard<'_, ReportBook> {
        lock(&self.book)
    }

    fn admission_book(&self) -> std::sync::MutexGuard<'_, ReportBook> {
        lock(&self.admission_book)
    }
}

fn lock(book: &Mutex<ReportBook>) -> std::sync::MutexGuard<'_, ReportBook> {
    book.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Everything the scanner reads.
pub struct Scanner {
    pub client: Client,
    pub cache: Arc<PolicyCache>,
    pub context: Arc<dyn ContextSource>,
    pub reports: Reports,
    pub options: ReportOptions,
    pub shutdown: ShutdownSignal,
}

struct ScanState {
    catalog: KindCatalog,
    policies: Arc<ScanPolicies>,
    /// Every loaded policy's report facts (admission results need them too).
    facts: HashMap<PolicyKey, (PolicyFacts, bool)>,
    policy_kinds: HashMap<PolicyKey, BTreeSet<ScannedKind>>,
    /// Fingerprint of each scanned policy, to tell which ones changed.
    versions: HashMap<PolicyKey, u64>,
    kinds: HashMap<ScannedKind, KindState>,
    events_tx: mpsc::Sender<(ScannedKind, WatchEvent)>,
}

fn without_managed_fields(mut object: Value) -> Value {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    object
}

/// An object as evaluated and kept: typed (list items may come without `apiVersion` and
/// `kind`) and without `managedFields`.
pub fn with_type(object: DynamicObject, api_version: &str, kind: &str) -> Value {
    let mut value = serde_json::to_value(object).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.entry("apiVersion")
            .or_insert_with(|| Value::String(api_version.to_owned()));
        map.entry("kind")
            .or_insert_with(|| Value::String(kind.to_owned()));
    }
    without_managed_fields(value)
}

/// Every object `api` lists with `params`, page by page.
pub async fn list_all(
    api: &Api<DynamicObject>,
    params: ListParams,
) -> Result<Vec<DynamicObject>, kube::Error> {
    let mut params = params.limit(500);
    let mut items = Vec::new();
    loop {
        let page = api.list(&params).await?;
        items.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(items),
        }
    }
}

async fn watch_kind(
    client: Client,
    kind: ScannedKind,
    tx: mpsc::Sender<(ScannedKind, WatchEvent)>,
) {
    let api: Api<DynamicObject> = Api::all_with(client, &kind.api_resource());
    let config = watcher::Config::default().page_size(500);
    let stream = watcher(api, config).default_backoff();
    tokio::pin!(stream);
    let mut failing = false;
    while let Some(next) = stream.next().await {
        let event = match next {
            Ok(event) => event,
            Err(error) => {
                if !failing {
                    tracing::warn!(kind = %kind.kind, %error, "cannot list or watch resources for background scanning; retrying (check bylaw's RBAC: list and watch)");
                }
                failing = true;
                continue;
            }
        };
        failing = false;
        let event = match event {
            watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                WatchEvent::Applied(with_type(o, &kind.api_version(), &kind.kind))
            }
            watcher::Event::Delete(o) => {
                WatchEvent::Deleted(with_type(o, &kind.api_version(), &kind.kind))
            }
            watcher::Event::Init => WatchEvent::Relist,
            watcher::Event::InitDone => WatchEvent::RelistDone,
        };
        if tx.send((kind.clone(), event)).await.is_err() {
            return;
        }
    }
}

/// What a batch evaluation hands back.
struct Evaluated {
    identity: ResourceIdentity,
    results: Vec<(PolicyKey, Vec<bylaw_api::policyreport::PolicyReportResult>)>,
}

fn evaluate_batch(
    policies: &ScanPolicies,
    objects: Vec<(ResourceIdentity, Value)>,
    context: &dyn ContextSource,
    filter: ResultFilter,
    messages: MessageFormat,
    metrics: &ReportMetrics,
) -> Vec<Evaluated> {
    let at = timestamp(SystemTime::now());
    let mut out = Vec::with_capacity(objects.len());
    for (identity, object) in objects {
        let scans = scan_object(policies, object, context, filter, messages, at);
        metrics.scanned(&identity.kind);
        let mut results = Vec::with_capacity(scans.len());
        for scan in scans {
            let policy = scan.scanned.policy.as_ref();
            let share = scan.elapsed / u32::try_from(scan.response.rules.len().max(1)).unwrap_or(1);
            for rule in &scan.response.rules {
                let outcome = RuleOutcome {
                    policy: policy.name.clone(),
                    policy_namespace: policy.namespace.clone(),
                    rule: rule.name.clone(),
                    rule_type: RuleType::Validate,
                    result: match bylaw_engine::engine::report_status(policy, rule) {
                        RuleStatus::Pass => RuleResult::Pass,
                        RuleStatus::Fail => RuleResult::Fail,
                        RuleStatus::Warn => RuleResult::Warn,
                        RuleStatus::Error => RuleResult::Error,
                        RuleStatus::Skip => RuleResult::Skip,
                    },
                    message: String::new(),
                    enforce: policy.validation_failure_action
                        == bylaw_engine::response::FailureAction::Enforce,
                    background: true,
                    duration: share,
                };
                metrics.runtime.record_background_outcome(
                    &outcome,
                    &identity.kind,
                    identity.namespace.as_deref(),
                );
            }
            results.push((scan.scanned.facts.key.clone(), scan.results));
        }
        out.push(Evaluated { identity, results });
    }
    out
}

/// What a policy's results depend on: its spec and annotations (category, severity,
/// reporting), not its status or resourceVersion, so status writes never cause a rescan.
fn version_of(policy: &CompiledPolicy) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let part = |pointer: &str| policy.source.pointer(pointer).map(Value::to_string);
    (part("/spec"), part("/metadata/annotations")).hash(&mut hasher);
    hasher.finish()
}

impl Scanner {
    /// Runs until shutdown; `outcomes` carries admission results (from every review this
    /// replica answered).
    pub async fn run(self, mut outcomes: mpsc::Receiver<ReviewOutcomes>) {
        let (events_tx, mut events_rx) = mpsc::channel::<(ScannedKind, WatchEvent)>(256);
        let mut state = ScanState {
            catalog: KindCatalog::default(),
            policies: Arc::new(ScanPolicies::default()),
            facts: HashMap::new(),
            policy_kinds: HashMap::new(),
            versions: HashMap::new(),
            kinds: HashMap::new(),
            events_tx,
        };
        let mut changes = self.cache.subscribe();
        changes.mark_changed();
        let mut rescan = tokio::time::interval(self.options.rescan_interval);
        rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        rescan.tick().await;
        let mut discovery = tokio::time::interval(self.options.discovery_interval);
        discovery.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stop = self.shutdown.clone().wait();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => break,
                _ = discovery.tick() => {
                    self.refresh_catalog(&mut state).await;
                }
                changed = changes.changed() => {
                    if changed.is_err() { break; }
                    self.on_policies(&mut state).await;
                }
                Some(first) = events_rx.recv() => {
                    let mut batch = vec![first];
                    while batch.len() < BATCH {
                        match events_rx.try_recv() {
                            Ok(event) => batch.push(event),
                            Err(_) => break,
                        }
                    }
                    self.on_events(&mut state, batch).await;
                }
                Some(review) = outcomes.recv() => {
                    // The review was answered with the newest policy set, which `select!`
                    // may not have taken in yet: its policies' facts are needed first.
                    if changes.has_changed().unwrap_or(false) {
                        changes.mark_unchanged();
                        self.on_policies(&mut state).await;
                    }
                    self.on_admission(&state, &review);
                }
                _ = rescan.tick() => {
                    let started = Instant::now();
                    let policies = Arc::clone(&state.policies);
                    let all: Vec<ScannedKind> = state.kinds.keys().cloned().collect();
                    self.rescan(&state, policies, &all).await;
                    self.reports.metrics.observe_scan("full", started.elapsed());
                }
            }
        }
        for kind in state.kinds.values_mut() {
            if let Some(task) = kind.task.take() {
                task.abort();
            }
        }
    }

    async fn refresh_catalog(&self, state: &mut ScanState) {
        match Discovery::new(self.client.clone()).run().await {
            Ok(discovery) => {
                let catalog = KindCatalog::from_discovery(&discovery);
                if catalog != state.catalog {
                    state.catalog = catalog;
                    state.versions.clear();
                    self.on_policies(state).await;
                }
            }
            Err(error) => {
                tracing::warn!(%error, "API discovery failed; background scanning keeps its kinds");
            }
        }
    }

    /// A new policy set: work out which policies changed, watch the kinds they need, drop
    /// results of removed ones and rescan what changed.
    async fn on_policies(&self, state: &mut ScanState) {
        let Some(set) = self.cache.current() else {
            return;
        };
        // Admission results need the facts before the first discovery has run.
        state.facts = set
            .policies
            .iter()
            .map(|p| (PolicyKey::of_policy(p), (PolicyFacts::of(p), is_scanned(p))))
            .collect();
        if state.catalog.kinds().is_empty() {
            // The first discovery runs on the first tick; it calls back here.
            return;
        }
        let scanned = if self.options.background_scan {
            ScanPolicies::of(&set)
        } else {
            ScanPolicies::of(&PolicySet::default())
        };
        let mut changed = Vec::new();
        let mut versions = HashMap::new();
        let mut policy_kinds = HashMap::new();
        for entry in &scanned.policies {
            let policy = entry.policy.as_ref();
            let key = entry.facts.key.clone();
            let version = version_of(policy);
            if state.versions.get(&key) != Some(&version) {
                if let Some(value) = &entry.facts.unknown_severity {
                    tracing::warn!(policy = %key.0, severity = %value, "policies.kyverno.io/severity is not one of critical, high, medium, low, info; its results are reported without a severity");
                }
                changed.push(key.clone());
            }
            versions.insert(key.clone(), version);
            policy_kinds.insert(key, kinds_of(policy, &state.catalog));
        }
        // Results of policies gone (or not scanned any more) go; admission results stay while
        // their policy is loaded and reported.
        {
            let facts = &state.facts;
            let scanned_keys: HashSet<&PolicyKey> = versions.keys().collect();
            self.reports
                .book()
                .retain_policies(|key| scanned_keys.contains(key));
            self.reports.admission_book().retain_policies(|key| {
                facts
                    .get(key)
                    .is_some_and(|(f, scanned)| f.reported && !*scanned)
            });
            let mut book = self.reports.book();
            // A changed policy's results are derived again from scratch: its kinds may differ.
            for key in &changed {
                book.retain_background(|k| k != key);
            }
        }
        let needed: HashSet<ScannedKind> = policy_kinds.values().flatten().cloned().collect();
        // Stop watching kinds nobody selects; forget their objects.
        let unneeded: Vec<ScannedKind> = state
            .kinds
            .keys()
            .filter(|k| !needed.contains(*k))
            .cloned()
            .collect();
        for kind in unneeded {
            if let Some(mut old) = state.kinds.remove(&kind) {
                if let Some(task) = old.task.take() {
                    task.abort();
                }
            }
        }
        for kind in &needed {
            if !state.kinds.contains_key(kind) {
                let task = tokio::spawn(watch_kind(
                    self.client.clone(),
                    kind.clone(),
                    state.events_tx.clone(),
                ));
                state.kinds.insert(
                    kind.clone(),
                    KindState {
                        task: Some(task),
                        ..KindState::default()
                    },
                );
            }
        }
        state.policies = Arc::new(scanned);
        state.versions = versions;
        state.policy_kinds = policy_kinds;
        self.update_synced(state);
        if changed.is_empty() {
            return;
        }
        // Rescan the kinds of the changed policies (already listed ones; new kinds are scanned
        // as their list arrives), with only those policies.
        let changed_set: HashSet<PolicyKey> = changed.into_iter().collect();
        let kinds: BTreeSet<ScannedKind> = changed_set
            .iter()
            .filter_map(|k| state.policy_kinds.get(k))
            .flatten()
            .cloned()
            .collect();
        let only = Arc::new(state.policies.only(|k| changed_set.contains(k)));
        let started = Instant::now();
        let kinds: Vec<ScannedKind> = kinds.into_iter().collect();
        self.rescan(state, only, &kinds).await;
        self.reports
            .metrics
            .observe_scan("policy_change", started.elapsed());
    }

    fn update_synced(&self, state: &ScanState) {
        let synced = state.kinds.values().all(|k| k.synced);
        self.reports.synced.store(synced, Ordering::SeqCst);
    }

    /// Evaluates `policies` against every stored object of `kinds`.
    async fn rescan(&self, state: &ScanState, policies: Arc<ScanPolicies>, kinds: &[ScannedKind]) {
        let mut objects = Vec::new();
        for kind in kinds {
            let Some(kind_state) = state.kinds.get(kind) else {
                continue;
            };
            for stored in kind_state.objects.values() {
                let Ok(value) = serde_json::from_str::<Value>(&stored.json) else {
                    continue;
                };
                objects.push((stored.identity.clone(), value));
                if objects.len() >= BATCH {
                    self.evaluate(Arc::clone(&policies), std::mem::take(&mut objects))
                        .await;
                }
            }
        }
        if !objects.is_empty() {
            self.evaluate(policies, objects).await;
        }
    }

    async fn evaluate(&self, policies: Arc<ScanPolicies>, objects: Vec<(ResourceIdentity, Value)>) {
        if policies.is_empty() || objects.is_empty() {
            return;
        }
        let count = objects.len() as u64;
        let context = Arc::clone(&self.context);
        let filter = self.options.filter;
        let messages = self.options.messages;
        let metrics = self.reports.metrics.clone();
        let scanned_policies = Arc::clone(&policies);
        let evaluated = tokio::task::spawn_blocking(move || {
            evaluate_batch(
                &scanned_policies,
                objects,
                context.as_ref(),
                filter,
                messages,
                &metrics,
            )
        })
        .await;
        let Ok(evaluated) = evaluated else {
            tracing::error!(
                "a background scan batch failed; its resources are scanned again on the next pass"
            );
            return;
        };
        self.reports.scanned.fetch_add(count, Ordering::Relaxed);
        let mut book = self.reports.book();
        for item in evaluated {
            for (key, results) in item.results {
                book.set_results(&item.identity, Source::Background, &key, results);
            }
        }
    }

    async fn on_events(&self, state: &mut ScanState, batch: Vec<(ScannedKind, WatchEvent)>) {
        let mut to_scan: HashMap<String, (ResourceIdentity, Value)> = HashMap::new();
        for (kind, event) in batch {
            let Some(kind_state) = state.kinds.get_mut(&kind) else {
                continue;
            };
            match event {
                WatchEvent::Relist => kind_state.relisting = Some(HashSet::new()),
                WatchEvent::RelistDone => {
                    if let Some(seen) = kind_state.relisting.take() {
                        let gone: Vec<String> = kind_state
                            .objects
                            .keys()
                            .filter(|uid| !seen.contains(*uid))
                            .cloned()
                            .collect();
                        let mut book = self.reports.book();
                        let mut admission = self.reports.admission_book();
                        for uid in gone {
                            kind_state.objects.remove(&uid);
                            to_scan.remove(&uid);
                            book.remove_resource(&uid);
                            admission.remove_resource(&uid);
                        }
                    }
                    kind_state.synced = true;
                }
                WatchEvent::Applied(object) => {
                    let Some(identity) = ResourceIdentity::of(&object) else {
                        continue;
                    };
                    if let Some(seen) = &mut kind_state.relisting {
                        seen.insert(identity.uid.clone());
                    }
                    let json = object.to_string().into_boxed_str();
                    if kind_state
                        .objects
                        .get(&identity.uid)
                        .is_some_and(|old| old.json == json)
                    {
                        continue;
                    }
                    kind_state.objects.insert(
                        identity.uid.clone(),
                        Stored {
                            identity: identity.clone(),
                            json,
                        },
                    );
                    to_scan.insert(identity.uid.clone(), (identity, object));
                }
                WatchEvent::Deleted(object) => {
                    if let Some(identity) = ResourceIdentity::of(&object) {
                        kind_state.objects.remove(&identity.uid);
                        to_scan.remove(&identity.uid);
                        self.reports.book().remove_resource(&identity.uid);
                        self.reports.admission_book().remove_resource(&identity.uid);
                    }
                }
            }
        }
        self.update_synced(state);
        let objects: Vec<(ResourceIdentity, Value)> = to_scan.into_values().collect();
        let policies = Arc::clone(&state.policies);
        self.evaluate(policies, objects).await;
    }

    /// Validate results of policies the scan cannot re-derive go into the book.
    fn on_admission(&self, state: &ScanState, review: &ReviewOutcomes) {
        if review.dry_run
            || !review.allowed
            || !matches!(review.operation, Operation::Create | Operation::Update)
        {
            return;
        }
        let resource = &review.resource;
        let Some(uid) = resource.uid.as_deref().filter(|u| !u.is_empty()) else {
            return;
        };
        if resource.name.is_empty() {
            return;
        }
        let identity = ResourceIdentity {
            api_version: resource.kind.api_version(),
            kind: resource.kind.kind.clone(),
            namespace: resource.namespace.clone().filter(|n| !n.is_empty()),
            name: resource.name.clone(),
            uid: uid.to_owned(),
        };
        let at = timestamp(review.at);
        let mut per_policy: HashMap<PolicyKey, Vec<_>> = HashMap::new();
        for outcome in &review.outcomes {
            if !matches!(
                outcome.rule_type,
                RuleType::Validate | RuleType::VerifyImages
            ) {
                continue;
            }
            let key = PolicyKey::of(&outcome.policy, outcome.policy_namespace.as_deref());
            let Some((facts, scanned)) = state.facts.get(&key) else {
                continue;
            };
            // Scanned policies are reported from the scan of the stored object.
            if *scanned || !facts.reported {
                continue;
            }
            let entry = per_policy.entry(key).or_default();
            if let Some(result) = admission_result(facts, outcome, at, self.options.filter) {
                entry.push(result);
            }
        }
        let mut book = self.reports.admission_book();
        for (key, results) in per_policy {
            book.set_results(&identity, Source::Admission, &key, results);
        }
    }
}

/// Writes what a book says changed: the background book while this replica leads, the
/// admission book always.
pub struct ReportWriter {
    pub client: Client,
    pub reports: Reports,
    pub book: Arc<Mutex<ReportBook>>,
    /// `None`: write whether leading or not (admission results of this replica's reviews).
    pub leadership: Option<Leadership>,
    pub flush_interval: Duration,
    pub shutdown: ShutdownSignal,
}

/// The API of PolicyReports in `namespace`, or of ClusterPolicyReports for `None`.
fn report_api(client: &Client, namespace: Option<&str>) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => {
            Api::namespaced_with(client.clone(), ns, &ApiResource::erase::<PolicyReport>(&()))
        }
        None => Api::all_with(
            client.clone(),
            &ApiResource::erase::<ClusterPolicyReport>(&()),
        ),
    }
}

impl ReportWriter {
    pub async fn run(self) {
        let mut tick = tokio::time::interval(self.flush_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stop = self.shutdown.clone().wait();
        tokio::pin!(stop);
        // Reports found when leadership was gained that no resource claims (yet).
        let mut unclaimed: Option<Vec<(String, Option<String>)>> = None;
        let mut leading = false;
        loop {
            tokio::select! {
                () = &mut stop => return,
                _ = tick.tick() => {}
            }
            if self.leadership.as_ref().is_some_and(|l| !l.is_leader()) {
                leading = false;
                continue;
            }
            if !leading && self.leadership.is_none() {
                leading = true;
            }
            if !leading {
                match self.adopt().await {
                    Ok(found) => {
                        unclaimed = Some(found);
                        leading = true;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot list PolicyReports; reports are not written until this works (check bylaw's RBAC for wgpolicyk8s.io and that the CRDs are installed)");
                        continue;
                    }
                }
            }
            // Once every watched kind is listed, reports no resource claims are orphans.
            if self.reports.synced.load(Ordering::SeqCst) {
                if let Some(found) = unclaimed.take() {
                    let mut book = lock(&self.book);
                    let orphans: Vec<(String, Option<String>)> = found
                        .into_iter()
                        .filter(|(uid, _)| !book.contains(uid))
                        .collect();
                    for (uid, namespace) in orphans {
                        let name = book.name_of(&uid);
                        book.retry(&ReportChange::Delete {
                            uid,
                            name,
                            namespace,
                        });
                    }
                }
            }
            let changes = lock(&self.book).take_changes(WRITE_ROUND);
            if changes.is_empty() {
                continue;
            }
            if changes.len() == WRITE_ROUND {
                // More are waiting: the next round starts as soon as this one is written.
                tick.reset_immediately();
            }
            let client = self.client.clone();
            let results: Vec<(ReportChange, Result<(), kube::Error>)> =
                futures::stream::iter(changes)
                    .map(|change| {
                        let client = client.clone();
                        async move {
                            let outcome = write_change(&client, &change).await;
                            (change, outcome)
                        }
                    })
                    .buffer_unordered(WRITES_IN_FLIGHT)
                    .collect()
                    .await;
            let mut book = lock(&self.book);
            let mut failed = 0usize;
            for (change, outcome) in results {
                let operation = match change {
                    ReportChange::Apply { .. } => "apply",
                    ReportChange::Delete { .. } => "delete",
                };
                let ok = outcome.is_ok();
                if let Err(error) = &outcome {
                    failed += 1;
                    if failed == 1 {
                        tracing::warn!(%error, operation, "cannot write a PolicyReport; retrying on the next round");
                    }
                    book.retry(&change);
                } else {
                    book.written(&change);
                }
                self.reports.metrics.write(operation, ok);
            }
            let (count, bytes) = book.written_totals();
            drop(book);
            let other = if Arc::ptr_eq(&self.book, &self.reports.book) {
                &self.reports.admission_book
            } else {
                &self.reports.book
            };
            let (other_count, other_bytes) = lock(other).written_totals();
            self.reports
                .metrics
                .set_totals(count + other_count, bytes + other_bytes);
        }
    }

    /// Reads the reports bylaw wrote before (any replica) into the book.
    async fn adopt(&self) -> Result<Vec<(String, Option<String>)>, kube::Error> {
        let selector = format!("{MANAGED_BY_LABEL}={MANAGED_BY}");
        let mut found = Vec::new();
        let mut existing = Vec::new();
        // Every namespace's PolicyReports, then the ClusterPolicyReports.
        for api in [
            Api::<DynamicObject>::all_with(
                self.client.clone(),
                &ApiResource::erase::<PolicyReport>(&()),
            ),
            report_api(&self.client, None),
        ] {
            for object in list_all(&api, ListParams::default().labels(&selector)).await? {
                let namespace = object.metadata.namespace.clone();
                let Some(name) = object.metadata.name.clone() else {
                    continue;
                };
                let value = serde_json::to_value(&object).unwrap_or(Value::Null);
                existing.push((name, namespace, value));
            }
        }
        let mut book = lock(&self.book);
        book.forget_written();
        for (name, namespace, value) in existing {
            // Only reports this book names (the admission reports are another book's).
            if name.ends_with(ADMISSION_SUFFIX) {
                continue;
            }
            let Some(uid) = book.uid_of(&name).map(str::to_owned) else {
                continue;
            };
            if !book.adopt_existing(&uid, &value) {
                found.push((uid, namespace));
            }
        }
        Ok(found)
    }
}

async fn write_change(client: &Client, change: &ReportChange) -> Result<(), kube::Error> {
    match change {
        ReportChange::Apply { name, report, .. } => {
            let namespace = report
                .pointer("/metadata/namespace")
                .and_then(Value::as_str);
            let api = report_api(client, namespace);
            let params = PatchParams::apply(FIELD_MANAGER).force();
            api.patch(name, &params, &Patch::Apply(report)).await?;
            Ok(())
        }
        ReportChange::Delete {
            name, namespace, ..
        } => {
            let api = report_api(client, namespace.as_deref());
            match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
                Err(error) => Err(error),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bylaw_engine::engine::{compile_document, CompiledDocument};
    use serde_json::json;

    fn served(
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        preferred: bool,
        listable: bool,
    ) -> ServedKind {
        ServedKind {
            resource: ApiResource {
                group: group.into(),
                version: version.into(),
                api_version: if group.is_empty() {
                    version.into()
                } else {
                    format!("{group}/{version}")
                },
                kind: kind.into(),
                plural: plural.into(),
            },
            namespaced: true,
            preferred,
            listable,
        }
    }

    fn policy(kinds: Value) -> CompiledPolicy {
        let document = json!({
            "apiVersion": "kyverno.io/v1",
            "kind": "ClusterPolicy",
            "metadata": {"name": "p"},
            "spec": {"rules": [{
                "name": "r",
                "match": {"any": [{"resources": {"kinds": kinds}}]},
                "validate": {"message": "m", "pattern": {"metadata": {"name": "?*"}}}
            }]}
        });
        match compile_document(&document).unwrap() {
            CompiledDocument::Policy(policy) => *policy,
            _ => panic!("a policy"),
        }
    }

    #[test]
    fn a_policy_is_scanned_in_the_preferred_version_of_listable_kinds_only() {
        let catalog = KindCatalog::new(vec![
            served(
                "autoscaling",
                "v1",
                "HorizontalPodAutoscaler",
                "horizontalpodautoscalers",
                false,
                true,
            ),
            served(
                "autoscaling",
                "v2",
                "HorizontalPodAutoscaler",
                "horizontalpodautoscalers",
                true,
                true,
            ),
            served("", "v1", "Secret", "secrets", true, true),
            served("", "v1", "Binding", "bindings", true, false),
            served("", "v1", "ConfigMap", "configmaps", true, true),
        ]);
        let kinds: BTreeSet<(String, String)> = kinds_of(
            &policy(json!([
                "HorizontalPodAutoscaler",
                "Secret",
                "Binding",
                "ConfigMap"
            ])),
            &catalog,
        )
        .into_iter()
        .map(|k| (k.api_version(), k.kind))
        .collect();
        let want: BTreeSet<(String, String)> = [
            ("autoscaling/v2", "HorizontalPodAutoscaler"),
            ("v1", "ConfigMap"),
        ]
        .into_iter()
        .map(|(v, k)| (v.to_owned(), k.to_owned()))
        .collect();
        assert_eq!(kinds, want);
        // A selector that names a version gets that version.
        let named = kinds_of(
            &policy(json!(["autoscaling/v1/HorizontalPodAutoscaler"])),
            &catalog,
        );
        assert_eq!(
            named.iter().map(|k| k.version.as_str()).collect::<Vec<_>>(),
            ["v1"]
        );
    }

    #[test]
    fn status_changes_do_not_make_a_policy_look_changed() {
        let mut a = policy(json!(["Pod"]));
        let before = version_of(&a);
        let mut source = (*a.source).clone();
        source["status"] = json!({"ready": true});
        source["metadata"]["resourceVersion"] = json!("42");
        a.source = Arc::new(source.clone());
        assert_eq!(version_of(&a), before, "status and resourceVersion");
        source["metadata"]["annotations"] = json!({"policies.kyverno.io/severity": "high"});
        a.source = Arc::new(source.clone());
        assert_ne!(version_of(&a), before, "annotations feed the results");
        source["spec"]["rules"][0]["validate"]["message"] = json!("other");
        let with_annotation = version_of(&a);
        a.source = Arc::new(source);
        assert_ne!(version_of(&a), with_annotation, "spec");
    }
}
