//! Kubernetes Events (`events.k8s.io/v1`): rate-limited, deduplicated as series.
//!
//! Anything may ask for an event through an [`EventRecorder`] without waiting: requests go
//! through a bounded queue (dropped and counted when full) to one writer task. The writer
//! decides with an [`EventAggregator`] (pure, tested without a cluster):
//!
//! * the first occurrence of an event (same object, related object, reason, action and note)
//!   is created at once, if the rate limit allows (a token bucket; otherwise it is dropped and
//!   counted);
//! * repeats within six minutes only increase a counter; every flush interval the counters
//!   that moved are written as the event's `series` (count and last observed time), one patch
//!   per series, however many repeats there were;
//! * after six minutes without a repeat the series ends, and the next occurrence starts a new
//!   event.
//!
//! Admission outcomes become `PolicyViolation` events ([`violation_events`]): on the policy and
//! on the resource, for Enforce denials and — unless turned off — for Audit failures.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bylaw_runtime::admission::RuleResult;
use bylaw_runtime::policy_index::{ObjectKey, PolicyKind};
use bylaw_runtime::results::ReviewOutcomes;
use bylaw_runtime::{Metrics, ShutdownSignal};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde_json::json;
use tokio::sync::mpsc;

/// `reportingController` of every event bylaw writes.
pub const REPORTING_CONTROLLER: &str = "bylaw";
/// Longest note the API server accepts.
const MAX_NOTE_BYTES: usize = 1024;
/// How long a series stays open without a repeat (client-go's value).
const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

/// Normal or Warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    /// Nothing to worry about.
    Normal,
    /// Something needs attention.
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// One event to record.
#[derive(Clone, Debug, PartialEq)]
pub struct EventRequest {
    /// The object the event is about.
    pub regarding: ObjectReference,
    /// A second object involved (the resource, for an event on a policy).
    pub related: Option<ObjectReference>,
    /// Normal or Warning.
    pub event_type: EventType,
    /// `PolicyViolation`, `PolicyError`, …
    pub reason: String,
    /// What was done: `Resource Blocked`, `Resource Passed`, `Load`.
    pub action: String,
    /// Human-readable text (cut to 1024 bytes).
    pub note: String,
}

/// Identity of a series: everything but the time.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SeriesKey {
    regarding: ReferenceKey,
    related: Option<ReferenceKey>,
    event_type: EventType,
    reason: String,
    action: String,
    note: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ReferenceKey {
    api_version: String,
    kind: String,
    namespace: String,
    name: String,
    uid: String,
}

impl ReferenceKey {
    fn of(reference: &ObjectReference) -> Self {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        ReferenceKey {
            api_version: text(&reference.api_version),
            kind: text(&reference.kind),
            namespace: text(&reference.namespace),
            name: text(&reference.name),
            uid: text(&reference.uid),
        }
    }
}

#[derive(Clone, Debug)]
struct Series {
    namespace: String,
    name: String,
    last_observed: Instant,
    last_observed_wall: chrono::DateTime<chrono::Utc>,
    count: i32,
    reported: i32,
}

/// A write the aggregator decided on.
#[derive(Clone, Debug, PartialEq)]
pub enum EventWrite {
    /// Create a new event.
    Create(Box<Event>),
    /// Update the series of an existing event.
    Series {
        /// Namespace of the event.
        namespace: String,
        /// Name of the event.
        name: String,
        /// Occurrences so far.
        count: i32,
        /// Time of the last occurrence.
        last_observed: chrono::DateTime<chrono::Utc>,
    },
}

/// Why an event was not written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// The rate limit was reached.
    RateLimited,
    /// The recorder's queue was full.
    QueueFull,
    /// The API server refused it.
    Failed,
}

impl Dropped {
    fn label(self) -> &'static str {
        match self {
            Dropped::RateLimited => "rate_limited",
            Dropped::QueueFull => "queue_full",
            Dropped::Failed => "failed",
        }
    }
}

