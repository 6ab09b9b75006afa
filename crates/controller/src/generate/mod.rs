//! Generate and mutate-existing rules carried out in the cluster, level-triggered.
//!
//! Nothing is recorded at admission. The controller watches the kinds the policies' generate
//! and mutate-existing rules match (the triggers), the objects synchronized rules generated
//! (selected by their `generate.kyverno.io/*` labels) and the sources synchronized clones
//! copy. Every change, every policy change, every leadership gain and a periodic resync put
//! work on one queue ([`queue::WorkQueue`]); a worker takes one policy and one trigger, runs the
//! engine on the trigger as it is now, and converges: writes what the rules produce, and
//! applies the engine's lifecycle decision to downstream objects whose rule no longer applies.
//! Because the state of the cluster is the record of the work, a restart or a new leader
//! simply lists and converges again; nothing accepted at admission is lost, and admission
//! never waits for generation. See docs/architecture.md ("Generate and mutate-existing").
//!
//! Writes happen only while this replica leads, with field manager `bylaw`: a new object is
//! created, a synchronized one is server-side applied, a mutate-existing target is patched
//! with its resourceVersion as precondition (a conflict is retried against the new state).
//! A namespaced Policy writes only into its own namespace. A write the API server forbids is
//! reported as a `PolicyError` event on the policy, naming the verb and the resource, and
//! retried with backoff; the other policies go on.

pub mod plan;
pub mod queue;
pub mod watches;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use bylaw_engine::engine::{generate_policy, mutate_existing_policy, TargetMutation};
use bylaw_engine::generate::labels::{split_api_version, POLICY_NAME, TRIGGER_GROUP};
use bylaw_engine::generate::{
    DownstreamAction, GenerateAction, GeneratedResource, LifecycleEvent, PolicyGeneration,
    ResourceRef,
};
use bylaw_engine::request::{metadata_str, Operation, Request};
use bylaw_runtime::context_scope::{ContextBudget, PolicyScope, DEFAULT_MAX_CONTEXT_BYTES};
use bylaw_runtime::policy_cache::{Compiled, PolicyCache};
use bylaw_runtime::policy_index::PolicyIndex;
use bylaw_runtime::sources::{ContextSource, NAMESPACE_NAME_LABEL};
use bylaw_runtime::{Metrics, ShutdownSignal};
use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::Client;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, watch};

use crate::context::{dynamic_value, ClusterContext};
use crate::events::{EventRecorder, EventRequest, EventType};
use crate::kinds::{KindCatalog, ServedKind};
use crate::leader::Leadership;
use plan::{may_write, rule_step, GenerateRule, PolicyEntry, Provenance, RuleStep};
use queue::{Grouped, Outcome, QueueConfig, WorkQueue};
use watches::{Role, Seen, WatchKey, Watches};

/// The field manager of every write.
pub const FIELD_MANAGER: &str = "bylaw";
/// `controller_name` of this controller's queue metrics.
const CONTROLLER: &str = "generate";
/// Watch events waiting for the dispatcher at most.
const EVENT_BUFFER: usize = 4096;
/// Triggers remembered as changed while watched, at most.
const MAX_TOUCHED: usize = 100_000;

/// Settings of the generate controller.
#[derive(Clone, Debug)]
pub struct GenerateConfig {
    /// Rate, burst and backoff of the work queue.
    pub queue: QueueConfig,
    /// Work items handled at once.
    pub workers: usize,
    /// How often every trigger is looked at again, in case a change was missed.
    pub resync: Duration,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        GenerateConfig {
            queue: QueueConfig::default(),
            workers: 4,
            resync: Duration::from_secs(600),
        }
    }
}

/// One unit of work; its group is the policy, so policies take turns.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WorkKey {
    /// Converge one trigger for one policy.
    Trigger {
        policy: String,
        trigger: ResourceRef,
    },
    /// Handle the downstream objects of triggers that are gone.
    Collect { policy: String },
    /// The policy is gone: remove or orphan its downstream objects.
    Retire { policy: String },
    /// A trigger was deleted and some rule generates on DELETE (`uid` finds the deleted
    /// object, kept until then).
    Deleted {
        policy: String,
        trigger: ResourceRef,
        uid: String,
    },
}

