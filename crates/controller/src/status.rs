//! Policy status, in Kyverno's shape: what it should be (pure) and the writer that patches it.
//!
//! `status.conditions` holds exactly one condition of type `Ready`: `True`/`Succeeded` when the
//! policy is served, `False` with reason `Failed` (it does not compile; the message starts with
//! the field path) or `Unsupported` (a rule uses what bylaw does not evaluate yet). Besides it:
//! `ready`, `rulecount` (the policy's own rules by type, autogen rules not counted, as Kyverno
//! counts), `autogen.rules` (the rules autogen added) and, beyond Kyverno,
//! `evaluation.averageMicroseconds` (the measured admission cost).
//!
//! The `policies.kyverno.io` kinds (ValidatingPolicy, NamespacedValidatingPolicy) get Kyverno's
//! shape for them: the same `Ready` condition under `conditionStatus` (with `ready` and, when
//! not ready, `message`), `autogen` and `generated: false`, plus `evaluation`.
//!
//! The writer patches the status subresource only when what bylaw owns differs from what the
//! API server holds, only while this replica is the leader, and raises a `PolicyError` event
//! when a policy turns not Ready.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bylaw_runtime::metrics::{Metrics, PolicyCost};
use bylaw_runtime::policy_cache::{Compiled, PolicyError, Rejection};
use bylaw_runtime::policy_index::{IndexedObject, ObjectKey, PolicyIndex, PolicyKind};
use bylaw_runtime::ShutdownSignal;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;
use kube::Client;
use serde_json::{json, Map, Value};
use tokio::sync::watch;

use crate::events::{EventRecorder, EventRequest, EventType};
use crate::leader::Leadership;

/// The status keys bylaw writes; other keys of `status` are left alone.
const OWNED_KEYS: [&str; 5] = ["ready", "conditions", "rulecount", "autogen", "evaluation"];
/// The status keys bylaw writes on the `policies.kyverno.io` kinds.
const CEL_OWNED_KEYS: [&str; 4] = ["conditionStatus", "autogen", "generated", "evaluation"];

/// Reason of a Ready condition that is `True`.
pub const REASON_SUCCEEDED: &str = "Succeeded";
/// Reason of a policy that does not compile (Kyverno's `Failed`).
pub const REASON_FAILED: &str = "Failed";
/// Reason of a policy with rules bylaw does not evaluate yet.
pub const REASON_UNSUPPORTED: &str = "Unsupported";

/// A measured cost moves the written one only when it changed by more than this fraction, so
/// the status is not rewritten every minute under load.
const COST_TOLERANCE: f64 = 0.25;

/// What the status of one policy should hold, given what the API server holds now
/// (`current`, for the condition's transition time and the written cost).
pub fn desired_status(
    object: &IndexedObject,
    cost_micros: Option<f64>,
    current: Option<&Value>,
    now: &str,
) -> Value {
    let (ready, reason, message) = match &object.outcome {
        Ok(_) => (true, REASON_SUCCEEDED, "Ready".to_owned()),
        Err(error) => (false, reason_of(error), error.message.clone()),
    };
    let condition_status = if ready { "True" } else { "False" };
    let current_ready = current
        .and_then(|s| {
            s.get("conditions")
                .or_else(|| s.pointer("/conditionStatus/conditions"))
        })
        .and_then(Value::as_array)
        .and_then(|conditions| {
            conditions
                .iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
        });
    let transition = match current_ready {
        Some(c) if c.get("status").and_then(Value::as_str) == Some(condition_status) => c
            .get("lastTransitionTime")
            .and_then(Value::as_str)
            .unwrap_or(now),
        _ => now,
    };
    let mut condition = Map::new();
    condition.insert("type".into(), json!("Ready"));
    condition.insert("status".into(), json!(condition_status));
    condition.insert("reason".into(), json!(reason));
    condition.insert("message".into(), json!(message));
    condition.insert("lastTransitionTime".into(), json!(transition));
    if let Some(generation) = object.meta.generation {
        condition.insert("observedGeneration".into(), json!(generation));
    }

    let mut status = Map::new();
    status.insert("ready".into(), json!(ready));
    status.insert("conditions".into(), json!([Value::Object(condition)]));
    status.insert("rulecount".into(), rule_count(object.source()));
    let autogen: Vec<Value> = match &object.outcome {
        Ok(Compiled::Policy(policy)) => policy
            .rules
            .iter()
            .filter(|rule| rule.autogen)
            .map(|rule| rule.source.clone())
            .collect(),
        _ => Vec::new(),
    };
    status.insert(
        "autogen".into(),
        if autogen.is_empty() {
            json!({})
        } else {
            json!({ "rules": autogen })
        },
    );
    let written = current
        .and_then(|s| s.pointer("/evaluation/averageMicroseconds"))
        .and_then(Value::as_i64);
    if let Some(micros) = evaluation_micros(written, cost_micros.filter(|_| ready)) {
        status.insert(
            "evaluation".into(),
            json!({ "averageMicroseconds": micros }),
        );
    }
    Value::Object(status)
}