/// Limits of the aggregator.
#[derive(Clone, Copy, Debug)]
pub struct EventLimits {
    /// New events allowed at once.
    pub burst: u32,
    /// New events allowed per second after the burst.
    pub per_second: f64,
    /// Series remembered at most; the oldest are forgotten first.
    pub max_series: usize,
}

impl Default for EventLimits {
    fn default() -> Self {
        EventLimits {
            burst: 100,
            per_second: 10.0,
            max_series: 4096,
        }
    }
}

/// Decides which events to create and which series to update (pure; time is passed in).
#[derive(Debug)]
pub struct EventAggregator {
    limits: EventLimits,
    tokens: f64,
    refilled: Instant,
    series: HashMap<SeriesKey, Series>,
    instance: String,
}

impl EventAggregator {
    /// An aggregator for the reporting instance `instance` (the Pod name).
    pub fn new(limits: EventLimits, instance: &str, now: Instant) -> Self {
        EventAggregator {
            limits,
            tokens: f64::from(limits.burst),
            refilled: now,
            series: HashMap::new(),
            instance: instance.to_owned(),
        }
    }

    fn take_token(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens =
            (self.tokens + elapsed * self.limits.per_second).min(f64::from(self.limits.burst));
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// One occurrence: a new event to create, nothing (counted into an open series), or
    /// dropped by the rate limit.
    pub fn observe(
        &mut self,
        request: EventRequest,
        now: Instant,
        wall: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<EventWrite>, Dropped> {
        let note = truncate(&request.note, MAX_NOTE_BYTES);
        let key = SeriesKey {
            regarding: ReferenceKey::of(&request.regarding),
            related: request.related.as_ref().map(ReferenceKey::of),
            event_type: request.event_type,
            reason: request.reason.clone(),
            action: request.action.clone(),
            note: note.clone(),
        };
        if let Some(series) = self.series.get_mut(&key) {
            if now.saturating_duration_since(series.last_observed) < SERIES_WINDOW {
                series.count = series.count.saturating_add(1);
                series.last_observed = now;
                series.last_observed_wall = wall;
                return Ok(None);
            }
        }
        if !self.take_token(now) {
            return Err(Dropped::RateLimited);
        }
        let namespace = request
            .regarding
            .namespace
            .clone()
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| "default".to_owned());
        let name = format!(
            "{}.{:x}",
            event_name_prefix(
                request
                    .regarding
                    .name
                    .as_deref()
                    .unwrap_or(REPORTING_CONTROLLER)
            ),
            wall.timestamp_nanos_opt().unwrap_or_default()
        );
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(to_jiff(wall))),
            reporting_controller: Some(REPORTING_CONTROLLER.to_owned()),
            reporting_instance: Some(self.instance.clone()),
            action: Some(request.action),
            reason: Some(request.reason),
            regarding: Some(request.regarding),
            related: request.related,
            note: Some(note),
            type_: Some(request.event_type.as_str().to_owned()),
            ..Event::default()
        };
        if self.series.len() >= self.limits.max_series {
            self.forget_oldest();
        }
        self.series.insert(
            key,
            Series {
                namespace,
                name,
                last_observed: now,
                last_observed_wall: wall,
                count: 1,
                reported: 1,
            },
        );
        Ok(Some(EventWrite::Create(Box::new(event))))
    }

    fn forget_oldest(&mut self) {
        if let Some(oldest) = self
            .series
            .iter()
            .min_by_key(|(_, series)| series.last_observed)
            .map(|(key, _)| key.clone())
        {
            self.series.remove(&oldest);
        }
    }

    /// Series updates for the counters that moved since the last flush; closed series are
    /// forgotten.
    pub fn flush(&mut self, now: Instant) -> Vec<EventWrite> {
        let mut writes = Vec::new();
        for series in self.series.values_mut() {
            if series.count > series.reported {
                series.reported = series.count;
                writes.push(EventWrite::Series {
                    namespace: series.namespace.clone(),
                    name: series.name.clone(),
                    count: series.count,
                    last_observed: series.last_observed_wall,
                });
            }
        }
        self.series.retain(|_, series| {
            now.saturating_duration_since(series.last_observed) < SERIES_WINDOW
        });
        writes
    }
}