impl Grouped for WorkKey {
    fn group(&self) -> &str {
        match self {
            WorkKey::Trigger { policy, .. }
            | WorkKey::Collect { policy }
            | WorkKey::Retire { policy }
            | WorkKey::Deleted { policy, .. } => policy,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller_name: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ObjectLabels {
    policy_name: String,
    policy_namespace: String,
    action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    policy_name: String,
    policy_namespace: String,
    reason: &'static str,
}

/// The generate controller's metrics (see docs/metrics.md). Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct GenerateMetrics {
    depth: Family<ControllerLabels, Gauge>,
    reconciles: Family<ControllerLabels, Counter>,
    requeues: Family<ControllerLabels, Counter>,
    objects: Family<ObjectLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
}

impl GenerateMetrics {
    /// Registers the families in `metrics`.
    pub fn register(metrics: &Metrics) -> Self {
        let counters = GenerateMetrics::default();
        metrics.register(
            "bylaw_controller_queue_depth",
            "Work items waiting in a controller's queue (retries included)",
            counters.depth.clone(),
        );
        metrics.register(
            "bylaw_controller_reconcile",
            "Work items a controller handled",
            counters.reconciles.clone(),
        );
        metrics.register(
            "bylaw_controller_requeue",
            "Work items a controller put back to retry after a failure",
            counters.requeues.clone(),
        );
        metrics.register(
            "bylaw_generate_objects",
            "Objects generate and mutate-existing rules wrote, by action: create, update, delete, patch",
            counters.objects.clone(),
        );
        metrics.register(
            "bylaw_generate_failures",
            "Generate and mutate-existing work that failed, by reason",
            counters.failures.clone(),
        );
        counters
    }

    /// The queue holds `depth` items.
    pub fn set_depth(&self, depth: usize) {
        self.depth
            .get_or_create(&ControllerLabels {
                controller_name: CONTROLLER,
            })
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    /// One work item handled; `retry` when it goes back to the queue.
    pub fn reconciled(&self, retry: bool) {
        let labels = ControllerLabels {
            controller_name: CONTROLLER,
        };
        self.reconciles.get_or_create(&labels).inc();
        if retry {
            self.requeues.get_or_create(&labels).inc();
        }
    }

    /// An object written: `create`, `update`, `delete` or `patch`.
    pub fn object(&self, policy_name: &str, policy_namespace: Option<&str>, action: &'static str) {
        self.objects
            .get_or_create(&ObjectLabels {
                policy_name: policy_name.to_owned(),
                policy_namespace: policy_namespace.unwrap_or("-").to_owned(),
                action,
            })
            .inc();
    }

    /// A failure: `forbidden`, `conflict`, `scope`, `evaluation` or `api`.
    pub fn failure(&self, policy_name: &str, policy_namespace: Option<&str>, reason: &'static str) {
        self.failures
            .get_or_create(&FailureLabels {
                policy_name: policy_name.to_owned(),
                policy_namespace: policy_namespace.unwrap_or("-").to_owned(),
                reason,
            })
            .inc();
    }
}

/// Counts for one policy.
#[derive(Clone, Debug)]
struct Counters(GenerateMetrics);

impl Counters {
    fn object(&self, policy: &PolicyEntry, action: &'static str) {
        self.0.object(
            &policy.policy.name,
            policy.policy.namespace.as_deref(),
            action,
        );
    }

    fn failure(&self, policy: &PolicyEntry, reason: &'static str) {
        self.0.failure(
            &policy.policy.name,
            policy.policy.namespace.as_deref(),
            reason,
        );
    }
}

/// The generate controller; [`GenerateController::start`] runs it.
pub struct GenerateController {
    pub client: Client,
    /// Lookups of the engine (clone sources, context entries) and the kind catalog.
    pub context: Arc<ClusterContext>,
    /// The served set (for PolicyExceptions).
    pub cache: Arc<PolicyCache>,
    /// Every policy object, compiled (a policy that stops compiling is not a deleted one).
    pub index: Arc<std::sync::Mutex<PolicyIndex>>,
    /// Moves after every batch of policy changes.
    pub changes: watch::Receiver<u64>,
    pub leadership: Leadership,
    pub metrics: Metrics,
    pub events: EventRecorder,
    pub config: GenerateConfig,
}

impl std::fmt::Debug for GenerateController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenerateController")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

struct Shared {
    client: Client,
    context: Arc<ClusterContext>,
    cache: Arc<PolicyCache>,
    leadership: Leadership,
    events: EventRecorder,
    counters: Counters,
    queue: WorkQueue<WorkKey>,
    policies: RwLock<BTreeMap<String, Arc<PolicyEntry>>>,
    retired: Mutex<BTreeMap<String, Arc<PolicyEntry>>>,
    watches: RwLock<Watches>,
    /// Triggers seen changing while watched (uid → when): a change after a policy exists is
    /// one the policy must act on, even for a trigger older than the policy.
    touched: Mutex<HashMap<String, DateTime<Utc>>>,
    /// Per policy: what bylaw may not do for it, by (verb, resource, namespace) — shown in its
    /// `status.generate` until the same write succeeds or the policy changes.
    problems: Mutex<HashMap<String, BTreeMap<Problem, String>>>,
    /// Per policy: the `status.generate.message` last written (`None`: cleared).
    published: Mutex<HashMap<String, Option<String>>>,
    /// Deleted triggers waiting for rules that generate on DELETE, by uid.
    deleted: Mutex<HashMap<String, Arc<Value>>>,
}

/// What failed: verb, resource (`networkpolicies.networking.k8s.io`) and namespace.
type Problem = (String, String, String);

impl GenerateController {
    /// Starts the dispatcher and the workers; they run until `shutdown`.
    pub fn start(self, shutdown: ShutdownSignal) {
        let GenerateController {
            client,
            context,
            cache,
            index,
            changes,
            leadership,
            metrics,
            events,
            config,
        } = self;
        let counters = Counters(GenerateMetrics::register(&metrics));
        let shared = Arc::new(Shared {
            client,
            context,
            cache,
            leadership,
            events,
            counters,
            queue: WorkQueue::new(config.queue),
            policies: RwLock::new(BTreeMap::new()),
            retired: Mutex::new(BTreeMap::new()),
            watches: RwLock::new(Watches::default()),
            touched: Mutex::new(HashMap::new()),
            problems: Mutex::new(HashMap::new()),
            published: Mutex::new(HashMap::new()),
            deleted: Mutex::new(HashMap::new()),
        });
        for _ in 0..config.workers.max(1) {
            tokio::spawn(work(Arc::clone(&shared), shutdown.clone()));
        }
        tokio::spawn(dispatch(shared, index, changes, config.resync, shutdown));
    }
}

/// Turns policy changes, watch events, leadership gains and the resync timer into work.
async fn dispatch(
    shared: Arc<Shared>,
    index: Arc<std::sync::Mutex<PolicyIndex>>,
    mut changes: watch::Receiver<u64>,
    resync: Duration,
    shutdown: ShutdownSignal,
) {
    let (tx, mut rx) = mpsc::channel(EVENT_BUFFER);
    let stop = shutdown.clone().wait();
    tokio::pin!(stop);
    let mut leadership = shared.leadership.clone();
    let mut ticker = tokio::time::interval(resync.max(Duration::from_secs(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    shared.policies_changed(&index, &tx, &shutdown).await;
    loop {
        tokio::select! {
            _ = &mut stop => return,
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
                shared.policies_changed(&index, &tx, &shutdown).await;
            }
            Some((key, seen)) = rx.recv() => shared.on_seen(&key, &seen),
            () = leadership.acquired(), if !leadership.is_leader() => shared.resync_all(),
            _ = ticker.tick() => shared.resync_all(),
        }
        shared.update_depth();
    }
}

/// Takes work while this replica leads.
async fn work(shared: Arc<Shared>, shutdown: ShutdownSignal) {
    let stop = shutdown.wait();
    tokio::pin!(stop);
    let mut leadership = shared.leadership.clone();
    loop {
        tokio::select! {
            _ = &mut stop => return,
            () = leadership.acquired() => {}
        }
        let key = tokio::select! {
            _ = &mut stop => return,
            key = shared.queue.next() => key,
            () = leadership.lost() => continue,
        };
        let outcome = shared.reconcile(&key).await;
        shared.counters.0.reconciled(outcome == Outcome::Retry);
        shared.publish_status(key.group()).await;
        shared.queue.done(&key, outcome);
        shared.update_depth();
    }
}

impl Shared {
    fn update_depth(&self) {
        self.counters.0.set_depth(self.queue.depth());
    }

    fn policy(&self, key: &str) -> Option<Arc<PolicyEntry>> {
        self.policies
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    fn all_policies(&self) -> Vec<Arc<PolicyEntry>> {
        self.policies
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// Reads the index again: new and changed policies get all their triggers looked at,
    /// deleted ones are retired, and the watches follow the new set.
    async fn policies_changed(
        &self,
        index: &std::sync::Mutex<PolicyIndex>,
        tx: &mpsc::Sender<(WatchKey, Seen)>,
        shutdown: &ShutdownSignal,
    ) {
        let previous = self
            .policies
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut current = BTreeMap::new();
        {
            let index = index.lock().unwrap_or_else(PoisonError::into_inner);
            for (key, object) in index.iter() {
                let key_text = if key.namespace.is_empty() {
                    key.name.clone()
                } else {
                    format!("{}/{}", key.namespace, key.name)
                };
                match &object.outcome {
                    Ok(Compiled::Policy(policy)) => {
                        let unchanged = previous
                            .get(&key_text)
                            .filter(|p| Arc::ptr_eq(&p.policy, policy) && p.uid == object.meta.uid);
                        if let Some(unchanged) = unchanged {
                            current.insert(key_text, Arc::clone(unchanged));
                        } else if let Some(entry) = PolicyEntry::of(
                            Arc::clone(policy),
                            &object.meta.uid,
                            &object.meta.creation_timestamp,
                        ) {
                            current.insert(key_text, Arc::new(entry));
                        }
                    }
                    // A policy that no longer compiles still exists: its downstream objects
                    // stay as they are until it is fixed or deleted.
                    _ => {
                        if let Some(kept) = previous.get(&key_text) {
                            current.insert(key_text, Arc::clone(kept));
                        }
                    }
                }
            }
        }
        let mut changed = Vec::new();
        for (key, entry) in &current {
            match previous.get(key) {
                Some(old) if Arc::ptr_eq(old, entry) => {}
                _ => changed.push(Arc::clone(entry)),
            }
        }
        let gone: Vec<(String, Arc<PolicyEntry>)> = previous
            .iter()
            .filter(|(key, old)| current.get(*key).is_none_or(|new| new.uid != old.uid))
            .map(|(key, old)| (key.clone(), Arc::clone(old)))
            .collect();
        *self
            .policies
            .write()
            .unwrap_or_else(PoisonError::into_inner) = current;
        for (key, old) in gone {
            tracing::info!(policy = %key, "generate: policy deleted");
            self.retired
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(key.clone(), old);
            self.queue.add(WorkKey::Retire { policy: key });
        }
        self.sync_watches(tx, shutdown).await;
        for entry in changed {
            // A new version of the policy is judged afresh.
            self.problems
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&entry.key());
            tracing::info!(policy = %entry.key(), "generate: policy changed; looking at its triggers");
            self.enqueue_policy(&entry);
        }
    }

    /// Starts and stops watches so that exactly what the policies need is watched.
    async fn sync_watches(&self, tx: &mpsc::Sender<(WatchKey, Seen)>, shutdown: &ShutdownSignal) {
        let policies = self.all_policies();
        if policies.is_empty() {
            self.watches
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .sync(Vec::new(), &self.client, tx, shutdown);
            return;
        }
        let kinds = self.context.kinds();
        let mut catalog = match kinds.catalog().await {
            Ok(catalog) => catalog,
            Err(error) => {
                tracing::warn!(%error, "generate: API discovery failed; watches unchanged");
                return;
            }
        };
        let mut desired = desired_watches(&policies, &catalog);
        if desired.missing {
            if let Ok(fresh) = kinds.refresh().await {
                catalog = fresh;
                desired = desired_watches(&policies, &catalog);
            }
        }
        self.watches
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .sync(desired.watches, &self.client, tx, shutdown);
    }

    /// Work for a watch event.
    fn on_seen(&self, key: &WatchKey, seen: &Seen) {
        let object = match seen {
            Seen::Listed(o) | Seen::Changed(o) | Seen::Deleted(o) => o,
        };
        match key.role {
            Role::Trigger => {
                let uid = metadata_str(object, "uid").to_owned();
                match seen {
                    Seen::Changed(_) => {
                        let mut touched =
                            self.touched.lock().unwrap_or_else(PoisonError::into_inner);
                        if touched.len() >= MAX_TOUCHED {
                            touched.clear();
                        }
                        touched.insert(uid.clone(), Utc::now());
                    }
                    Seen::Deleted(_) => {
                        self.touched
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .remove(&uid);
                    }
                    Seen::Listed(_) => {}
                }
                let (group, version) = split_api_version(&key.api_version);
                let trigger = ResourceRef::of(object);
                for entry in self.all_policies() {
                    if !entry.selects_kind(group, version, &key.kind)
                        || !in_scope(&entry, &trigger.namespace)
                    {
                        continue;
                    }
                    let policy = entry.key();
                    match seen {
                        Seen::Deleted(_) => {
                            if entry.generate.iter().any(|r| r.on_delete) {
                                let mut deleted =
                                    self.deleted.lock().unwrap_or_else(PoisonError::into_inner);
                                if deleted.len() < MAX_TOUCHED {
                                    deleted.insert(uid.clone(), Arc::clone(object));
                                    self.queue.add(WorkKey::Deleted {
                                        policy: policy.clone(),
                                        trigger: trigger.clone(),
                                        uid: uid.clone(),
                                    });
                                }
                            }
                            self.queue.add(WorkKey::Collect { policy });
                        }
                        _ => self.queue.add(WorkKey::Trigger {
                            policy,
                            trigger: trigger.clone(),
                        }),
                    }
                }
            }
            Role::Downstream => {
                let Some(provenance) = Provenance::of(object) else {
                    return;
                };
                if self.policy(&provenance.policy).is_none() {
                    return;
                }
                let trigger = match seen {
                    Seen::Listed(_) => None,
                    _ => self.find_trigger(
                        &provenance.trigger_kind,
                        &provenance.trigger_namespace,
                        &provenance.trigger_uid,
                    ),
                };
                match trigger {
                    Some(trigger) => self.queue.add(WorkKey::Trigger {
                        policy: provenance.policy,
                        trigger,
                    }),
                    None => self.queue.add(WorkKey::Collect {
                        policy: provenance.policy,
                    }),
                }
            }
            Role::Source => {
                for entry in self.all_policies() {
                    if entry.follows_source(&key.api_version, &key.kind, &key.namespace) {
                        self.enqueue_policy(&entry);
                    }
                }
            }
        }
    }

    /// The trigger with this uid among the watched objects of its kind.
    fn find_trigger(&self, kind: &str, namespace: &str, uid: &str) -> Option<ResourceRef> {
        let caches = self
            .watches
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .of_role(Role::Trigger);
        caches
            .into_iter()
            .filter(|(key, _)| key.kind == kind)
            .flat_map(|(_, cache)| cache.all())
            .find(|o| metadata_str(o, "uid") == uid && metadata_str(o, "namespace") == namespace)
            .map(|o| ResourceRef::of(&o))
    }

    /// Every watched trigger of a policy, and its downstream objects of gone triggers.
    fn enqueue_policy(&self, entry: &PolicyEntry) {
        let policy = entry.key();
        let caches = self
            .watches
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .of_role(Role::Trigger);
        for (key, cache) in caches {
            let (group, version) = split_api_version(&key.api_version);
            if !entry.selects_kind(group, version, &key.kind) {
                continue;
            }
            for object in cache.all() {
                let trigger = ResourceRef::of(&object);
                if in_scope(entry, &trigger.namespace) {
                    self.queue.add(WorkKey::Trigger {
                        policy: policy.clone(),
                        trigger,
                    });
                }
            }
        }
        self.queue.add(WorkKey::Collect { policy });
    }

    /// Everything again: after a leadership gain and on the resync timer.
    fn resync_all(&self) {
        for entry in self.all_policies() {
            self.enqueue_policy(&entry);
        }
        let retired: Vec<String> = self
            .retired
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        for policy in retired {
            self.queue.add(WorkKey::Retire { policy });
        }
    }

    async fn reconcile(&self, key: &WorkKey) -> Outcome {
        if !self.leadership.is_leader() {
            // The new leader lists and converges by itself.
            return Outcome::Done;
        }
        match key {
            WorkKey::Trigger { policy, trigger } => self.reconcile_trigger(policy, trigger).await,
            WorkKey::Collect { policy } => self.collect(policy).await,
            WorkKey::Retire { policy } => self.retire(policy).await,
            WorkKey::Deleted { policy, uid, .. } => self.trigger_deleted(policy, uid).await,
        }
    }

    /// The watched trigger, `None` when it is gone (or its kind is no longer watched).
    fn trigger_object(&self, trigger: &ResourceRef) -> Option<Arc<Value>> {
        let key = WatchKey {
            role: Role::Trigger,
            api_version: trigger.api_version.clone(),
            kind: trigger.kind.clone(),
            namespace: String::new(),
            labels: String::new(),
        };
        self.watches
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .cache(&key)?
            .get(&trigger.namespace, &trigger.name)
    }

    /// Whether a synchronized rule has downstream objects for this trigger.
    fn has_downstream(&self, entry: &PolicyEntry, rule: &GenerateRule, uid: &str) -> bool {
        if !rule.settings.synchronize {
            return false;
        }
        let policy = entry.key();
        let caches = self
            .watches
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .of_role(Role::Downstream);
        caches
            .into_iter()
            .filter(|(key, _)| rule.downstream.iter().any(|k| k.kind == key.kind))
            .flat_map(|(_, cache)| cache.all())
            .filter_map(|o| Provenance::of(&o))
            .any(|p| p.policy == policy && p.rule == rule.name && p.trigger_uid == uid)
    }

    /// Converges one trigger for one policy.
    #[tracing::instrument(skip_all, fields(policy = %policy, kind = %trigger.kind, namespace = %trigger.namespace, name = %trigger.name))]
    async fn reconcile_trigger(&self, policy: &str, trigger: &ResourceRef) -> Outcome {
        let Some(entry) = self.policy(policy) else {
            return Outcome::Done;
        };
        let Some(object) = self.trigger_object(trigger) else {
            self.queue.add(WorkKey::Collect {
                policy: policy.to_owned(),
            });
            return Outcome::Done;
        };
        let uid = metadata_str(&object, "uid").to_owned();
        let changed_at = self
            .touched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&uid)
            .copied();
        let predates = entry.predates(&object, changed_at);
        let rules: Vec<&GenerateRule> = entry
            .generate
            .iter()
            .filter(|r| {
                !predates || r.settings.generate_existing || self.has_downstream(&entry, r, &uid)
            })
            .collect();
        let mutate_rules: BTreeSet<&str> = entry
            .mutate
            .iter()
            .filter(|r| !predates || r.on_policy_update)
            .map(|r| r.name.as_str())
            .collect();
        if rules.is_empty() && mutate_rules.is_empty() {
            return Outcome::Done;
        }
        let candidates = if mutate_rules.is_empty() {
            Vec::new()
        } else {
            match self.mutate_candidates(&entry).await {
                Ok(candidates) => candidates,
                Err(outcome) => return outcome,
            }
        };
        let evaluation = {
            let entry = Arc::clone(&entry);
            let context = Arc::clone(&self.context);
            let set = self.cache.current();
            let with_mutate = !mutate_rules.is_empty();
            tokio::task::spawn_blocking(move || {
                let exceptions = set.as_ref().map(|s| s.exceptions.as_slice()).unwrap_or(&[]);
                evaluate(
                    &entry,
                    &object,
                    Operation::Create,
                    context.as_ref(),
                    exceptions,
                    with_mutate.then_some(candidates.as_slice()),
                )
            })
            .await
        };
        let Ok((generation, mutations)) = evaluation else {
            tracing::error!("generate: evaluation did not finish");
            self.counters.failure(&entry, "evaluation");
            return Outcome::Retry;
        };
        let mut outcome = Outcome::Done;
        for rule in rules {
            let result = generation.rules.iter().find(|r| r.rule == rule.name);
            match rule_step(rule, result) {
                RuleStep::Write => {
                    self.rule_problem(&entry, &rule.name, None);
                    for resource in result.iter().flat_map(|r| r.resources.iter()) {
                        if self.write(&entry, resource).await == Outcome::Retry {
                            outcome = Outcome::Retry;
                        }
                    }
                }
                RuleStep::Downstream(DownstreamAction::Delete) => {
                    if self.delete_downstream(&entry, rule, Some(&uid)).await == Outcome::Retry {
                        outcome = Outcome::Retry;
                    }
                }
                RuleStep::Downstream(_) => {}
                RuleStep::Failed(message) => {
                    tracing::warn!(rule = %rule.name, %message, "generate: rule failed; retrying");
                    self.counters.failure(&entry, "evaluation");
                    self.rule_problem(&entry, &rule.name, Some(&message));
                    outcome = Outcome::Retry;
                }
            }
        }
        for mutation in mutations {
            if !mutate_rules.contains(&*mutation.response.name) {
                continue;
            }
            if self.patch_target(&entry, &mutation).await == Outcome::Retry {
                outcome = Outcome::Retry;
            }
        }
        outcome
    }

    /// The existing objects a policy's mutate-existing rules may target.
    async fn mutate_candidates(&self, entry: &PolicyEntry) -> Result<Vec<Value>, Outcome> {
        let targets: BTreeSet<&plan::SourceRef> =
            entry.mutate.iter().flat_map(|r| r.targets.iter()).collect();
        let mut candidates = Vec::new();
        for target in targets {
            let served = match self
                .context
                .kinds()
                .resolve(&target.kind.api_version, &target.kind.kind)
                .await
            {
                Ok(Some(served)) => served,
                Ok(None) => {
                    tracing::warn!(kind = %target.kind.kind, "mutate-existing: the API server does not serve this kind");
                    continue;
                }
                Err(error) => {
                    tracing::warn!(%error, "mutate-existing: discovery failed");
                    return Err(Outcome::Retry);
                }
            };
            match served
                .api(&self.client, &target.namespace)
                .list(&ListParams::default())
                .await
            {
                Ok(list) => candidates.extend(
                    list.items
                        .into_iter()
                        .map(|object| dynamic_value(object, &served)),
                ),
                Err(kube::Error::Api(status)) if status.code == 403 => {
                    self.forbidden(entry, "list", &served, &target.namespace);
                    return Err(Outcome::Retry);
                }
                Err(error) => {
                    tracing::warn!(%error, kind = %target.kind.kind, "mutate-existing: cannot list targets");
                    self.counters.failure(entry, "api");
                    return Err(Outcome::Retry);
                }
            }
        }
        Ok(candidates)
    }

    /// Creates or updates one generated object.
    async fn write(&self, entry: &PolicyEntry, resource: &GeneratedResource) -> Outcome {
        let target = &resource.target;
        if let Err(message) = may_write(&entry.policy, &target.namespace) {
            // Not retried: only a change of the policy can fix it, and that brings new work.
            tracing::warn!(target = %target, %message, "generate: refused");
            self.counters.failure(entry, "scope");
            let note = format!("{target} not generated: {message}");
            self.policy_event(entry, &note);
            self.problems
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(entry.key())
                .or_default()
                .insert(
                    ("generate".to_owned(), target.to_string(), String::new()),
                    note,
                );
            return Outcome::Done;
        }
        let served = match self
            .context
            .kinds()
            .resolve(&target.api_version, &target.kind)
            .await
        {
            Ok(Some(served)) => served,
            Ok(None) => {
                tracing::warn!(target = %target, "generate: the API server does not serve this kind");
                self.counters.failure(entry, "api");
                return Outcome::Retry;
            }
            Err(error) => {
                tracing::warn!(%error, "generate: discovery failed");
                self.counters.failure(entry, "api");
                return Outcome::Retry;
            }
        };
        if !self.leadership.is_leader() {
            return Outcome::Done;
        }
        let api = served.api(&self.client, &target.namespace);
        let (verb, result) = match resource.action {
            GenerateAction::Create => {
                let object: DynamicObject = match serde_json::from_value(resource.object.clone()) {
                    Ok(object) => object,
                    Err(error) => {
                        tracing::warn!(target = %target, %error, "generate: not an object");
                        self.counters.failure(entry, "evaluation");
                        return Outcome::Done;
                    }
                };
                let params = PostParams {
                    field_manager: Some(FIELD_MANAGER.to_owned()),
                    ..PostParams::default()
                };
                ("create", api.create(&params, &object).await.map(|_| ()))
            }
            GenerateAction::Update => {
                let params = PatchParams::apply(FIELD_MANAGER).force();
                (
                    "patch",
                    api.patch(&target.name, &params, &Patch::Apply(&resource.object))
                        .await
                        .map(|_| ()),
                )
            }
        };
        match result {
            Ok(()) => {
                let action = match resource.action {
                    GenerateAction::Create => "create",
                    GenerateAction::Update => "update",
                };
                tracing::info!(target = %target, action, "generate: written");
                self.counters.object(entry, action);
                self.resolved(entry, verb, &served, &target.namespace);
                Outcome::Done
            }
            Err(kube::Error::Api(status)) if status.code == 403 => {
                self.forbidden(entry, verb, &served, &target.namespace);
                Outcome::Retry
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {
                // Created meanwhile (by us or its owner): look again.
                self.counters.failure(entry, "conflict");
                Outcome::Retry
            }
            Err(error) => {
                tracing::warn!(target = %target, %error, "generate: write failed; retrying");
                self.counters.failure(entry, "api");
                Outcome::Retry
            }
        }
    }

    /// Deletes the downstream objects of a rule (of one trigger, or all of them).
    async fn delete_downstream(
        &self,
        entry: &PolicyEntry,
        rule: &GenerateRule,
        trigger_uid: Option<&str>,
    ) -> Outcome {
        let selector = plan::downstream_selector(&entry.policy, &rule.name, trigger_uid);
        self.delete_selected(entry, rule, &selector, |_| true).await
    }

    /// Deletes the objects of a rule's downstream kinds that `selector` selects and `keep`
    /// does not keep.
    async fn delete_selected(
        &self,
        entry: &PolicyEntry,
        rule: &GenerateRule,
        selector: &str,
        doomed: impl Fn(&Value) -> bool,
    ) -> Outcome {
        let mut outcome = Outcome::Done;
        for kind in &rule.downstream {
            let served = match self
                .context
                .kinds()
                .resolve(&kind.api_version, &kind.kind)
                .await
            {
                Ok(Some(served)) => served,
                Ok(None) => continue,
                Err(_) => {
                    outcome = Outcome::Retry;
                    continue;
                }
            };
            let listed = served
                .api(&self.client, "")
                .list(&ListParams::default().labels(selector))
                .await;
            let items = match listed {
                Ok(list) => list.items,
                Err(kube::Error::Api(status)) if status.code == 403 => {
                    self.forbidden(entry, "list", &served, "");
                    outcome = Outcome::Retry;
                    continue;
                }
                Err(error) => {
                    tracing::warn!(%error, kind = %kind.kind, "generate: cannot list downstream objects");
                    self.counters.failure(entry, "api");
                    outcome = Outcome::Retry;
                    continue;
                }
            };
            for item in items {
                let value = dynamic_value(item, &served);
                if !doomed(&value) {
                    continue;
                }
                if !self.leadership.is_leader() {
                    return Outcome::Done;
                }
                let namespace = metadata_str(&value, "namespace");
                let name = metadata_str(&value, "name");
                match served
                    .api(&self.client, namespace)
                    .delete(name, &DeleteParams::default())
                    .await
                {
                    Ok(_) => {
                        tracing::info!(kind = %kind.kind, namespace, name, "generate: downstream object deleted");
                        self.counters.object(entry, "delete");
                        self.resolved(entry, "delete", &served, namespace);
                    }
                    Err(kube::Error::Api(status)) if status.code == 404 => {}
                    Err(kube::Error::Api(status)) if status.code == 403 => {
                        self.forbidden(entry, "delete", &served, namespace);
                        outcome = Outcome::Retry;
                    }
                    Err(error) => {
                        tracing::warn!(%error, namespace, name, "generate: cannot delete a downstream object");
                        self.counters.failure(entry, "api");
                        outcome = Outcome::Retry;
                    }
                }
            }
        }
        outcome
    }

    /// Downstream objects whose trigger is gone: deleted where the lifecycle says so.
    async fn collect(&self, policy: &str) -> Outcome {
        let Some(entry) = self.policy(policy) else {
            return Outcome::Done;
        };
        let mut outcome = Outcome::Done;
        for rule in &entry.generate {
            if rule.settings.decide(LifecycleEvent::TriggerDeleted) != DownstreamAction::Delete {
                continue;
            }
            let triggers = self
                .watches
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .of_role(Role::Trigger);
            if triggers.iter().any(|(_, cache)| !cache.is_listed()) {
                // Absence means nothing until every trigger kind is listed.
                return Outcome::Retry;
            }
            let live: BTreeSet<String> = triggers
                .iter()
                .flat_map(|(_, cache)| cache.all())
                .map(|o| metadata_str(&o, "uid").to_owned())
                .collect();
            let watched_kinds: BTreeSet<(String, String)> = triggers
                .iter()
                .map(|(key, _)| {
                    let (group, _) = split_api_version(&key.api_version);
                    (group.to_owned(), key.kind.clone())
                })
                .collect();
            let selector = plan::downstream_selector(&entry.policy, &rule.name, None);
            let gone = |object: &Value| {
                let Some(provenance) = Provenance::of(object) else {
                    return false;
                };
                let group = bylaw_engine::request::metadata_map(object, "labels")
                    .get(TRIGGER_GROUP)
                    .cloned()
                    .unwrap_or_default();
                watched_kinds.contains(&(group, provenance.trigger_kind.clone()))
                    && !live.contains(&provenance.trigger_uid)
            };
            if self.delete_selected(&entry, rule, &selector, gone).await == Outcome::Retry {
                outcome = Outcome::Retry;
            }
        }
        outcome
    }

    /// Rules that generate on DELETE, for a deleted trigger (edge-triggered: the deleted
    /// object is known only to the replica that saw the deletion).
    async fn trigger_deleted(&self, policy: &str, uid: &str) -> Outcome {
        let object = self
            .deleted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(uid)
            .cloned();
        let (Some(entry), Some(object)) = (self.policy(policy), object) else {
            return Outcome::Done;
        };
        let evaluation = {
            let entry = Arc::clone(&entry);
            let context = Arc::clone(&self.context);
            let set = self.cache.current();
            tokio::task::spawn_blocking(move || {
                let exceptions = set.as_ref().map(|s| s.exceptions.as_slice()).unwrap_or(&[]);
                evaluate(
                    &entry,
                    &object,
                    Operation::Delete,
                    context.as_ref(),
                    exceptions,
                    None,
                )
            })
            .await
        };
        let Ok((generation, _)) = evaluation else {
            self.counters.failure(&entry, "evaluation");
            return Outcome::Done;
        };
        let mut outcome = Outcome::Done;
        for rule in entry.generate.iter().filter(|r| r.on_delete) {
            let result = generation.rules.iter().find(|r| r.rule == rule.name);
            if rule_step(rule, result) != RuleStep::Write {
                continue;
            }
            for resource in result.iter().flat_map(|r| r.resources.iter()) {
                if self.write(&entry, resource).await == Outcome::Retry {
                    outcome = Outcome::Retry;
                }
            }
        }
        if outcome == Outcome::Done {
            // Kept for a retry until then.
            self.deleted
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(uid);
        }
        outcome
    }

    /// A deleted policy: its downstream objects go or stay as its rules say.
    async fn retire(&self, policy: &str) -> Outcome {
        let Some(entry) = self
            .retired
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(policy)
            .cloned()
        else {
            return Outcome::Done;
        };
        if self.policy(policy).is_some_and(|p| p.uid == entry.uid) {
            // It came back before we got to it.
            self.retired
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(policy);
            return Outcome::Done;
        }
        let mut outcome = Outcome::Done;
        for rule in &entry.generate {
            if rule.settings.decide(LifecycleEvent::PolicyDeleted) == DownstreamAction::Delete
                && self.delete_downstream(&entry, rule, None).await == Outcome::Retry
            {
                outcome = Outcome::Retry;
            }
        }
        if outcome == Outcome::Done {
            self.retired
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(policy);
        }
        outcome
    }

    /// Patches one mutate-existing target: only what the rule changed, on the version the
    /// rule saw (a conflict means someone else wrote meanwhile: retried on the new state).
    async fn patch_target(&self, entry: &PolicyEntry, mutation: &TargetMutation) -> Outcome {
        let (Some(target), Some(patched)) = (&mutation.target, &mutation.patched) else {
            return Outcome::Done;
        };
        let Some(mut patch) = merge_diff(target, patched) else {
            return Outcome::Done;
        };
        let id = ResourceRef::of(target);
        if let Err(message) = may_write(&entry.policy, &id.namespace) {
            tracing::warn!(target = %id, %message, "mutate-existing: refused");
            self.counters.failure(entry, "scope");
            return Outcome::Done;
        }
        let version = metadata_str(target, "resourceVersion").to_owned();
        if let Value::Object(root) = &mut patch {
            let metadata = root
                .entry("metadata")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(metadata) = metadata {
                metadata.insert("resourceVersion".into(), Value::String(version));
            }
        }
        let served = match self
            .context
            .kinds()
            .resolve(&id.api_version, &id.kind)
            .await
        {
            Ok(Some(served)) => served,
            _ => {
                self.counters.failure(entry, "api");
                return Outcome::Retry;
            }
        };
        if !self.leadership.is_leader() {
            return Outcome::Done;
        }
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        match served
            .api(&self.client, &id.namespace)
            .patch(&id.name, &params, &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                tracing::info!(target = %id, rule = %mutation.response.name, "mutate-existing: patched");
                self.counters.object(entry, "patch");
                self.resolved(entry, "patch", &served, &id.namespace);
                Outcome::Done
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {
                self.counters.failure(entry, "conflict");
                Outcome::Retry
            }
            Err(kube::Error::Api(status)) if status.code == 404 => Outcome::Done,
            Err(kube::Error::Api(status)) if status.code == 403 => {
                self.forbidden(entry, "patch", &served, &id.namespace);
                Outcome::Retry
            }
            Err(error) => {
                tracing::warn!(target = %id, %error, "mutate-existing: patch failed; retrying");
                self.counters.failure(entry, "api");
                Outcome::Retry
            }
        }
    }

    /// bylaw lacks a permission: a `PolicyError` event on the policy naming verb and resource.
    fn forbidden(&self, entry: &PolicyEntry, verb: &str, served: &ServedKind, namespace: &str) {
        self.counters.failure(entry, "forbidden");
        let place = if namespace.is_empty() || !served.namespaced {
            String::new()
        } else {
            format!(" in namespace {namespace}")
        };
        let message = format!(
            "bylaw is not allowed to {verb} {}{place}; grant it to bylaw's service account (docs/operations.md, Generate)",
            served.group_resource()
        );
        tracing::warn!(policy = %entry.key(), %message, "generate: forbidden");
        self.policy_event(entry, &message);
        self.problems
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(entry.key())
            .or_default()
            .insert(
                (
                    verb.to_owned(),
                    served.group_resource(),
                    namespace.to_owned(),
                ),
                message,
            );
    }

    /// Records (or, with `None`, clears) why a rule could not be evaluated.
    fn rule_problem(&self, entry: &PolicyEntry, rule: &str, message: Option<&str>) {
        let mut problems = self.problems.lock().unwrap_or_else(PoisonError::into_inner);
        let key = ("evaluate".to_owned(), rule.to_owned(), String::new());
        match message {
            Some(message) => {
                problems
                    .entry(entry.key())
                    .or_default()
                    .insert(key, format!("rule {rule}: {message}"));
            }
            None => {
                if let Some(known) = problems.get_mut(&entry.key()) {
                    known.remove(&key);
                }
            }
        }
    }

    /// A write that was forbidden before went through.
    fn resolved(&self, entry: &PolicyEntry, verb: &str, served: &ServedKind, namespace: &str) {
        let mut problems = self.problems.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(known) = problems.get_mut(&entry.key()) {
            known.remove(&(
                verb.to_owned(),
                served.group_resource(),
                namespace.to_owned(),
            ));
        }
    }

    /// Writes the policy's `status.generate` when what bylaw cannot do for it changed.
    async fn publish_status(&self, policy: &str) {
        let message = {
            let problems = self.problems.lock().unwrap_or_else(PoisonError::into_inner);
            problems.get(policy).and_then(|known| {
                let first = known.values().next()?;
                Some(match known.len() {
                    1 => first.clone(),
                    n => format!("{first} (and {} more)", n - 1),
                })
            })
        };
        let published = self
            .published
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(policy)
            .cloned();
        if published.as_ref() == Some(&message) || (published.is_none() && message.is_none()) {
            return;
        }
        let Some(entry) = self.policy(policy) else {
            return;
        };
        let resource = if entry.policy.namespace.is_some() {
            kube::discovery::ApiResource::erase::<bylaw_api::Policy>(&())
        } else {
            kube::discovery::ApiResource::erase::<bylaw_api::ClusterPolicy>(&())
        };
        let api: kube::Api<DynamicObject> = match &entry.policy.namespace {
            Some(namespace) => {
                kube::Api::namespaced_with(self.client.clone(), namespace, &resource)
            }
            None => kube::Api::all_with(self.client.clone(), &resource),
        };
        let body = serde_json::json!({
            "status": {"generate": message.as_ref().map(|m| serde_json::json!({"message": m}))}
        });
        match api
            .patch_status(
                &entry.policy.name,
                &PatchParams::default(),
                &Patch::Merge(&body),
            )
            .await
        {
            Ok(_) => {
                self.published
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(policy.to_owned(), message);
            }
            Err(error) => {
                tracing::debug!(policy, %error, "generate: cannot write the policy's status");
            }
        }
    }

    fn policy_event(&self, entry: &PolicyEntry, note: &str) {
        let kind = entry
            .policy
            .source
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or(if entry.policy.namespace.is_some() {
                "Policy"
            } else {
                "ClusterPolicy"
            });
        let api_version = entry
            .policy
            .source
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("kyverno.io/v1");
        self.events.record(EventRequest {
            regarding: ObjectReference {
                api_version: Some(api_version.to_owned()),
                kind: Some(kind.to_owned()),
                name: Some(entry.policy.name.to_string()),
                namespace: entry.policy.namespace.clone(),
                uid: (!entry.uid.is_empty()).then(|| entry.uid.clone()),
                ..ObjectReference::default()
            },
            related: None,
            event_type: EventType::Warning,
            reason: "PolicyError".to_owned(),
            action: "Generate".to_owned(),
            note: note.to_owned(),
        });
    }
}

/// Whether a trigger in `namespace` is within a policy's reach (a namespaced Policy sees its
/// own namespace only).
fn in_scope(entry: &PolicyEntry, namespace: &str) -> bool {
    entry
        .policy
        .namespace
        .as_deref()
        .is_none_or(|own| own == namespace)
}

/// The watches a set of policies needs, and whether some kind was not found in the catalog.
struct DesiredWatches {
    watches: Vec<(WatchKey, ServedKind)>,
    missing: bool,
}

fn desired_watches(policies: &[Arc<PolicyEntry>], catalog: &KindCatalog) -> DesiredWatches {
    let mut watches: BTreeMap<WatchKey, ServedKind> = BTreeMap::new();
    let mut missing = false;
    let mut add = |role: Role, served: &ServedKind, namespace: &str, labels: &str| {
        watches.insert(
            WatchKey {
                role,
                api_version: served.resource.api_version.clone(),
                kind: served.resource.kind.clone(),
                namespace: namespace.to_owned(),
                labels: labels.to_owned(),
            },
            served.clone(),
        );
    };
    for entry in policies {
        for selector in &entry.triggers {
            if selector.kind == "*" {
                tracing::warn!(policy = %entry.key(), "generate: a rule matching every kind is not watched; name the kinds");
                continue;
            }
            let found = catalog.select(selector);
            missing |= found.is_empty();
            for served in found {
                add(Role::Trigger, served, "", "");
            }
        }
        for rule in entry.generate.iter().filter(|r| r.settings.synchronize) {
            for kind in &rule.downstream {
                match catalog.find(&kind.api_version, &kind.kind) {
                    Some(served) => add(Role::Downstream, served, "", POLICY_NAME),
                    None => missing = true,
                }
            }
            for source in &rule.sources {
                match catalog.find(&source.kind.api_version, &source.kind.kind) {
                    Some(served) => add(Role::Source, served, &source.namespace, ""),
                    None => missing = true,
                }
            }
        }
    }
    DesiredWatches {
        watches: watches.into_iter().collect(),
        missing,
    }
}

/// Runs the engine for one trigger: the policy's generate rules, and its mutate-existing rules
/// over `candidates` when given.
fn evaluate(
    entry: &PolicyEntry,
    trigger: &Value,
    operation: Operation,
    source: &dyn ContextSource,
    exceptions: &[bylaw_engine::exceptions::CompiledException],
    candidates: Option<&[Value]>,
) -> (PolicyGeneration, Vec<TargetMutation>) {
    let mut request = Request::create(trigger.clone());
    if operation == Operation::Delete {
        request.operation = Operation::Delete;
        request.old_object = Some(std::mem::take(&mut request.object));
    }
    let namespace = metadata_str(trigger, "namespace");
    request.namespace_labels = Some(
        if namespace.is_empty() || request.kind.kind == "Namespace" {
            BTreeMap::new()
        } else {
            let mut labels = source.namespace_labels(namespace).unwrap_or_default();
            labels
                .entry(NAMESPACE_NAME_LABEL.to_owned())
                .or_insert_with(|| namespace.to_owned());
            labels
        },
    );
    let budget = ContextBudget::new(DEFAULT_MAX_CONTEXT_BYTES);
    let scope = PolicyScope::new(source, entry.policy.namespace.as_deref(), &budget);
    let context = bylaw_engine::context::request_context_with(&request, entry.policy.uses_images);
    let generation = generate_policy(&entry.policy, &request, &context, &scope, exceptions);
    let mutations = match candidates {
        Some(candidates) => {
            let mut context = context;
            mutate_existing_policy(
                &entry.policy,
                &request,
                &mut context,
                &scope,
                exceptions,
                candidates,
            )
        }
        None => Vec::new(),
    };
    (generation, mutations)
}

/// The JSON merge patch (RFC 7386) that turns `from` into `to`; `None` when they are equal.
/// Lists are replaced whole, as merge patches do.
pub fn merge_diff(from: &Value, to: &Value) -> Option<Value> {
    if from == to {
        return None;
    }
    match (from, to) {
        (Value::Object(old), Value::Object(new)) => {
            let mut patch = Map::new();
            for (key, value) in new {
                match old.get(key) {
                    Some(previous) => {
                        if let Some(inner) = merge_diff(previous, value) {
                            patch.insert(key.clone(), inner);
                        }
                    }
                    None => {
                        patch.insert(key.clone(), value.clone());
                    }
                }
            }
            for key in old.keys().filter(|k| !new.contains_key(*k)) {
                patch.insert(key.clone(), Value::Null);
            }
            Some(Value::Object(patch))
        }
        _ => Some(to.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_diff_carries_only_what_changed() {
        let from = json!({"metadata": {"name": "a", "labels": {"keep": "1", "gone": "x"}},
                          "data": {"k": "v"}, "list": [1, 2]});
        let to = json!({"metadata": {"name": "a", "labels": {"keep": "1", "new": "y"}},
                        "data": {"k": "v"}, "list": [1, 2, 3]});
        assert_eq!(
            merge_diff(&from, &to),
            Some(json!({"metadata": {"labels": {"new": "y", "gone": null}}, "list": [1, 2, 3]}))
        );
        assert_eq!(merge_diff(&from, &from), None);
    }

    #[test]
    fn work_keys_are_grouped_by_policy() {
        let trigger = WorkKey::Trigger {
            policy: "team/p".into(),
            trigger: ResourceRef::of(&json!({"kind": "Namespace", "metadata": {"name": "x"}})),
        };
        assert_eq!(trigger.group(), "team/p");
        assert_eq!(WorkKey::Collect { policy: "q".into() }.group(), "q");
        assert_eq!(WorkKey::Retire { policy: "r".into() }.group(), "r");
    }
}