/// What the status of a policy of `kind` should hold: [`desired_status`], rearranged into
/// Kyverno's `conditionStatus` shape for the `policies.kyverno.io` kinds.
pub fn desired_status_of(
    kind: PolicyKind,
    object: &IndexedObject,
    cost_micros: Option<f64>,
    current: Option<&Value>,
    now: &str,
) -> Value {
    let mut classic = desired_status(object, cost_micros, current, now);
    if !kind.is_cel_policy() {
        return classic;
    }
    let ready = classic.get("ready").cloned().unwrap_or(Value::Bool(false));
    let conditions = classic
        .get_mut("conditions")
        .map(Value::take)
        .unwrap_or_else(|| json!([]));
    let mut condition_status = Map::new();
    condition_status.insert("ready".into(), ready.clone());
    if ready == Value::Bool(false) {
        if let Some(message) = conditions.pointer("/0/message") {
            condition_status.insert("message".into(), message.clone());
        }
    }
    condition_status.insert("conditions".into(), conditions);
    let mut status = Map::new();
    status.insert("conditionStatus".into(), Value::Object(condition_status));
    status.insert("autogen".into(), json!({}));
    status.insert("generated".into(), json!(false));
    if let Some(evaluation) = classic.get_mut("evaluation").map(Value::take) {
        status.insert("evaluation".into(), evaluation);
    }
    Value::Object(status)
}

/// Where the Ready condition's transition time sits in a status of `kind`.
fn transition_pointer(kind: PolicyKind) -> &'static str {
    if kind.is_cel_policy() {
        "/conditionStatus/conditions/0/lastTransitionTime"
    } else {
        "/conditions/0/lastTransitionTime"
    }
}

fn reason_of(error: &PolicyError) -> &'static str {
    match error.rejection {
        Rejection::Unsupported => REASON_UNSUPPORTED,
        Rejection::Invalid | Rejection::Duplicate | Rejection::Unreadable => REASON_FAILED,
    }
}

/// The cost to write: the measured one when it moved enough, else what is written.
fn evaluation_micros(written: Option<i64>, measured: Option<f64>) -> Option<i64> {
    let measured = measured.map(|m| m.max(0.0).round() as i64);
    match (written, measured) {
        (Some(w), Some(m)) if ((m - w).abs() as f64) <= (w as f64) * COST_TOLERANCE => Some(w),
        (_, Some(m)) => Some(m),
        (w, None) => w,
    }
}

/// Kyverno's `rulecount`: the policy's own rules by type (autogen rules are not counted).
fn rule_count(source: &Value) -> Value {
    let rules = source
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let count = |field: &str| {
        rules
            .iter()
            .filter(|rule| rule.get(field).is_some_and(|v| !v.is_null()))
            .count()
    };
    json!({
        "validate": count("validate"),
        "generate": count("generate"),
        "mutate": count("mutate"),
        "verifyimages": count("verifyImages"),
    })
}