fn to_jiff(wall: chrono::DateTime<chrono::Utc>) -> k8s_openapi::jiff::Timestamp {
    k8s_openapi::jiff::Timestamp::from_microsecond(wall.timestamp_micros()).unwrap_or_default()
}

/// At most `max` bytes, cut at a character boundary, with `...` when cut.
fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub(3);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", text.get(..end).unwrap_or_default())
}

/// An object name made a valid event name prefix: lower case, `[a-z0-9.-]`, alphanumeric ends.
fn event_name_prefix(name: &str) -> String {
    let mut out: String = name
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(200)
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        out.insert(0, 'a');
    }
    if !out.ends_with(|c: char| c.is_ascii_alphanumeric()) {
        out.push('z');
    }
    out
}

/// A reference to a policy object.
pub fn policy_reference(key: &ObjectKey, uid: Option<&str>) -> ObjectReference {
    ObjectReference {
        api_version: Some(match key.kind {
            PolicyKind::PolicyException => "kyverno.io/v2".to_owned(),
            PolicyKind::ClusterPolicy | PolicyKind::Policy => "kyverno.io/v1".to_owned(),
            PolicyKind::ValidatingPolicy | PolicyKind::NamespacedValidatingPolicy => {
                "policies.kyverno.io/v1".to_owned()
            }
        }),
        kind: Some(key.kind.as_str().to_owned()),
        name: Some(key.name.clone()),
        namespace: (!key.namespace.is_empty()).then(|| key.namespace.clone()),
        uid: uid.map(str::to_owned),
        ..ObjectReference::default()
    }
}

/// `PolicyViolation` events for the failing and erroring rules of one admission review: on the
/// policy (with the resource as related object) and on the resource. Denials always; admitted
/// Audit failures when `audit` is on. Dry runs and resources without a name get none.
pub fn violation_events(batch: &ReviewOutcomes, audit: bool) -> Vec<EventRequest> {
    let resource = &batch.resource;
    if batch.dry_run || resource.name.is_empty() {
        return Vec::new();
    }
    let resource_ref = ObjectReference {
        api_version: Some(resource.kind.api_version()),
        kind: Some(resource.kind.kind.clone()),
        name: Some(resource.name.clone()),
        namespace: resource.namespace.clone(),
        uid: resource.uid.clone(),
        ..ObjectReference::default()
    };
    let shown = match &resource.namespace {
        Some(ns) => format!("{} {ns}/{}", resource.kind.kind, resource.name),
        None => format!("{} {}", resource.kind.kind, resource.name),
    };
    let mut events = Vec::new();
    for outcome in &batch.outcomes {
        if !matches!(outcome.result, RuleResult::Fail | RuleResult::Error) {
            continue;
        }
        let blocked = !batch.allowed && outcome.enforce;
        // An Enforce failure that did not block is an existing violation tolerated on UPDATE.
        if !(blocked || (audit && !outcome.enforce)) {
            continue;
        }
        let key = ObjectKey {
            kind: if outcome.policy_namespace.is_some() {
                PolicyKind::Policy
            } else {
                PolicyKind::ClusterPolicy
            },
            namespace: outcome.policy_namespace.clone().unwrap_or_default(),
            name: outcome.policy.to_string(),
        };
        let action = if blocked {
            "Resource Blocked"
        } else {
            "Resource Passed"
        };
        let mut on_policy = format!("{shown}: [{}] {}", outcome.rule, outcome.result.as_str());
        if blocked {
            on_policy.push_str(" (blocked)");
        }
        if !outcome.message.is_empty() {
            on_policy.push_str("; ");
            on_policy.push_str(&outcome.message);
        }
        events.push(EventRequest {
            regarding: policy_reference(&key, None),
            related: Some(resource_ref.clone()),
            event_type: EventType::Warning,
            reason: "PolicyViolation".to_owned(),
            action: action.to_owned(),
            note: on_policy,
        });
        events.push(EventRequest {
            regarding: resource_ref.clone(),
            related: None,
            event_type: EventType::Warning,
            reason: "PolicyViolation".to_owned(),
            action: action.to_owned(),
            note: format!(
                "policy {}/{} {}: {}",
                outcome.policy,
                outcome.rule,
                outcome.result.as_str(),
                outcome.message
            ),
        });
    }
    events
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    reason: &'static str,
}