/// The JSON merge patch (RFC 7386) that turns the owned part of `current` into `desired`;
/// `None` when they are equal, so nothing is written.
pub fn status_patch(current: Option<&Value>, desired: &Value) -> Option<Value> {
    status_patch_of(PolicyKind::ClusterPolicy, current, desired)
}

/// [`status_patch`] for a policy of `kind`, which decides the keys bylaw owns.
pub fn status_patch_of(
    kind: PolicyKind,
    current: Option<&Value>,
    desired: &Value,
) -> Option<Value> {
    let owned_keys: &[&str] = if kind.is_cel_policy() {
        &CEL_OWNED_KEYS
    } else {
        &OWNED_KEYS
    };
    let owned: Map<String, Value> = current
        .and_then(Value::as_object)
        .map(|status| {
            status
                .iter()
                .filter(|(key, _)| owned_keys.contains(&key.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    merge_diff(&Value::Object(owned), desired)
}

/// RFC 7386 diff: a patch that, merged into `from`, gives `to`; `None` when equal.
fn merge_diff(from: &Value, to: &Value) -> Option<Value> {
    if from == to {
        return None;
    }
    match (from, to) {
        (Value::Object(from), Value::Object(to)) => {
            let mut patch = Map::new();
            for key in from.keys() {
                if !to.contains_key(key) {
                    patch.insert(key.clone(), Value::Null);
                }
            }
            for (key, value) in to {
                match from.get(key) {
                    Some(old) => {
                        if let Some(diff) = merge_diff(old, value) {
                            patch.insert(key.clone(), diff);
                        }
                    }
                    None => {
                        patch.insert(key.clone(), value.clone());
                    }
                }
            }
            Some(Value::Object(patch))
        }
        _ => Some(to.clone()),
    }
}

/// Mean admission cost of each policy over the last sampling interval, from the cumulative
/// counters the webhook records. A policy not evaluated in an interval keeps its last mean.
#[derive(Debug, Default)]
pub struct CostSampler {
    last: HashMap<ObjectKey, PolicyCost>,
    means: HashMap<ObjectKey, f64>,
}

impl CostSampler {
    /// Takes a sample for the policies in `keys`; policies not listed are forgotten.
    pub fn sample<'a>(&mut self, metrics: &Metrics, keys: impl IntoIterator<Item = &'a ObjectKey>) {
        let mut last = HashMap::new();
        for key in keys {
            if key.kind == PolicyKind::PolicyException {
                continue;
            }
            let namespace = (!key.namespace.is_empty()).then_some(key.namespace.as_str());
            let now = metrics.policy_cost(&key.name, namespace);
            let before = self.last.get(key).copied().unwrap_or_default();
            // Counters restart at zero when a policy is deleted and created again.
            let (evaluations, seconds) = if now.evaluations >= before.evaluations {
                (
                    now.evaluations - before.evaluations,
                    now.seconds - before.seconds,
                )
            } else {
                (now.evaluations, now.seconds)
            };
            if evaluations > 0 {
                self.means
                    .insert(key.clone(), seconds.max(0.0) * 1e6 / evaluations as f64);
            }
            last.insert(key.clone(), now);
        }
        self.means.retain(|key, _| last.contains_key(key));
        self.last = last;
    }

    /// The mean in microseconds of the last interval in which the policy was evaluated.
    pub fn mean_micros(&self, key: &ObjectKey) -> Option<f64> {
        self.means.get(key).copied()
    }
}

/// The current time as Kubernetes writes it (RFC 3339, seconds).
fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Where the writer patches each kind.
fn api_for(client: &Client, key: &ObjectKey) -> Option<Api<DynamicObject>> {
    let resource = match key.kind {
        PolicyKind::ClusterPolicy => ApiResource::erase::<bylaw_api::ClusterPolicy>(&()),
        PolicyKind::Policy => ApiResource::erase::<bylaw_api::Policy>(&()),
        PolicyKind::ValidatingPolicy => ApiResource::erase::<bylaw_api::ValidatingPolicy>(&()),
        PolicyKind::NamespacedValidatingPolicy => {
            ApiResource::erase::<bylaw_api::NamespacedValidatingPolicy>(&())
        }
        PolicyKind::PolicyException => return None,
    };
    Some(if key.namespace.is_empty() {
        Api::all_with(client.clone(), &resource)
    } else {
        Api::namespaced_with(client.clone(), &key.namespace, &resource)
    })
}

/// Keeps every policy's status in step with the index while this replica leads.
pub struct StatusWriter {
    client: Client,
    index: Arc<Mutex<PolicyIndex>>,
    changes: watch::Receiver<u64>,
    leadership: Leadership,
    metrics: Metrics,
    events: EventRecorder,
    cost_interval: Duration,
    /// Per object: the resourceVersion it had and the status written on top of it, so a write
    /// is not repeated while the watch has not delivered its result yet.
    written: HashMap<ObjectKey, (String, Value)>,
    costs: CostSampler,
}

impl StatusWriter {
    /// A writer for the objects of `index`, woken by `changes`.
    pub fn new(
        client: Client,
        index: Arc<Mutex<PolicyIndex>>,
        changes: watch::Receiver<u64>,
        leadership: Leadership,
        metrics: Metrics,
        events: EventRecorder,
    ) -> Self {
        StatusWriter {
            client,
            index,
            changes,
            leadership,
            metrics,
            events,
            cost_interval: Duration::from_secs(60),
            written: HashMap::new(),
            costs: CostSampler::default(),
        }
    }

    /// How often the evaluation cost is sampled (default one minute).
    #[must_use]
    pub fn with_cost_interval(mut self, interval: Duration) -> Self {
        self.cost_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// Writes on every index change, cost sample and leadership gain, until shutdown.
    pub async fn run(mut self, shutdown: ShutdownSignal) {
        let stop = shutdown.wait();
        tokio::pin!(stop);
        let mut costs = tokio::time::interval(self.cost_interval);
        costs.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut leadership = self.leadership.clone();
        loop {
            tokio::select! {
                _ = &mut stop => return,
                changed = self.changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                _ = costs.tick() => {
                    let keys: Vec<ObjectKey> = {
                        let index = self.index.lock().unwrap_or_else(PoisonError::into_inner);
                        index.iter().map(|(key, _)| key.clone()).collect()
                    };
                    self.costs.sample(&self.metrics, &keys);
                }
                () = leadership.acquired(), if !leadership.is_leader() => {
                    // Another replica may have written meanwhile: trust the watch, not memory.
                    self.written.clear();
                }
            }
            if self.leadership.is_leader() {
                self.write_all().await;
            }
        }
    }

    /// One pass: patches every policy whose status differs from what it should be.
    pub async fn write_all(&mut self) {
        let now = now_rfc3339();
        let pending: Vec<(ObjectKey, String, Value, Value, Option<String>)> = {
            let index = self.index.lock().unwrap_or_else(PoisonError::into_inner);
            index
                .iter()
                .filter(|(key, _)| key.kind != PolicyKind::PolicyException)
                .filter_map(|(key, object)| {
                    let desired = desired_status_of(
                        key.kind,
                        object,
                        self.costs.mean_micros(key),
                        object.meta.status.as_ref(),
                        &now,
                    );
                    let patch = status_patch_of(key.kind, object.meta.status.as_ref(), &desired)?;
                    let version = object.meta.resource_version.clone();
                    if self.written.get(key) == Some(&(version.clone(), desired.clone())) {
                        return None;
                    }
                    let failure = object.outcome.as_ref().err().map(|e| e.message.clone());
                    Some((key.clone(), version, desired, patch, failure))
                })
                .collect()
        };
        let live: std::collections::HashSet<ObjectKey> = {
            let index = self.index.lock().unwrap_or_else(PoisonError::into_inner);
            index.iter().map(|(key, _)| key.clone()).collect()
        };
        self.written.retain(|key, _| live.contains(key));
        for (key, version, desired, patch, failure) in pending {
            if !self.leadership.is_leader() {
                return;
            }
            let Some(api) = api_for(&self.client, &key) else {
                continue;
            };
            let body = json!({ "status": patch });
            match api
                .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&body))
                .await
            {
                Ok(_) => {
                    tracing::debug!(policy = %key, "status written");
                    let newly_failed = failure.is_some()
                        && desired.pointer(transition_pointer(key.kind))
                            == Some(&Value::String(now.clone()));
                    self.written.insert(key.clone(), (version, desired));
                    if let (true, Some(message)) = (newly_failed, failure) {
                        self.events
                            .record(EventRequest::policy_error(&key, &message));
                    }
                }
                Err(kube::Error::Api(status)) if status.code == 404 => {
                    tracing::debug!(policy = %key, "policy gone before its status was written");
                }
                Err(error) => {
                    tracing::warn!(policy = %key, %error, "cannot write policy status; will retry on the next change");
                }
            }
        }
    }
}

impl EventRequest {
    /// `PolicyError` on a policy that cannot be served.
    pub fn policy_error(key: &ObjectKey, message: &str) -> Self {
        EventRequest {
            regarding: crate::events::policy_reference(key, None),
            related: None,
            event_type: EventType::Warning,
            reason: "PolicyError".to_owned(),
            action: "Load".to_owned(),
            note: format!("policy {} is not served: {message}", key.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn indexed(doc: Value) -> IndexedObject {
        let mut index = PolicyIndex::new();
        index.apply(&doc);
        let (_, object) = index.iter().next().unwrap();
        object.clone()
    }

    fn pod_policy() -> Value {
        json!({
            "apiVersion": "kyverno.io/v1",
            "kind": "ClusterPolicy",
            "metadata": {"name": "require-team", "generation": 3},
            "spec": {
                "rules": [
                    {
                        "name": "check-team",
                        "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                        "validate": {"message": "team", "pattern": {"metadata": {"labels": {"team": "?*"}}}}
                    },
                    {
                        "name": "add-owner",
                        "match": {"any": [{"resources": {"kinds": ["ConfigMap"]}}]},
                        "mutate": {"patchStrategicMerge": {"metadata": {"labels": {"+(owner)": "none"}}}}
                    }
                ]
            }
        })
    }

    const NOW: &str = "2025-01-01T00:00:00Z";

    #[test]
    fn a_served_policy_is_ready_with_kyvernos_counts_and_autogen_rules() {
        let status = desired_status(&indexed(pod_policy()), None, None, NOW);
        assert_eq!(status["ready"], true);
        assert_eq!(
            status["conditions"],
            json!([{
                "type": "Ready",
                "status": "True",
                "reason": "Succeeded",
                "message": "Ready",
                "lastTransitionTime": NOW,
                "observedGeneration": 3
            }])
        );
        assert_eq!(
            status["rulecount"],
            json!({"validate": 1, "generate": 0, "mutate": 1, "verifyimages": 0})
        );
        let autogen: Vec<&str> = status["autogen"]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            autogen,
            ["autogen-check-team", "autogen-cronjob-check-team"]
        );
        assert!(status.get("evaluation").is_none());
    }

    #[test]
    fn an_invalid_policy_names_the_field_and_an_unsupported_one_the_rule() {
        let mut invalid = pod_policy();
        invalid["spec"]["rules"][0]["validate"]["pattern"] = json!(null);
        let status = desired_status(&indexed(invalid), Some(12.0), None, NOW);
        assert_eq!(status["ready"], false);
        let condition = &status["conditions"][0];
        assert_eq!(condition["status"], "False");
        assert_eq!(condition["reason"], "Failed");
        assert!(
            condition["message"]
                .as_str()
                .unwrap()
                .starts_with("spec.rules[0].validate"),
            "{condition}"
        );
        assert_eq!(status["autogen"], json!({}));
        assert!(
            status.get("evaluation").is_none(),
            "no cost for a policy never served"
        );

        let mut unsupported = pod_policy();
        unsupported["spec"]["rules"][1] = json!({
            "name": "signed",
            "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
            "verifyImages": [{"imageReferences": ["*"]}]
        });
        let status = desired_status(&indexed(unsupported), None, None, NOW);
        let condition = &status["conditions"][0];
        assert_eq!(condition["reason"], "Unsupported");
        assert_eq!(condition["message"], "rule signed uses verifyImages");
        assert_eq!(status["rulecount"]["verifyimages"], 1);
    }

    #[test]
    fn nothing_is_written_when_nothing_changed() {
        let object = indexed(pod_policy());
        let first = desired_status(&object, None, None, NOW);
        let patch = status_patch(None, &first).unwrap();
        assert_eq!(patch, first, "a new status is written whole");
        // Later, with other status keys around (Kyverno's validatingadmissionpolicy): equal.
        let mut current = first.clone();
        current["validatingadmissionpolicy"] = json!({"generated": false, "message": ""});
        let again = desired_status(&object, None, Some(&current), "2025-02-02T00:00:00Z");
        assert_eq!(status_patch(Some(&current), &again), None);
        // The transition time is kept while the condition's status stays.
        assert_eq!(again["conditions"][0]["lastTransitionTime"], NOW);
    }

    #[test]
    fn patches_remove_what_is_gone_and_leave_the_rest() {
        let current = json!({
            "ready": true,
            "autogen": {"rules": [{"name": "autogen-x"}]},
            "rulecount": {"validate": 1, "generate": 0, "mutate": 0, "verifyimages": 0},
            "validatingadmissionpolicy": {"generated": false, "message": ""}
        });
        let desired = json!({
            "ready": false,
            "autogen": {},
            "rulecount": {"validate": 1, "generate": 0, "mutate": 0, "verifyimages": 0},
            "conditions": []
        });
        assert_eq!(
            status_patch(Some(&current), &desired).unwrap(),
            json!({"ready": false, "autogen": {"rules": null}, "conditions": []})
        );
    }

    #[test]
    fn the_cost_is_rewritten_only_when_it_moves_by_a_quarter() {
        assert_eq!(evaluation_micros(None, Some(41.6)), Some(42));
        assert_eq!(evaluation_micros(Some(40), Some(49.0)), Some(40));
        assert_eq!(evaluation_micros(Some(40), Some(31.0)), Some(40));
        assert_eq!(evaluation_micros(Some(40), Some(51.0)), Some(51));
        assert_eq!(evaluation_micros(Some(40), None), Some(40));
        assert_eq!(evaluation_micros(None, None), None);
    }

    #[test]
    fn the_sampler_averages_the_last_interval_and_keeps_quiet_policies() {
        use bylaw_runtime::admission::{RuleOutcome, RuleResult, RuleType};
        let metrics = Metrics::new("test");
        let key = ObjectKey {
            kind: PolicyKind::ClusterPolicy,
            namespace: String::new(),
            name: "p".into(),
        };
        let evaluate = |micros: u64| {
            metrics.record_policy_evaluations(&[RuleOutcome {
                policy: "p".into(),
                policy_namespace: None,
                rule: "r".into(),
                rule_type: RuleType::Validate,
                result: RuleResult::Pass,
                message: String::new(),
                enforce: false,
                background: true,
                duration: Duration::from_micros(micros),
            }]);
        };
        let mut sampler = CostSampler::default();
        evaluate(100);
        evaluate(300);
        sampler.sample(&metrics, [&key]);
        let mean = sampler.mean_micros(&key).unwrap();
        assert!((mean - 200.0).abs() < 0.01, "{mean}");
        evaluate(10);
        sampler.sample(&metrics, [&key]);
        assert!((sampler.mean_micros(&key).unwrap() - 10.0).abs() < 0.01);
        sampler.sample(&metrics, [&key]);
        assert!(
            (sampler.mean_micros(&key).unwrap() - 10.0).abs() < 0.01,
            "kept"
        );
        sampler.sample(&metrics, []);
        assert_eq!(sampler.mean_micros(&key), None, "forgotten once gone");
    }
}