/// Hands events to the writer without waiting. Cheap to clone.
#[derive(Clone, Debug)]
pub struct EventRecorder {
    tx: mpsc::Sender<EventRequest>,
    dropped: Family<DropLabels, Counter>,
}

/// The writer's side of an [`EventRecorder`].
#[derive(Debug)]
pub struct EventQueue {
    rx: mpsc::Receiver<EventRequest>,
    dropped: Family<DropLabels, Counter>,
}

/// A recorder and its queue, holding at most `capacity` events; drops are counted in
/// `bylaw_events_dropped_total{reason}`.
pub fn event_recorder(capacity: usize, metrics: &Metrics) -> (EventRecorder, EventQueue) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let dropped = Family::<DropLabels, Counter>::default();
    metrics.register(
        "bylaw_events_dropped",
        "Kubernetes events not written: rate limited, queue full or refused",
        dropped.clone(),
    );
    (
        EventRecorder {
            tx,
            dropped: dropped.clone(),
        },
        EventQueue { rx, dropped },
    )
}

impl EventRecorder {
    /// Queues an event; drops it (and counts it) when the queue is full.
    pub fn record(&self, request: EventRequest) {
        if self.tx.try_send(request).is_err() {
            self.dropped
                .get_or_create(&DropLabels {
                    reason: Dropped::QueueFull.label(),
                })
                .inc();
        }
    }
}

/// Writes the queued events until shutdown.
pub async fn write_events(
    client: Client,
    mut queue: EventQueue,
    limits: EventLimits,
    instance: String,
    flush_every: Duration,
    shutdown: ShutdownSignal,
) {
    let mut aggregator = EventAggregator::new(limits, &instance, Instant::now());
    let mut flush = tokio::time::interval(flush_every.max(Duration::from_millis(10)));
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        let writes = tokio::select! {
            _ = &mut stop => return,
            request = queue.rx.recv() => match request {
                None => return,
                Some(request) => match aggregator.observe(request, Instant::now(), chrono::Utc::now()) {
                    Ok(write) => write.into_iter().collect(),
                    Err(dropped) => {
                        queue.dropped.get_or_create(&DropLabels { reason: dropped.label() }).inc();
                        Vec::new()
                    }
                },
            },
            _ = flush.tick() => aggregator.flush(Instant::now()),
        };
        for write in writes {
            if let Err(error) = apply(&client, write).await {
                tracing::debug!(%error, "cannot write an event");
                queue
                    .dropped
                    .get_or_create(&DropLabels {
                        reason: Dropped::Failed.label(),
                    })
                    .inc();
            }
        }
    }
}

async fn apply(client: &Client, write: EventWrite) -> Result<(), kube::Error> {
    match write {
        EventWrite::Create(event) => {
            let namespace = event.metadata.namespace.clone().unwrap_or_default();
            Api::<Event>::namespaced(client.clone(), &namespace)
                .create(&PostParams::default(), &event)
                .await
                .map(drop)
        }
        EventWrite::Series {
            namespace,
            name,
            count,
            last_observed,
        } => {
            let series = EventSeries {
                count,
                last_observed_time: MicroTime(to_jiff(last_observed)),
            };
            Api::<Event>::namespaced(client.clone(), &namespace)
                .patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "series": series })),
                )
                .await
                .map(drop)
        }
    }
}

/// Turns admission outcomes into `PolicyViolation` events until the channel closes.
pub async fn record_violations(
    mut outcomes: tokio::sync::mpsc::Receiver<ReviewOutcomes>,
    recorder: EventRecorder,
    audit: bool,
) {
    while let Some(batch) = outcomes.recv().await {
        for event in violation_events(&batch, audit) {
            recorder.record(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bylaw_runtime::admission::{GroupVersionKind, Operation, Phase, RuleOutcome, RuleType};
    use bylaw_runtime::results::ResourceRef;
    use std::time::SystemTime;

    fn wall(secs: i64) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn request(note: &str) -> EventRequest {
        EventRequest {
            regarding: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some("Web_1".into()),
                namespace: Some("shop".into()),
                ..ObjectReference::default()
            },
            related: None,
            event_type: EventType::Warning,
            reason: "PolicyViolation".into(),
            action: "Resource Passed".into(),
            note: note.into(),
        }
    }

    #[test]
    fn repeats_become_one_series_update_per_flush() {
        let start = Instant::now();
        let mut aggregator = EventAggregator::new(EventLimits::default(), "bylaw-0", start);
        let Some(EventWrite::Create(event)) =
            aggregator.observe(request("x"), start, wall(0)).unwrap()
        else {
            panic!("the first occurrence is created")
        };
        let name = event.metadata.name.clone().unwrap();
        assert!(name.starts_with("web-1."), "{name}");
        assert_eq!(event.metadata.namespace.as_deref(), Some("shop"));
        assert_eq!(event.reporting_controller.as_deref(), Some("bylaw"));
        assert_eq!(event.reporting_instance.as_deref(), Some("bylaw-0"));
        assert_eq!(event.type_.as_deref(), Some("Warning"));
        for i in 1..=50 {
            let at = start + Duration::from_secs(i);
            assert_eq!(
                aggregator
                    .observe(request("x"), at, wall(i as i64))
                    .unwrap(),
                None
            );
        }
        // Another note is another event.
        assert!(matches!(
            aggregator.observe(request("y"), start, wall(0)),
            Ok(Some(EventWrite::Create(_)))
        ));
        let writes = aggregator.flush(start + Duration::from_secs(60));
        assert_eq!(
            writes,
            [EventWrite::Series {
                namespace: "shop".into(),
                name: name.clone(),
                count: 51,
                last_observed: wall(50),
            }]
        );
        assert!(
            aggregator.flush(start + Duration::from_secs(90)).is_empty(),
            "nothing moved"
        );

        // Six quiet minutes close the series: the next occurrence is a new event.
        let later = start + Duration::from_secs(50 + 6 * 60 + 1);
        assert!(aggregator.flush(later).is_empty());
        assert!(matches!(
            aggregator.observe(request("x"), later, wall(500)),
            Ok(Some(EventWrite::Create(_)))
        ));
    }

    #[test]
    fn new_events_are_rate_limited() {
        let start = Instant::now();
        let limits = EventLimits {
            burst: 3,
            per_second: 1.0,
            max_series: 100,
        };
        let mut aggregator = EventAggregator::new(limits, "bylaw-0", start);
        let results: Vec<bool> = (0..5)
            .map(|i| {
                aggregator
                    .observe(request(&format!("n{i}")), start, wall(0))
                    .is_ok()
            })
            .collect();
        assert_eq!(results, [true, true, true, false, false]);
        assert_eq!(
            aggregator.observe(request("late"), start, wall(0)),
            Err(Dropped::RateLimited)
        );
        // A second later one more is allowed.
        let later = start + Duration::from_secs(1);
        assert!(aggregator.observe(request("later"), later, wall(1)).is_ok());
        assert!(aggregator
            .observe(request("later2"), later, wall(1))
            .is_err());
    }

    #[test]
    fn the_number_of_series_is_bounded_and_notes_are_cut() {
        let start = Instant::now();
        let limits = EventLimits {
            burst: 1000,
            per_second: 1.0,
            max_series: 10,
        };
        let mut aggregator = EventAggregator::new(limits, "i", start);
        for i in 0..50 {
            aggregator
                .observe(
                    request(&format!("n{i}")),
                    start + Duration::from_millis(i),
                    wall(0),
                )
                .unwrap();
        }
        assert_eq!(aggregator.series.len(), 10);
        let long = "é".repeat(1000);
        let Ok(Some(EventWrite::Create(event))) =
            aggregator.observe(request(&long), start, wall(0))
        else {
            panic!("created")
        };
        let note = event.note.unwrap();
        assert!(
            note.len() <= MAX_NOTE_BYTES && note.ends_with("..."),
            "{}",
            note.len()
        );
        assert_eq!(event_name_prefix("-Team:App/x-"), "a-team-app-x-z");
    }

    fn outcomes(allowed: bool, results: &[(&str, RuleResult, bool)]) -> ReviewOutcomes {
        ReviewOutcomes {
            phase: Phase::Validate,
            request_uid: "u".into(),
            resource: ResourceRef {
                kind: GroupVersionKind {
                    group: String::new(),
                    version: "v1".into(),
                    kind: "Pod".into(),
                },
                namespace: Some("shop".into()),
                name: "web".into(),
                uid: Some("pod-uid".into()),
            },
            operation: Operation::Create,
            dry_run: false,
            allowed,
            at: SystemTime::UNIX_EPOCH,
            outcomes: results
                .iter()
                .map(|(policy, result, enforce)| RuleOutcome {
                    policy: (*policy).into(),
                    policy_namespace: None,
                    rule: "check".into(),
                    rule_type: RuleType::Validate,
                    result: *result,
                    message: "label team is required".into(),
                    enforce: *enforce,
                    background: true,
                    duration: Duration::ZERO,
                })
                .collect(),
        }
    }

    #[test]
    fn denials_raise_violations_on_the_policy_and_the_resource() {
        let batch = outcomes(
            false,
            &[
                ("require-team", RuleResult::Fail, true),
                ("passing", RuleResult::Pass, true),
            ],
        );
        let events = violation_events(&batch, false);
        assert_eq!(events.len(), 2);
        let on_policy = &events[0];
        assert_eq!(on_policy.regarding.kind.as_deref(), Some("ClusterPolicy"));
        assert_eq!(on_policy.regarding.name.as_deref(), Some("require-team"));
        assert_eq!(
            on_policy.related.as_ref().unwrap().uid.as_deref(),
            Some("pod-uid")
        );
        assert_eq!(on_policy.action, "Resource Blocked");
        assert_eq!(
            on_policy.note,
            "Pod shop/web: [check] fail (blocked); label team is required"
        );
        let on_resource = &events[1];
        assert_eq!(on_resource.regarding.kind.as_deref(), Some("Pod"));
        assert_eq!(on_resource.regarding.namespace.as_deref(), Some("shop"));
        assert_eq!(
            on_resource.note,
            "policy require-team/check fail: label team is required"
        );
        assert_eq!(on_resource.reason, "PolicyViolation");
    }

    #[test]
    fn audit_failures_raise_violations_unless_turned_off() {
        let batch = outcomes(true, &[("audit-team", RuleResult::Fail, false)]);
        let events = violation_events(&batch, true);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].action, "Resource Passed");
        assert!(!events[0].note.contains("blocked"));
        assert!(violation_events(&batch, false).is_empty());

        let mut dry = outcomes(false, &[("require-team", RuleResult::Fail, true)]);
        dry.dry_run = true;
        assert!(
            violation_events(&dry, true).is_empty(),
            "dry runs raise nothing"
        );
        let mut unnamed = outcomes(false, &[("require-team", RuleResult::Fail, true)]);
        unnamed.resource.name.clear();
        assert!(
            violation_events(&unnamed, true).is_empty(),
            "generateName: no name yet"
        );
    }
}
