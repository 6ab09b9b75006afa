//! The engine adapter: answers admission reviews with the policies in a [`PolicyCache`], the way
//! Kyverno's admission webhook does.
//!
//! Validate phase, per review:
//! * a policy takes part when it has validate rules and `spec.admission` is not false;
//! * it is an *enforce policy* when its action, a rule's `failureAction` or any override says
//!   `Enforce`; otherwise an *audit policy*;
//! * the request is denied when a failing rule of an enforce policy resolves to `Enforce` for the
//!   request's namespace ([`effective_action`]), or when a rule of an enforce policy errored and
//!   one of the enforce policies has `failurePolicy: Fail`. The message lists every non-passing
//!   rule of the enforce policies, per policy, as Kyverno does;
//! * otherwise it is admitted, with a warning for every non-passing rule of the enforce policies
//!   and of the audit policies with `emitWarning: true`;
//! * on UPDATE, a failing `Enforce` rule with `allowExistingViolations` (the default) that also
//!   fails on the old object becomes a skip: existing violations do not block unrelated edits.
//!
//! Mutate phase: the mutate rules of every admission policy run in order, each policy seeing the
//! object as the previous ones left it, and the answer carries one JSON patch from the request's
//! object to the result. A policy whose rules fail or error contributes no change; it denies the
//! request when it fails an Enforce policy, or errors while a policy seen so far has
//! `failurePolicy: Fail` (Kyverno's rule). Non-passing rules come back as warnings.
//!
//! Every rule outcome is returned in [`Verdict::results`]; the server turns them into metrics and
//! sends them to the results channel.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bylaw_engine::compile::{CompiledPolicy, CompiledRule, FailurePolicy, RuleBody, ValidateCheck};
use bylaw_engine::context::request_context;
use bylaw_engine::engine::{
    effective_action, mutate_policy, validate_with_context_mut, PolicySet, RequestMemo,
};
use bylaw_engine::request::{self as engine_request, Request};
use bylaw_engine::response::{FailureAction, PolicyResponse, RuleResponse, RuleStatus};
use serde_json::{Map, Value};

use crate::admission::{
    AdmissionEvaluator, EvalError, InlineEvaluation, Operation, Phase, ReviewRequest, RuleOutcome,
    RuleResult, RuleType, Verdict,
};
use crate::context_scope::{ContextBudget, PolicyScope, DEFAULT_MAX_CONTEXT_BYTES};
use crate::policy_cache::PolicyCache;
use crate::roles::UserRoles;
use crate::sources::{ContextSource, NAMESPACE_NAME_LABEL};

/// Message of a rule skipped because the old object violated it too (Kyverno's wording).
pub const EXISTING_VIOLATION_SKIP: &str =
    "skipping the rule evaluation as pre-existing violations are allowed";

/// Evaluates reviews against the cached policies, with context from a [`ContextSource`].
/// Each policy's lookups go through a [`PolicyScope`]: its namespace rules and the review's
/// context budget hold whatever the source.
pub struct PolicyEvaluator {
    cache: Arc<PolicyCache>,
    context: Arc<dyn ContextSource>,
    max_context_bytes: usize,
    /// The served set split by failure policy, for the set it was split from.
    split: Mutex<Option<SplitSet>>,
    /// Which parts of the served set can be evaluated on an async thread, for the set it was
    /// decided for.
    in_process: Mutex<Option<InProcess>>,
    /// Whether an inline evaluation may have left a suspicion (`InProcess::overran`) for the
    /// blocking pool to settle: without one, an evaluation on the pool takes no lock.
    suspicion_pending: AtomicBool,
}

/// For one served set: whether the policies of each phase (all of them, or those of one
/// failure policy) are evaluated without waiting on anything outside the process.
struct InProcess {
    from: Arc<PolicySet>,
    /// Indexed by [`InProcess::index`].
    phases: [bool; 6],
    /// Set when an inline evaluation ran past its budget and the blocking pool's evaluation
    /// took as long: until then every review goes to the blocking pool, so a machine too slow
    /// (or too throttled) for the budget does not pay for each review twice.
    paused_until: Option<Instant>,
    /// The budget an inline evaluation ran past, until an evaluation on the blocking pool
    /// says why. The budget is wall time, and a thread preempted for a few milliseconds in
    /// the middle of a cheap review runs past it too; pausing for that sent every review of
    /// the next second through the pool (docs/performance.md, round 13).
    overran: Option<Duration>,
}

/// How long inline evaluation stays off after one ran past its budget.
const INLINE_PAUSE: Duration = Duration::from_secs(1);

impl InProcess {
    const FILTERS: [Option<FailurePolicy>; 3] =
        [None, Some(FailurePolicy::Fail), Some(FailurePolicy::Ignore)];
    const PHASES: [Phase; 2] = [Phase::Validate, Phase::Mutate];

    fn of(set: &Arc<PolicySet>) -> InProcess {
        let mut phases = [false; 6];
        for filter in Self::FILTERS {
            for phase in Self::PHASES {
                let stays = set
                    .policies
                    .iter()
                    .filter(|p| filter.is_none_or(|wanted| p.failure_policy == wanted))
                    .filter(|p| p.admission && takes_part(p, phase))
                    .all(|p| !p.rules.iter().any(rule_may_wait));
                if let Some(slot) = phases.get_mut(Self::index(phase, filter)) {
                    *slot = stays;
                }
            }
        }
        InProcess {
            from: Arc::clone(set),
            phases,
            paused_until: None,
            overran: None,
        }
    }

    fn index(phase: Phase, filter: Option<FailurePolicy>) -> usize {
        let filter = match filter {
            None => 0,
            Some(FailurePolicy::Fail) => 1,
            Some(FailurePolicy::Ignore) => 2,
        };
        let phase = match phase {
            Phase::Validate => 0,
            Phase::Mutate => 1,
        };
        filter * 2 + phase
    }

    fn stays(&self, phase: Phase, filter: Option<FailurePolicy>) -> bool {
        if self
            .paused_until
            .is_some_and(|until| Instant::now() < until)
        {
            return false;
        }
        self.phases
            .get(Self::index(phase, filter))
            .copied()
            .unwrap_or(false)
    }
}

/// Whether `policy` has rules that run in `phase`.
fn takes_part(policy: &CompiledPolicy, phase: Phase) -> bool {
    match phase {
        Phase::Validate => policy.has_validate(),
        Phase::Mutate => policy.has_mutate(),
    }
}

/// Whether `phase` has anything to evaluate for `review` in `set`: a policy of that phase
/// taking part in admission, and for mutation an object to change (deletions carry none).
fn needs_evaluation(set: &PolicySet, phase: Phase, review: &ReviewRequest) -> bool {
    if phase == Phase::Mutate && review.operation == Operation::Delete {
        return false;
    }
    set.policies
        .iter()
        .any(|p| p.admission && takes_part(p, phase))
}

/// Whether evaluating `rule` may wait on something outside the process: a context entry that
/// reads the cluster, a service or a registry; CEL (its `namespaceObject` and `resource.*`
/// functions ask the cluster); image verification; generation; mutation of existing
/// resources. Such rules run on the blocking pool, never on an async thread.
fn rule_may_wait(rule: &CompiledRule) -> bool {
    let body = match &rule.body {
        RuleBody::Validate(validate) => check_may_wait(&validate.check),
        RuleBody::Mutate(mutate) => mutate.get("targets").is_some_and(|t| !t.is_null()),
        RuleBody::Generate(_) | RuleBody::VerifyImages(_) => true,
    };
    body || rule.context.iter().any(entry_reaches_out) || nested_context_reaches_out(&rule.source)
}

fn check_may_wait(check: &ValidateCheck) -> bool {
    match check {
        ValidateCheck::Cel(_) => true,
        ValidateCheck::Foreach(entries) => entries
            .iter()
            .any(|e| e.context.iter().any(entry_reaches_out) || check_may_wait(&e.check)),
        _ => false,
    }
}

/// Any `context` list in a rule as written (foreach entries at any depth, in validate and
/// mutate) with an entry that reaches out. A pattern field that happens to be called
/// `context` only makes the answer more cautious.
fn nested_context_reaches_out(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.iter().any(|(key, value)| {
            (key == "context"
                && value
                    .as_array()
                    .is_some_and(|entries| entries.iter().any(entry_reaches_out)))
                || nested_context_reaches_out(value)
        }),
        Value::Array(items) => items.iter().any(nested_context_reaches_out),
        _ => false,
    }
}

/// A context entry other than a `variable`: it asks the context source, which may wait.
fn entry_reaches_out(entry: &Value) -> bool {
    ["configMap", "apiCall", "globalReference", "imageRegistry"]
        .into_iter()
        .any(|key| entry.get(key).is_some_and(|v| !v.is_null()))
}

/// A policy set split by `failurePolicy` (Fail, Ignore); exceptions apply to both halves.
struct SplitSet {
    from: Arc<PolicySet>,
    fail: Arc<PolicySet>,
    ignore: Arc<PolicySet>,
}

impl SplitSet {
    fn of(set: &Arc<PolicySet>) -> SplitSet {
        let half = |wanted: FailurePolicy| {
            Arc::new(PolicySet {
                policies: set
                    .policies
                    .iter()
                    .filter(|p| p.failure_policy == wanted)
                    .cloned()
                    .collect(),
                exceptions: set.exceptions.clone(),
            })
        };
        SplitSet {
            from: Arc::clone(set),
            fail: half(FailurePolicy::Fail),
            ignore: half(FailurePolicy::Ignore),
        }
    }
}

impl std::fmt::Debug for PolicyEvaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyEvaluator").finish_non_exhaustive()
    }
}

impl PolicyEvaluator {
    /// An evaluator over `cache`; not ready until the cache has loaded.
    pub fn new(cache: Arc<PolicyCache>, context: Arc<dyn ContextSource>) -> Self {
        PolicyEvaluator {
            cache,
            context,
            max_context_bytes: DEFAULT_MAX_CONTEXT_BYTES,
            split: Mutex::new(None),
            in_process: Mutex::new(None),
            suspicion_pending: AtomicBool::new(false),
        }
    }

    /// Bounds the data the lookups of one review may return together.
    #[must_use]
    pub fn with_max_context_bytes(mut self, bytes: usize) -> Self {
        self.max_context_bytes = bytes;
        self
    }

    fn scope<'a>(
        &'a self,
        policy: &'a CompiledPolicy,
        budget: &'a ContextBudget,
    ) -> PolicyScope<'a> {
        PolicyScope::new(self.context.as_ref(), policy.namespace.as_deref(), budget)
    }

    /// The cache this evaluator reads.
    pub fn cache(&self) -> &Arc<PolicyCache> {
        &self.cache
    }

    /// Evaluates `review` for `phase` against `set`.
    fn evaluate_objects(
        &self,
        phase: Phase,
        set: &PolicySet,
        review: &ReviewRequest,
        objects: ReviewObjects<'_>,
        deadline: Instant,
    ) -> Result<Verdict, EvalError> {
        if !needs_evaluation(set, phase, review) {
            return Ok(Verdict::allow());
        }
        let request = self.engine_request(review, objects)?;
        self.evaluate_request(phase, set, review, &request, deadline)
    }

    fn evaluate_request(
        &self,
        phase: Phase,
        set: &PolicySet,
        review: &ReviewRequest,
        request: &Request,
        deadline: Instant,
    ) -> Result<Verdict, EvalError> {
        // The engine checks this inside its long loops, so work nobody waits for ends soon
        // after the deadline and its thread (and concurrency slot) is freed.
        let _deadline = bylaw_engine::deadline::scope(deadline);
        match phase {
            Phase::Mutate => self.mutate(set, review, request, deadline),
            Phase::Validate => self.validate(set, review, request, deadline),
        }
    }

    fn validate(
        &self,
        set: &PolicySet,
        review: &ReviewRequest,
        request: &Request,
        deadline: Instant,
    ) -> Result<Verdict, EvalError> {
        let unknown_namespace = self.unknown_namespace(review);
        // One context document per review, shared by every policy (the engine leaves it as it
        // found it); it reads the review's objects from the request instead of copying them.
        let mut context = set.validation_context(request);
        // Nothing the webhook answers or records shows a pass's message (reports keep none).
        let memo = RequestMemo::new(request).without_pass_messages();
        let namespace = engine_request::metadata_str(request.resource(), "namespace").to_owned();
        let mut old: Option<(Request, Value)> = None;
        let budget = ContextBudget::new(self.max_context_bytes);

        // Sized once: growing these vectors was 8 of a review's allocations.
        let mut evaluated = Vec::with_capacity(set.policies.len());
        // One clock read per policy: the end of one policy's evaluation is the start of the
        // next one's and the moment the deadline is checked (reading the clock was 1.7% of the
        // server's CPU under load with three reads per policy).
        let mut now = Instant::now();
        for policy in &set.policies {
            if !policy.admission || !policy.has_validate() {
                continue;
            }
            if now >= deadline {
                return Err(EvalError::DeadlineExceeded);
            }
            let started = now;
            let scope = self.scope(policy, &budget);
            let mut response = validate_with_context_mut(
                policy,
                request,
                context.document_mut(),
                &memo,
                &scope,
                &set.exceptions,
            );
            if request.operation == engine_request::Operation::Update
                && response.rules.iter().any(|rule| {
                    rule.status == RuleStatus::Fail && tolerates_existing(policy, &rule.name)
                })
            {
                let (old_request, old_context) = match &mut old {
                    Some(old) => old,
                    None => old.insert(old_object_request(request)),
                };
                let before = validate_with_context_mut(
                    policy,
                    old_request,
                    old_context,
                    &RequestMemo::new(old_request).without_pass_messages(),
                    &scope,
                    &set.exceptions,
                );
                allow_existing_violations(policy, &mut response, &before);
            }
            if let Some(namespace) = unknown_namespace {
                undecidable_selectors_are_errors(policy, request, namespace, &mut response, |b| {
                    matches!(b, RuleBody::Validate(_))
                });
            }
            now = Instant::now();
            evaluated.push(Evaluated {
                policy,
                enforce: policy.says_enforce(),
                response,
                elapsed: now.saturating_duration_since(started),
            });
        }
        // Results cut short by the deadline say nothing about the request.
        if now >= deadline {
            return Err(EvalError::DeadlineExceeded);
        }
        Ok(decide(evaluated, review, request, &namespace))
    }

    fn mutate(
        &self,
        set: &PolicySet,
        review: &ReviewRequest,
        request: &Request,
        deadline: Instant,
    ) -> Result<Verdict, EvalError> {
        let policies = set
            .policies
            .iter()
            .filter(|p| p.admission && p.has_mutate());
        let unknown_namespace = self.unknown_namespace(review);
        let mut context = set.context_for(request);
        let mut current = request.object.clone();
        let mut results = Vec::new();
        let mut warnings = Vec::new();
        let mut fail_closed = false;
        let budget = ContextBudget::new(self.max_context_bytes);
        for policy in policies {
            if Instant::now() >= deadline {
                return Err(EvalError::DeadlineExceeded);
            }
            fail_closed |= policy.failure_policy == FailurePolicy::Fail;
            let started = Instant::now();
            let mut undecidable = PolicyResponse {
                policy: policy.name.clone(),
                policy_namespace: policy.namespace.clone(),
                rules: Vec::new(),
            };
            if let Some(namespace) = unknown_namespace {
                undecidable_selectors_are_errors(
                    policy,
                    request,
                    namespace,
                    &mut undecidable,
                    |b| matches!(b, RuleBody::Mutate(_)),
                );
            }
            // A policy with a rule that cannot be decided changes nothing and counts as errored.
            let (response, patched) = if undecidable.rules.is_empty() {
                mutate_policy(
                    policy,
                    request,
                    &current,
                    &mut context,
                    &self.scope(policy, &budget),
                    &set.exceptions,
                )
            } else {
                (undecidable, current.clone())
            };
            if Instant::now() >= deadline {
                return Err(EvalError::DeadlineExceeded);
            }
            let share = per_rule(started.elapsed(), response.rules.len());
            let enforce = policy.validation_failure_action == FailureAction::Enforce;
            let failed = |status| response.rules.iter().any(|r| r.status == status);
            let (has_fail, has_error) = (failed(RuleStatus::Fail), failed(RuleStatus::Error));
            for rule in &response.rules {
                results.push(RuleOutcome {
                    policy: policy.name.clone(),
                    policy_namespace: policy.namespace.clone(),
                    rule: rule.name.clone(),
                    rule_type: RuleType::Mutate,
                    result: rule_result(rule.status),
                    message: rule.message.clone(),
                    enforce,
                    background: policy.background,
                    duration: share,
                });
                if reportable(rule) {
                    warnings.push(format!(
                        "policy {}.{}: {}",
                        policy.name, rule.name, rule.message
                    ));
                }
            }
            if (has_fail && enforce) || (has_error && fail_closed) {
                let rules: Vec<String> = response
                    .rules
                    .iter()
                    .filter(|rule| reportable(rule))
                    .map(|rule| format!("{}: {}", rule.name, rule.message))
                    .collect();
                return Ok(Verdict {
                    allowed: false,
                    message: Some(format!(
                        "failed to apply policy {} rules [{}]",
                        policy.name,
                        rules.join(" ")
                    )),
                    results,
                    ..Verdict::default()
                });
            }
            if has_fail || has_error {
                // An unsuccessful policy changes nothing; later policies see the object as before.
                bylaw_engine::mutate::set_request_object(&mut context, &current);
            } else {
                current = patched;
            }
        }
        if Instant::now() >= deadline {
            return Err(EvalError::DeadlineExceeded);
        }
        let operations = bylaw_engine::mutate::diff(&request.object, &current);
        let patch = if operations.is_empty() {
            None
        } else {
            let patch = serde_json::to_value(&operations)
                .and_then(serde_json::from_value::<json_patch::Patch>)
                .map_err(|e| {
                    EvalError::Internal(format!("cannot encode the mutation patch: {e}"))
                })?;
            Some(patch)
        };
        Ok(Verdict {
            allowed: true,
            message: None,
            warnings,
            patch,
            results,
        })
    }

    /// The review's namespace when its labels are unknown to the context source (a namespace
    /// not yet seen, a source without namespaces): rules that select by them cannot be decided.
    fn unknown_namespace<'r>(&self, review: &'r ReviewRequest) -> Option<&'r str> {
        match &review.namespace {
            Some(namespace) if review.kind.kind != "Namespace" && !namespace.is_empty() => self
                .context
                .namespace_labels(namespace)
                .is_none()
                .then_some(namespace.as_str()),
            _ => None,
        }
    }

    /// Builds the engine's request from the review: kind, subresource, user with the roles the
    /// context source knows, namespace labels from the context source.
    fn engine_request(
        &self,
        review: &ReviewRequest,
        objects: ReviewObjects<'_>,
    ) -> Result<Request, EvalError> {
        let (object, old_object) = objects.into_values(review);
        let present = |v: Option<Value>| v.filter(|v| !v.is_null());
        let operation = match review.operation {
            Operation::Create => engine_request::Operation::Create,
            Operation::Update => engine_request::Operation::Update,
            Operation::Delete => engine_request::Operation::Delete,
            Operation::Connect => engine_request::Operation::Connect,
        };
        let (object, old_object) = match review.operation {
            Operation::Create | Operation::Connect => (present(object), None),
            Operation::Update => (present(object), present(old_object)),
            Operation::Delete => (Some(Value::Null), present(old_object)),
        };
        let mut object = object.ok_or_else(|| {
            EvalError::InvalidRequest(format!("{} request carries no object", review.operation))
        })?;
        let mut old_object = old_object;
        if review.operation == Operation::Delete && old_object.is_none() {
            return Err(EvalError::InvalidRequest(
                "DELETE request carries no oldObject".to_owned(),
            ));
        }
        // The API server sets the namespace from the request path; keep objects consistent when
        // a client (or a hand-written review) leaves it out.
        if let Some(namespace) = &review.namespace {
            for value in std::iter::once(&mut object).chain(old_object.as_mut()) {
                set_namespace_if_missing(value, namespace)?;
            }
        }
        let namespace_labels = match &review.namespace {
            Some(namespace) if review.kind.kind != "Namespace" => {
                let mut labels = self.context.namespace_labels(namespace).unwrap_or_default();
                labels
                    .entry(NAMESPACE_NAME_LABEL.to_owned())
                    .or_insert_with(|| namespace.clone());
                Some(labels)
            }
            _ => Some(BTreeMap::new()),
        };
        let UserRoles {
            roles,
            cluster_roles,
        } = self.context.user_roles(
            &review.user_info.username,
            &review.user_info.groups,
            review.namespace.as_deref(),
        );
        Ok(Request {
            operation,
            object,
            old_object,
            kind: resource_kind(review),
            subresource: review.sub_resource.clone().unwrap_or_default(),
            user: engine_request::UserInfo {
                username: review.user_info.username.clone(),
                uid: review.user_info.uid.clone(),
                groups: review.user_info.groups.clone(),
                roles,
                cluster_roles,
            },
            namespace_labels,
            dry_run: review.dry_run,
        })
    }
}

/// Where the engine request's objects come from: copied out of a review the caller keeps, or
/// moved out of one it gave up (no copy of what can be a large object).
enum ReviewObjects<'r> {
    Copied(&'r ReviewRequest),
    Moved {
        object: Option<Value>,
        old_object: Option<Value>,
    },
}

impl ReviewObjects<'_> {
    /// `object` and `oldObject`, each only when the operation reads it.
    fn into_values(self, review: &ReviewRequest) -> (Option<Value>, Option<Value>) {
        let (wants_object, wants_old) = match review.operation {
            Operation::Create | Operation::Connect => (true, false),
            Operation::Update => (true, true),
            Operation::Delete => (false, true),
        };
        match self {
            ReviewObjects::Copied(review) => (
                if wants_object {
                    review.object.clone()
                } else {
                    None
                },
                if wants_old {
                    review.old_object.clone()
                } else {
                    None
                },
            ),
            ReviewObjects::Moved { object, old_object } => (
                object.filter(|_| wants_object),
                old_object.filter(|_| wants_old),
            ),
        }
    }

    /// Takes the objects out of `review`, leaving `None` in their place.
    fn take(review: &mut ReviewRequest) -> ReviewObjects<'static> {
        ReviewObjects::Moved {
            object: review.object.take(),
            old_object: review.old_object.take(),
        }
    }
}

/// The kind policies select a request by. For a subresource the review's `kind` is the object
/// sent (`PodExecOptions` for `pods/exec`, `Scale` for `deployments/scale`), but `Pod/exec` and
/// `Deployment/scale` name the parent resource's kind, as Kyverno resolves it; the engine builds
/// `request.kind` in the context from the object itself.
fn resource_kind(review: &ReviewRequest) -> engine_request::GroupVersionKind {
    match review.sub_resource.as_deref() {
        Some(sub) if !sub.is_empty() => engine_request::GroupVersionKind {
            group: review.resource.group.clone(),
            version: review.resource.version.clone(),
            kind: kind_of_resource(&review.resource.resource),
        },
        _ => engine_request::GroupVersionKind {
            group: review.kind.group.clone(),
            version: review.kind.version.clone(),
            kind: review.kind.kind.clone(),
        },
    }
}

/// The kind of a resource name: built-in resources that have subresources by table, others by
/// the usual plural rule (`widgets` → `Widget`).
fn kind_of_resource(resource: &str) -> String {
    const KNOWN: &[(&str, &str)] = &[
        ("pods", "Pod"),
        ("deployments", "Deployment"),
        ("replicasets", "ReplicaSet"),
        ("statefulsets", "StatefulSet"),
        ("daemonsets", "DaemonSet"),
        ("replicationcontrollers", "ReplicationController"),
        ("jobs", "Job"),
        ("cronjobs", "CronJob"),
        ("services", "Service"),
        ("nodes", "Node"),
        ("namespaces", "Namespace"),
        ("persistentvolumes", "PersistentVolume"),
        ("persistentvolumeclaims", "PersistentVolumeClaim"),
        ("serviceaccounts", "ServiceAccount"),
        ("resourcequotas", "ResourceQuota"),
        ("horizontalpodautoscalers", "HorizontalPodAutoscaler"),
        ("poddisruptionbudgets", "PodDisruptionBudget"),
        ("ingresses", "Ingress"),
        ("networkpolicies", "NetworkPolicy"),
        ("certificatesigningrequests", "CertificateSigningRequest"),
        ("customresourcedefinitions", "CustomResourceDefinition"),
        ("apiservices", "APIService"),
    ];
    if let Some((_, kind)) = KNOWN.iter().find(|(name, _)| *name == resource) {
        return (*kind).to_owned();
    }
    let singular = if let Some(stem) = resource.strip_suffix("ies") {
        format!("{stem}y")
    } else {
        resource.strip_suffix('s').unwrap_or(resource).to_owned()
    };
    let mut chars = singular.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => singular,
    }
}

fn set_namespace_if_missing(object: &mut Value, namespace: &str) -> Result<(), EvalError> {
    if object.is_null() {
        return Ok(());
    }
    let Value::Object(map) = object else {
        return Err(EvalError::InvalidRequest(
            "the object is not a JSON object".to_owned(),
        ));
    };
    let metadata = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(metadata) = metadata {
        let missing = metadata
            .get("namespace")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty);
        if missing {
            metadata.insert("namespace".to_owned(), Value::String(namespace.to_owned()));
        }
    }
    Ok(())
}

/// Kyverno skipped rules with a `namespaceSelector` when the namespace could not be read
/// (GHSA-jrr2-x33p-6hvc): a bypass. Here each rule of `policy` (of the kind `of_kind` selects)
/// that selects by namespace labels, for a request whose namespace's labels are unknown, gets
/// an error result in place of whatever it produced, so the policy's failurePolicy decides.
fn undecidable_selectors_are_errors(
    policy: &CompiledPolicy,
    request: &Request,
    namespace: &str,
    response: &mut PolicyResponse,
    of_kind: impl Fn(&RuleBody) -> bool,
) {
    if !policy.selects_by_namespace_labels
        || !bylaw_engine::validate::policy_applies(policy, request)
    {
        return;
    }
    for rule in &policy.rules {
        if !of_kind(&rule.body) || !rule.depends_on_namespace_labels(request) {
            continue;
        }
        let rule_type = match rule.body {
            RuleBody::Mutate(_) => bylaw_engine::response::RuleType::Mutation,
            _ => bylaw_engine::response::RuleType::Validation,
        };
        response.rules.retain(|r| r.name != rule.name);
        response.rules.push(RuleResponse::new(
            &rule.name,
            rule_type,
            RuleStatus::Error,
            format!(
                "the rule selects by namespace labels and the labels of namespace {namespace} \
                 are unknown"
            ),
        ));
    }
}

/// The old object as if it were being created, to see whether it already violated a rule.
fn old_object_request(request: &Request) -> (Request, Value) {
    let old = Request {
        operation: engine_request::Operation::Create,
        object: request.old_object.clone().unwrap_or(Value::Null),
        old_object: None,
        kind: request.kind.clone(),
        subresource: request.subresource.clone(),
        user: request.user.clone(),
        namespace_labels: request.namespace_labels.clone(),
        dry_run: request.dry_run,
    };
    let context = request_context(&old);
    (old, context)
}

/// Kyverno checks the old object only for validate rules whose own action (the rule's
/// `failureAction`, else the policy's `validationFailureAction`; overrides are not consulted)
/// is Enforce and that allow existing violations.
fn tolerates_existing(policy: &CompiledPolicy, rule_name: &str) -> bool {
    let Some(rule) = policy.rules.iter().find(|r| *r.name == *rule_name) else {
        return false;
    };
    let RuleBody::Validate(validate) = &rule.body else {
        return false;
    };
    let action = validate
        .failure_action
        .unwrap_or(policy.validation_failure_action);
    action == FailureAction::Enforce && validate.allow_existing_violations
}

fn allow_existing_violations(
    policy: &CompiledPolicy,
    response: &mut PolicyResponse,
    before: &PolicyResponse,
) {
    for rule in &mut response.rules {
        if rule.status != RuleStatus::Fail || !tolerates_existing(policy, &rule.name) {
            continue;
        }
        let failed_before = before
            .rules
            .iter()
            .any(|old| old.name == rule.name && old.status == RuleStatus::Fail);
        if failed_before {
            rule.status = RuleStatus::Skip;
            rule.message = EXISTING_VIOLATION_SKIP.to_owned();
            rule.path = None;
            rule.detail = None;
        }
    }
}

struct Evaluated<'a> {
    policy: &'a CompiledPolicy,
    /// [`CompiledPolicy::says_enforce`], asked once: the verdict needs it three times.
    enforce: bool,
    response: PolicyResponse,
    elapsed: Duration,
}

/// The engine times whole policies; each rule is charged an equal share.
fn per_rule(elapsed: Duration, rules: usize) -> Duration {
    elapsed / u32::try_from(rules.max(1)).unwrap_or(u32::MAX)
}

fn rule_result(status: RuleStatus) -> RuleResult {
    match status {
        RuleStatus::Pass => RuleResult::Pass,
        RuleStatus::Fail => RuleResult::Fail,
        RuleStatus::Warn => RuleResult::Warn,
        RuleStatus::Error => RuleResult::Error,
        RuleStatus::Skip => RuleResult::Skip,
    }
}

fn reportable(rule: &RuleResponse) -> bool {
    !matches!(rule.status, RuleStatus::Pass | RuleStatus::Skip)
}

/// The rule's message, with the offending field appended when the message does not name it.
fn message_with_path(rule: &RuleResponse) -> String {
    // bylaw's detail (got …, want …) stays in what the webhook says; a setting for Kyverno's
    // exact text (`MessageFormat::Kyverno`) is the server's to offer.
    let message = rule.message_in(bylaw_engine::response::MessageFormat::Bylaw);
    match &rule.path {
        Some(path) if !path.is_empty() && !message.contains(path.as_str()) => {
            format!("{message} (at {path})")
        }
        _ => message.into_owned(),
    }
}

fn decide(
    evaluated: Vec<Evaluated<'_>>,
    review: &ReviewRequest,
    request: &Request,
    namespace: &str,
) -> Verdict {
    let namespace_labels = request.namespace_labels.as_ref();
    let mut results = Vec::with_capacity(
        evaluated
            .iter()
            .map(|item| item.response.rules.len())
            .sum::<usize>(),
    );
    let mut blocked = false;
    let mut fail_closed = false;
    let mut errored = false;
    for item in &evaluated {
        let policy = item.policy;
        let enforce_policy = item.enforce;
        if enforce_policy {
            fail_closed |= policy.failure_policy == FailurePolicy::Fail;
        }
        let share = per_rule(item.elapsed, item.response.rules.len());
        for rule in &item.response.rules {
            let enforce = effective_action(policy, &rule.name, namespace, namespace_labels)
                == FailureAction::Enforce;
            if enforce_policy {
                blocked |= enforce && rule.status == RuleStatus::Fail;
                errored |= rule.status == RuleStatus::Error;
            }
            // The rule's message is moved in below, once the messages are built.
            results.push(RuleOutcome {
                policy: policy.name.clone(),
                policy_namespace: policy.namespace.clone(),
                rule: rule.name.clone(),
                rule_type: RuleType::Validate,
                result: rule_result(rule.status),
                message: String::new(),
                enforce,
                background: policy.background,
                duration: share,
            });
        }
    }
    blocked |= errored && fail_closed;

    let enforce_responses = || evaluated.iter().filter(|item| item.enforce);
    let (message, warnings) = if blocked {
        (
            Some(blocked_message(review, request, enforce_responses())),
            Vec::new(),
        )
    } else {
        let warn_audit = evaluated
            .iter()
            .filter(|item| !item.enforce && item.policy.emit_warning);
        let warnings = enforce_responses()
            .chain(warn_audit)
            .flat_map(|item| {
                item.response
                    .rules
                    .iter()
                    .filter(|rule| reportable(rule))
                    .map(|rule| {
                        format!(
                            "policy {}.{}: {}",
                            item.policy.name,
                            rule.name,
                            message_with_path(rule)
                        )
                    })
            })
            .collect();
        (None, warnings)
    };
    let rules = evaluated.into_iter().flat_map(|item| item.response.rules);
    for (outcome, rule) in results.iter_mut().zip(rules) {
        outcome.message = rule.into_message(bylaw_engine::response::MessageFormat::Bylaw);
    }
    Verdict {
        allowed: !blocked,
        message,
        warnings,
        results,
        ..Verdict::default()
    }
}

/// Kyverno's denial text: the resource, then a YAML map of policy → rule → message.
fn blocked_message<'a>(
    review: &ReviewRequest,
    request: &Request,
    responses: impl Iterator<Item = &'a Evaluated<'a>>,
) -> String {
    let mut failures: BTreeMap<&str, BTreeMap<&str, String>> = BTreeMap::new();
    for item in responses {
        let mut rules = BTreeMap::new();
        for rule in &item.response.rules {
            if reportable(rule) && rule.message != "preconditions not met" {
                rules.insert(&*rule.name, message_with_path(rule));
            }
        }
        if !rules.is_empty() {
            failures
                .entry(&*item.policy.name)
                .or_default()
                .extend(rules);
        }
    }
    let yaml = Value::Object(
        failures
            .into_iter()
            .map(|(policy, rules)| {
                let rules = rules
                    .into_iter()
                    .map(|(rule, message)| (rule.to_owned(), Value::String(message)))
                    .collect();
                (policy.to_owned(), Value::Object(rules))
            })
            .collect(),
    );
    // The review's own objects may have been moved into the request; the request holds the
    // same object (`oldObject` for DELETE), at most with the review's namespace filled in,
    // which is only read when the review has none.
    let subject = match request.operation {
        engine_request::Operation::Delete => request.old_object.as_ref(),
        _ => Some(&request.object),
    };
    let meta = |field: &str| {
        subject
            .and_then(|o| o.pointer(&format!("/metadata/{field}")))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let name = if review.name.is_empty() {
        meta("name")
    } else {
        review.name.clone()
    };
    let namespace = review
        .namespace
        .clone()
        .unwrap_or_else(|| meta("namespace"));
    format!(
        "\n\nresource {}/{namespace}/{name} was blocked due to the following policies \n\n{}",
        review.kind.kind,
        bylaw_api::yaml::to_yaml_string(&yaml)
    )
}

impl PolicyEvaluator {
    /// The half of `set` whose policies have `failure_policy`, split once per served set.
    fn half_of(&self, set: &Arc<PolicySet>, failure_policy: FailurePolicy) -> Arc<PolicySet> {
        let mut split = self.split.lock().unwrap_or_else(PoisonError::into_inner);
        let current = match split.as_ref() {
            Some(existing) if Arc::ptr_eq(&existing.from, set) => existing,
            _ => split.insert(SplitSet::of(set)),
        };
        match failure_policy {
            FailurePolicy::Fail => Arc::clone(&current.fail),
            FailurePolicy::Ignore => Arc::clone(&current.ignore),
        }
    }
}

impl PolicyEvaluator {
    /// Whether the policies of `set` for `phase` (with `failure_policy`, only those) are
    /// evaluated without waiting on anything outside the process; decided once per served set.
    fn stays_in_process(
        &self,
        set: &Arc<PolicySet>,
        phase: Phase,
        failure_policy: Option<FailurePolicy>,
    ) -> bool {
        let mut decided = self
            .in_process
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let current = match decided.as_ref() {
            Some(existing) if Arc::ptr_eq(&existing.from, set) => existing,
            _ => decided.insert(InProcess::of(set)),
        };
        current.stays(phase, failure_policy)
    }

    /// Notes that an inline evaluation of `set` ran past its `budget`.
    fn suspect_inline(&self, set: &Arc<PolicySet>, budget: Duration) {
        self.update_in_process(set, |current| current.overran = Some(budget));
        self.suspicion_pending.store(true, Ordering::Release);
    }

    /// After an evaluation of `set` on the blocking pool that took `took`: when an inline
    /// evaluation ran past its budget and this one took as long, the set is slow (or the
    /// machine throttled), and reviews of it go to the blocking pool for a while. A shorter
    /// one means that the inline thread was only kept waiting.
    fn settle_suspicion(&self, set: &Arc<PolicySet>, took: Duration) {
        // Read before it is cleared: most pool evaluations have nothing to settle and then
        // write nothing the other threads share.
        if !self.suspicion_pending.load(Ordering::Acquire)
            || !self.suspicion_pending.swap(false, Ordering::AcqRel)
        {
            return;
        }
        self.update_in_process(set, |current| {
            if current.overran.take().is_some_and(|budget| took >= budget) {
                current.paused_until = Some(Instant::now() + INLINE_PAUSE);
            }
        });
    }

    /// Changes the inline decisions when they are about `set`.
    fn update_in_process(&self, set: &Arc<PolicySet>, change: impl FnOnce(&mut InProcess)) {
        let mut decided = self
            .in_process
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(current) = decided
            .as_mut()
            .filter(|current| Arc::ptr_eq(&current.from, set))
        {
            change(current);
        }
    }
}

/// Whether the rules `phase` runs, or the exceptions, could read the objects' managedFields.
fn phase_reads_managed_fields(set: &PolicySet, phase: Phase) -> bool {
    match phase {
        Phase::Validate => set.validation_reads_managed_fields(),
        Phase::Mutate => set.reads_managed_fields(),
    }
}

/// Refuses a review decoded without its objects' managedFields for a set that could read them
/// (the set changed since the server decided what to decode).
fn complete_for(set: &PolicySet, phase: Phase, review: &ReviewRequest) -> Result<(), EvalError> {
    if review.managed_fields_left_out && phase_reads_managed_fields(set, phase) {
        return Err(EvalError::ManagedFieldsLeftOut);
    }
    Ok(())
}

impl AdmissionEvaluator for PolicyEvaluator {
    fn evaluate_only(
        &self,
        phase: Phase,
        request: &ReviewRequest,
        deadline: Instant,
        failure_policy: FailurePolicy,
    ) -> Result<Verdict, EvalError> {
        let Some(set) = self.cache.current() else {
            return Err(EvalError::NotReady);
        };
        complete_for(&set, phase, request)?;
        let half = self.half_of(&set, failure_policy);
        let objects = ReviewObjects::Copied(request);
        self.evaluate_objects(phase, &half, request, objects, deadline)
    }

    fn evaluate_owned(
        &self,
        phase: Phase,
        mut request: ReviewRequest,
        deadline: Instant,
        failure_policy: Option<FailurePolicy>,
    ) -> Result<Verdict, EvalError> {
        let Some(mut set) = self.cache.current() else {
            return Err(EvalError::NotReady);
        };
        complete_for(&set, phase, &request)?;
        let served = Arc::clone(&set);
        if let Some(failure_policy) = failure_policy {
            set = self.half_of(&set, failure_policy);
        }
        let objects = ReviewObjects::take(&mut request);
        let started = Instant::now();
        let verdict = self.evaluate_objects(phase, &set, &request, objects, deadline);
        self.settle_suspicion(&served, started.elapsed());
        verdict
    }

    fn try_evaluate_inline(
        &self,
        phase: Phase,
        mut review: ReviewRequest,
        budget: Instant,
        failure_policy: Option<FailurePolicy>,
    ) -> InlineEvaluation {
        let Some(mut set) = self.cache.current() else {
            return InlineEvaluation::Evaluated(Err(EvalError::NotReady));
        };
        if let Err(error) = complete_for(&set, phase, &review) {
            return InlineEvaluation::Evaluated(Err(error));
        }
        if !self.stays_in_process(&set, phase, failure_policy) {
            return InlineEvaluation::Declined(Box::new(review));
        }
        let served = Arc::clone(&set);
        if let Some(failure_policy) = failure_policy {
            set = self.half_of(&set, failure_policy);
        }
        if !needs_evaluation(&set, phase, &review) {
            return InlineEvaluation::Evaluated(Ok(Verdict::allow()));
        }
        let objects = ReviewObjects::take(&mut review);
        let request = match self.engine_request(&review, objects) {
            Ok(request) => request,
            Err(error) => return InlineEvaluation::Evaluated(Err(error)),
        };
        let started = Instant::now();
        match self.evaluate_request(phase, &set, &review, &request, budget) {
            // Cut short by the budget: the objects go back for the blocking pool to evaluate
            // again from the start (evaluation has no side effects to undo).
            Err(EvalError::DeadlineExceeded) => {
                self.suspect_inline(&served, budget.saturating_duration_since(started));
                tracing::debug!("inline evaluation ran past its budget; the pool takes over");
                let Request {
                    object, old_object, ..
                } = request;
                review.object = Some(object).filter(|object| !object.is_null());
                review.old_object = old_object;
                InlineEvaluation::Declined(Box::new(review))
            }
            outcome => InlineEvaluation::Evaluated(outcome),
        }
    }

    fn evaluate(
        &self,
        phase: Phase,
        request: &ReviewRequest,
        deadline: Instant,
    ) -> Result<Verdict, EvalError> {
        let Some(set) = self.cache.current() else {
            return Err(EvalError::NotReady);
        };
        complete_for(&set, phase, request)?;
        let objects = ReviewObjects::Copied(request);
        self.evaluate_objects(phase, &set, request, objects, deadline)
    }

    fn reads_managed_fields(&self, phase: Phase) -> bool {
        self.cache
            .current()
            .is_none_or(|set| phase_reads_managed_fields(&set, phase))
    }

    fn is_ready(&self) -> bool {
        self.cache.is_loaded()
    }

    fn validate_policy(&self, object: &Value) -> Result<(), Vec<String>> {
        // Every kind the cluster mode serves: ClusterPolicy, Policy, PolicyException and the
        // policies.kyverno.io kinds.
        bylaw_engine::engine::compile_document(object)
            .map(|_| ())
            .map_err(|error| vec![error.to_string()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::{GroupVersionKind, GroupVersionResource, UserInfo};
    use crate::metrics::Metrics;
    use crate::sources::{ContextProvider, EmptyContext, PolicyDocument};
    use serde_json::json;

    const ENFORCE_LATEST: &str = r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: disallow-latest-tag
spec:
  validationFailureAction: Enforce
  rules:
    - name: require-image-tag
      match:
        any:
          - resources:
              kinds: [Pod]
      validate:
        message: "An image tag is required."
        pattern:
          spec:
            containers:
              - image: "*:*"
    - name: validate-image-tag
      match:
        any:
          - resources:
              kinds: [Pod]
      validate:
        message: "Using a mutable image tag e.g. 'latest' is not allowed."
        pattern:
          spec:
            containers:
              - image: "!*:latest"
"#;

    const AUDIT_TEAM_WARN: &str = r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: require-team
spec:
  validationFailureAction: Audit
  emitWarning: true
  rules:
    - name: check-team
      match:
        any:
          - resources:
              kinds: [Pod]
      validate:
        message: "label team is required"
        pattern:
          metadata:
            labels:
              team: "?*"
"#;

    const AUDIT_SILENT: &str = r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: require-owner
spec:
  validationFailureAction: Audit
  rules:
    - name: check-owner
      match:
        any:
          - resources:
              kinds: [Pod]
      validate:
        message: "label owner is required"
        pattern:
          metadata:
            labels:
              owner: "?*"
"#;

    fn evaluator_with(policies: &[&str], context: Arc<dyn ContextSource>) -> PolicyEvaluator {
        let docs: Vec<PolicyDocument> = policies
            .iter()
            .flat_map(|text| bylaw_api::yaml::parse_documents(text, "inline").unwrap())
            .map(|value| PolicyDocument {
                value,
                origin: "inline".into(),
            })
            .collect();
        let cache = Arc::new(PolicyCache::new(Metrics::new("test")));
        assert!(cache.replace(&docs).rejected.is_empty());
        PolicyEvaluator::new(cache, context)
    }

    fn evaluator(policies: &[&str]) -> PolicyEvaluator {
        evaluator_with(policies, Arc::new(EmptyContext))
    }

    fn pod(image: &str, labels: Value) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "nginx", "namespace": "default", "labels": labels},
            "spec": {"containers": [{"name": "nginx", "image": image}]}
        })
    }

    fn review(operation: Operation, object: Option<Value>, old: Option<Value>) -> ReviewRequest {
        ReviewRequest {
            uid: "u1".into(),
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
            name: "nginx".into(),
            namespace: Some("default".into()),
            operation,
            user_info: UserInfo {
                username: "alice".into(),
                groups: vec!["system:authenticated".into()],
                ..UserInfo::default()
            },
            object,
            old_object: old,
            dry_run: false,
            options: None,
            managed_fields_left_out: false,
        }
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    fn validate(evaluator: &PolicyEvaluator, review: &ReviewRequest) -> Verdict {
        evaluator
            .evaluate(Phase::Validate, review, later())
            .unwrap()
    }

    /// A ClusterPolicy with one Pod rule whose body (and context) is `rule`.
    fn one_rule(name: &str, failure_policy: &str, rule: &str) -> String {
        format!(
            r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: {name}
spec:
  validationFailureAction: Enforce
  failurePolicy: {failure_policy}
  rules:
    - name: check
      match:
        any:
          - resources:
              kinds: [Pod]
{rule}
"#
        )
    }

    /// An outcome without its timings, which differ between any two evaluations.
    fn untimed(mut outcome: Result<Verdict, EvalError>) -> Result<Verdict, EvalError> {
        if let Ok(verdict) = &mut outcome {
            for result in &mut verdict.results {
                result.duration = Duration::ZERO;
            }
        }
        outcome
    }

    #[test]
    fn only_sets_that_never_reach_out_are_evaluated_inline() {
        let pattern =
            "      validate:\n        pattern: {spec: {containers: [{image: \"!*:latest\"}]}}";
        let variable = "      context:\n        - name: tag\n          variable: {value: latest}\n      validate:\n        deny: {conditions: {any: [{key: \"{{ tag }}\", operator: Equals, value: nope}]}}";
        let config_map = "      context:\n        - name: settings\n          configMap: {name: settings, namespace: default}\n      validate:\n        deny: {conditions: {any: [{key: \"{{ settings.data.x }}\", operator: Equals, value: nope}]}}";
        let nested_api_call = "      validate:\n        foreach:\n          - list: request.object.spec.containers\n            context:\n              - name: found\n                apiCall: {urlPath: /api/v1/namespaces}\n            deny: {conditions: {any: [{key: \"{{ found }}\", operator: Equals, value: nope}]}}";
        let cel = "      validate:\n        cel:\n          expressions:\n            - expression: \"object.metadata.name != 'x'\"";
        let mutate =
            "      mutate:\n        patchStrategicMerge: {metadata: {labels: {+(team): none}}}";
        let review = review(Operation::Create, Some(pod("nginx:1.27", json!({}))), None);
        let inline = |policies: &[&str], phase: Phase, only: Option<FailurePolicy>| {
            let evaluator = evaluator(policies);
            match evaluator.try_evaluate_inline(phase, review.clone(), later(), only) {
                InlineEvaluation::Evaluated(outcome) => {
                    // The same answer as the blocking path.
                    assert_eq!(
                        untimed(outcome),
                        untimed(evaluator.evaluate_owned(phase, review.clone(), later(), only))
                    );
                    true
                }
                InlineEvaluation::Declined(back) => {
                    assert_eq!(*back, review, "declined before evaluating: untouched");
                    false
                }
            }
        };
        let plain = one_rule("plain", "Fail", pattern);
        let with_variable = one_rule("variable", "Fail", variable);
        let with_config = one_rule("config", "Ignore", config_map);
        let with_call = one_rule("call", "Fail", nested_api_call);
        let with_cel = one_rule("cel", "Fail", cel);
        let mutating = one_rule("mutating", "Fail", mutate);
        assert!(inline(&[&plain, &with_variable], Phase::Validate, None));
        assert!(!inline(&[&plain, &with_config], Phase::Validate, None));
        assert!(!inline(&[&plain, &with_call], Phase::Validate, None));
        assert!(!inline(&[&with_cel], Phase::Validate, None));
        // Only the policies the endpoint serves count.
        let fail = Some(FailurePolicy::Fail);
        assert!(inline(&[&plain, &with_config], Phase::Validate, fail));
        assert!(!inline(
            &[&plain, &with_config],
            Phase::Validate,
            Some(FailurePolicy::Ignore)
        ));
        // A validate lookup does not hold the mutate phase back.
        assert!(inline(&[&mutating, &with_config], Phase::Mutate, None));
    }

    /// A review decoded without its managedFields (the server decided no policy read them) is
    /// refused by a set that could read them, on every path, so the server decodes it again
    /// whole; a set that cannot read them evaluates it.
    #[test]
    fn a_review_without_managed_fields_is_refused_by_a_set_that_reads_them() {
        let clear = one_rule(
            "clear",
            "Fail",
            "      validate:\n        pattern: {spec: {containers: [{image: \"!*:latest\"}]}}",
        );
        let reading = one_rule(
            "reading",
            "Fail",
            "      validate:\n        deny: {conditions: {any: [{key: \"{{ request.object.metadata.managedFields || '' }}\", operator: Equals, value: x}]}}",
        );
        let mut review = review(Operation::Create, Some(pod("nginx:1.27", json!({}))), None);
        review.managed_fields_left_out = true;

        let evaluator = evaluator(&[&clear]);
        assert!(!evaluator.reads_managed_fields(Phase::Validate));
        assert!(evaluator
            .evaluate_owned(Phase::Validate, review.clone(), later(), None)
            .is_ok_and(|verdict| verdict.allowed));

        let evaluator = evaluator_with(&[&clear, &reading], Arc::new(EmptyContext));
        assert!(evaluator.reads_managed_fields(Phase::Validate));
        let refused = |outcome: Result<Verdict, EvalError>| {
            matches!(outcome, Err(EvalError::ManagedFieldsLeftOut))
        };
        assert!(refused(evaluator.evaluate_owned(
            Phase::Validate,
            review.clone(),
            later(),
            None
        )));
        assert!(refused(evaluator.evaluate(
            Phase::Validate,
            &review,
            later()
        )));
        assert!(refused(evaluator.evaluate_only(
            Phase::Validate,
            &review,
            later(),
            FailurePolicy::Fail
        )));
        assert!(matches!(
            evaluator.try_evaluate_inline(Phase::Validate, review.clone(), later(), None),
            InlineEvaluation::Evaluated(Err(EvalError::ManagedFieldsLeftOut))
        ));
        review.managed_fields_left_out = false;
        assert!(evaluator
            .evaluate_owned(Phase::Validate, review.clone(), later(), None)
            .is_ok());

        // Mutate rules count for the mutate phase only: validation still leaves them out.
        let mutating = one_rule(
            "mutating",
            "Fail",
            "      mutate:\n        patchStrategicMerge: {metadata: {labels: {+(team): none}}}",
        );
        let evaluator = evaluator_with(&[&clear, &mutating], Arc::new(EmptyContext));
        assert!(!evaluator.reads_managed_fields(Phase::Validate));
        assert!(evaluator.reads_managed_fields(Phase::Mutate));
        review.managed_fields_left_out = true;
        assert!(evaluator
            .evaluate_owned(Phase::Validate, review.clone(), later(), None)
            .is_ok_and(|verdict| verdict.allowed));
        assert!(refused(evaluator.evaluate_owned(
            Phase::Mutate,
            review,
            later(),
            None
        )));
    }

    /// Work past the budget is given up and the review handed back whole, to be evaluated
    /// again with the same answer.
    #[test]
    fn an_inline_evaluation_past_its_budget_gives_the_review_back() {
        let evaluator = evaluator(&[ENFORCE_LATEST]);
        let review = review(
            Operation::Create,
            Some(pod("nginx:latest", json!({}))),
            None,
        );
        let expected = evaluator
            .evaluate_owned(Phase::Validate, review.clone(), later(), None)
            .unwrap();
        assert!(!expected.allowed);
        let back = match evaluator.try_evaluate_inline(
            Phase::Validate,
            review.clone(),
            Instant::now(),
            None,
        ) {
            InlineEvaluation::Declined(back) => back,
            InlineEvaluation::Evaluated(outcome) => panic!("not given up: {outcome:?}"),
        };
        assert_eq!(back.object, review.object);
        // One review past the budget may be a thread kept waiting: the set stays inline
        // until the blocking pool's evaluation shows it slow.
        match evaluator.try_evaluate_inline(Phase::Validate, review.clone(), later(), None) {
            InlineEvaluation::Evaluated(outcome) => {
                assert_eq!(untimed(outcome), untimed(Ok(expected.clone())));
            }
            InlineEvaluation::Declined(_) => panic!("paused by one review past its budget"),
        }
        // The pool takes at least the budget the inline evaluation ran past (none at all).
        assert_eq!(
            untimed(evaluator.evaluate_owned(Phase::Validate, *back, later(), None)),
            untimed(Ok(expected))
        );
        // For a while the set is not tried inline again, however generous the budget.
        match evaluator.try_evaluate_inline(Phase::Validate, review.clone(), later(), None) {
            InlineEvaluation::Declined(untouched) => assert_eq!(*untouched, review),
            InlineEvaluation::Evaluated(outcome) => panic!("not paused: {outcome:?}"),
        }
    }

    /// A review past the inline budget whose evaluation on the pool is quicker than that
    /// budget was a thread kept waiting, not a slow set: reviews stay inline.
    #[test]
    fn a_quick_evaluation_on_the_pool_keeps_the_set_inline() {
        let evaluator = evaluator(&[ENFORCE_LATEST]);
        let review = review(
            Operation::Create,
            Some(pod("nginx:latest", json!({}))),
            None,
        );
        let inline = |evaluator: &PolicyEvaluator| match evaluator.try_evaluate_inline(
            Phase::Validate,
            review.clone(),
            later(),
            None,
        ) {
            InlineEvaluation::Evaluated(outcome) => outcome.is_ok_and(|v| !v.allowed),
            InlineEvaluation::Declined(_) => false,
        };
        assert!(inline(&evaluator), "evaluated inline at first");
        let set = evaluator.cache.current().expect("a served set");
        evaluator.suspect_inline(&set, Duration::from_secs(3600));
        assert!(evaluator
            .evaluate_owned(Phase::Validate, review.clone(), later(), None)
            .is_ok_and(|verdict| !verdict.allowed));
        assert!(
            inline(&evaluator),
            "still inline after a quick evaluation on the pool"
        );
        // The suspicion was settled: a slow pool evaluation later does not pause either.
        evaluator.settle_suspicion(&set, Duration::from_secs(7200));
        assert!(inline(&evaluator), "a settled suspicion pauses nothing");
    }

    #[test]
    fn a_subresource_request_is_selected_by_its_parent_kind() {
        let policy = r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: no-exec}
spec:
  validationFailureAction: Enforce
  rules:
    - name: deny-exec
      match:
        any:
          - resources: {kinds: [Pod/exec], operations: [CONNECT]}
      validate:
        message: "exec into {{ request.kind.kind }} is not allowed"
        deny: {}
"#;
        let evaluator = evaluator(&[policy]);
        let mut exec = review(
            Operation::Connect,
            Some(json!({"apiVersion": "v1", "kind": "PodExecOptions", "command": ["sh"]})),
            None,
        );
        exec.kind = GroupVersionKind {
            group: String::new(),
            version: "v1".into(),
            kind: "PodExecOptions".into(),
        };
        exec.sub_resource = Some("exec".into());
        let verdict = validate(&evaluator, &exec);
        assert!(!verdict.allowed, "Pod/exec must select pods/exec");
        // request.kind stays the kind of the object sent, as the API server fills it.
        assert!(
            verdict
                .message
                .as_deref()
                .is_some_and(|m| m.contains("exec into PodExecOptions is not allowed")),
            "{:?}",
            verdict.message
        );
        // The Pod itself is not selected by a subresource selector.
        let create = review(
            Operation::Create,
            Some(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nginx"}})),
            None,
        );
        assert!(validate(&evaluator, &create).allowed);
        assert_eq!(kind_of_resource("replicasets"), "ReplicaSet");
        assert_eq!(kind_of_resource("widgets"), "Widget");
        assert_eq!(kind_of_resource("policies"), "Policy");
    }

    #[test]
    fn enforce_failure_denies_with_kyvernos_message() {
        let evaluator = evaluator(&[ENFORCE_LATEST, AUDIT_TEAM_WARN]);
        let verdict = validate(
            &evaluator,
            &review(
                Operation::Create,
                Some(pod("nginx:latest", json!({}))),
                None,
            ),
        );
        assert!(!verdict.allowed);
        assert_eq!(
            verdict.message.as_deref(),
            Some(
                "\n\nresource Pod/default/nginx was blocked due to the following policies \n\n\
                 disallow-latest-tag:\n  validate-image-tag: 'validation error: Using a mutable image tag e.g. ''latest'' is not allowed. rule validate-image-tag failed at path /spec/containers/0/image/ \
                 (got \"nginx:latest\", want \"!*:latest\")'\n"
            )
        );
        // Denied requests carry no warnings; every rule outcome is still reported.
        assert!(verdict.warnings.is_empty());
        let outcomes: Vec<(&str, RuleResult, bool)> = verdict
            .results
            .iter()
            .map(|o| (&*o.rule, o.result, o.enforce))
            .collect();
        assert_eq!(
            outcomes,
            [
                ("require-image-tag", RuleResult::Pass, true),
                ("validate-image-tag", RuleResult::Fail, true),
                ("check-team", RuleResult::Fail, false),
            ]
        );
    }

    #[test]
    fn audit_failures_admit_and_warn_only_with_emit_warning() {
        let evaluator = evaluator(&[ENFORCE_LATEST, AUDIT_TEAM_WARN, AUDIT_SILENT]);
        let verdict = validate(
            &evaluator,
            &review(Operation::Create, Some(pod("nginx:1.27", json!({}))), None),
        );
        assert!(verdict.allowed);
        assert_eq!(verdict.message, None);
        assert_eq!(
            verdict.warnings,
            // Kyverno's message, then bylaw's note of what was found and expected.
            ["policy require-team.check-team: validation error: label team is required. rule check-team failed at path /metadata/labels/team/ (got nothing (field is missing), want \"?*\")"]
        );
        let failed: Vec<&str> = verdict
            .results
            .iter()
            .filter(|o| o.result == RuleResult::Fail)
            .map(|o| &*o.policy)
            .collect();
        assert_eq!(failed, ["require-team", "require-owner"]);

        let compliant = validate(
            &evaluator,
            &review(
                Operation::Create,
                Some(pod("nginx:1.27", json!({"team": "a", "owner": "b"}))),
                None,
            ),
        );
        assert!(compliant.allowed);
        assert!(compliant.warnings.is_empty());
        assert!(compliant
            .results
            .iter()
            .all(|o| o.result == RuleResult::Pass));
    }

    #[test]
    fn each_outcome_carries_its_own_rules_name_message_and_action() {
        let evaluator = evaluator(&[ENFORCE_LATEST, AUDIT_TEAM_WARN, AUDIT_SILENT]);
        let verdict = validate(
            &evaluator,
            &review(
                Operation::Create,
                Some(pod("nginx:latest", json!({}))),
                None,
            ),
        );
        assert!(!verdict.allowed);
        let outcomes: Vec<(&str, &str, RuleResult, bool)> = verdict
            .results
            .iter()
            .map(|o| (&*o.policy, &*o.rule, o.result, o.enforce))
            .collect();
        assert_eq!(
            outcomes,
            [
                (
                    "disallow-latest-tag",
                    "require-image-tag",
                    RuleResult::Pass,
                    true
                ),
                (
                    "disallow-latest-tag",
                    "validate-image-tag",
                    RuleResult::Fail,
                    true
                ),
                ("require-team", "check-team", RuleResult::Fail, false),
                ("require-owner", "check-owner", RuleResult::Fail, false),
            ]
        );
        // Each failure carries its own rule's text; a pass carries none (nothing the webhook
        // writes shows one, so none is built).
        let messages: Vec<&str> = verdict.results.iter().map(|o| o.message.as_str()).collect();
        assert_eq!(messages[0], "", "{messages:?}");
        assert!(messages[1].contains("mutable image tag"), "{messages:?}");
        assert!(
            messages[2].contains("label team is required"),
            "{messages:?}"
        );
        assert!(
            messages[3].contains("label owner is required"),
            "{messages:?}"
        );
    }

    #[test]
    fn update_keeps_existing_violations_unless_disallowed() {
        let strict = ENFORCE_LATEST
            .replace("name: disallow-latest-tag", "name: strict-latest-tag")
            .replace(
                "        message: \"Using",
                "        allowExistingViolations: false\n        message: \"Using",
            );
        let evaluator = evaluator(&[ENFORCE_LATEST]);
        let old = pod("nginx:latest", json!({}));
        // Both old and new violate: the edit (a label) is allowed, the rule is skipped.
        let relabel = review(
            Operation::Update,
            Some(pod("nginx:latest", json!({"app": "web"}))),
            Some(old.clone()),
        );
        let verdict = validate(&evaluator, &relabel);
        assert!(verdict.allowed, "{:?}", verdict.message);
        let skipped = verdict
            .results
            .iter()
            .find(|o| &*o.rule == "validate-image-tag")
            .unwrap();
        assert_eq!(skipped.result, RuleResult::Skip);
        assert_eq!(skipped.message, EXISTING_VIOLATION_SKIP);

        // A new violation on UPDATE is denied.
        let fresh = review(
            Operation::Update,
            Some(pod("nginx:latest", json!({}))),
            Some(pod("nginx:1.27", json!({}))),
        );
        assert!(!validate(&evaluator, &fresh).allowed);

        // allowExistingViolations: false blocks even unchanged violations.
        let strict = evaluator_with(&[strict.as_str()], Arc::new(EmptyContext));
        let verdict = validate(&strict, &relabel);
        assert!(!verdict.allowed);
        assert!(verdict
            .message
            .unwrap()
            .contains("strict-latest-tag:\n  validate-image-tag:"));
    }

    #[test]
    fn delete_evaluates_the_old_object() {
        let deny_delete = r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: protect-pods
spec:
  validationFailureAction: Enforce
  rules:
    - name: block-protected-delete
      match:
        any:
          - resources:
              kinds: [Pod]
              operations: [DELETE]
      validate:
        message: "{{ request.oldObject.metadata.name }} is protected"
        deny:
          conditions:
            any:
              - key: "{{ request.oldObject.metadata.labels.protected || '' }}"
                operator: Equals
                value: "true"
"#;
        let evaluator = evaluator(&[deny_delete, ENFORCE_LATEST]);
        let protected = review(
            Operation::Delete,
            None,
            Some(pod("nginx:latest", json!({"protected": "true"}))),
        );
        let verdict = validate(&evaluator, &protected);
        assert!(!verdict.allowed);
        let message = verdict.message.unwrap();
        assert!(
            message.contains("protect-pods:\n  block-protected-delete: nginx is protected\n"),
            "{message}"
        );
        // Pattern rules do not apply to DELETE (the latest tag is not a reason to keep a Pod).
        assert!(!message.contains("disallow-latest-tag"), "{message}");

        let plain = review(
            Operation::Delete,
            None,
            Some(pod("nginx:latest", json!({}))),
        );
        assert!(validate(&evaluator, &plain).allowed);

        let missing = review(Operation::Delete, None, None);
        assert!(matches!(
            evaluator.evaluate(Phase::Validate, &missing, later()),
            Err(EvalError::InvalidRequest(_))
        ));
    }

    #[test]
    fn namespace_labels_drive_selectors_and_overrides() {
        struct Labels;
        impl ContextProvider for Labels {}
        impl ContextSource for Labels {
            fn namespace_labels(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
                match namespace {
                    "prod" => Some(BTreeMap::from([("env".into(), "prod".into())])),
                    "dev" | "kube-system" => Some(BTreeMap::new()),
                    _ => None,
                }
            }
        }
        let policy = r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: team-label
spec:
  validationFailureAction: Audit
  rules:
    - name: check-team
      match:
        any:
          - resources:
              kinds: [Pod]
              namespaceSelector:
                matchExpressions:
                  - {key: kubernetes.io/metadata.name, operator: NotIn, values: [kube-system]}
      validate:
        failureActionOverrides:
          - action: Enforce
            namespaceSelector:
              matchLabels: {env: prod}
        message: "label team is required"
        pattern:
          metadata:
            labels:
              team: "?*"
"#;
        let evaluator = evaluator_with(&[policy], Arc::new(Labels));
        let in_namespace = |ns: &str| {
            let mut object = pod("nginx:1.27", json!({}));
            object["metadata"]["namespace"] = json!(ns);
            let mut review = review(Operation::Create, Some(object), None);
            review.namespace = Some(ns.to_owned());
            validate(&evaluator, &review)
        };
        let prod = in_namespace("prod");
        assert!(!prod.allowed);
        assert!(prod.results[0].enforce);
        let dev = in_namespace("dev");
        assert!(dev.allowed);
        assert_eq!(dev.results[0].result, RuleResult::Fail);
        assert!(!dev.results[0].enforce);
        // The standard name label selects out kube-system: no rule applies.
        assert!(in_namespace("kube-system").results.is_empty());
    }

    /// GHSA-jrr2-x33p-6hvc: Kyverno skipped namespaceSelector rules when the namespace could not
    /// be read. Here such a rule is an error, and the policy's failurePolicy decides.
    #[test]
    fn a_namespace_selector_rule_for_an_unknown_namespace_is_an_error_not_a_skip() {
        struct OnlyProd;
        impl ContextProvider for OnlyProd {}
        impl ContextSource for OnlyProd {
            fn namespace_labels(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
                (namespace == "prod").then(|| BTreeMap::from([("env".into(), "prod".into())]))
            }
        }
        let policy = |kind: &str, failure_policy: &str| {
            format!(
                r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: prod-rules-{failure_policy}
spec:
  validationFailureAction: Enforce
  failurePolicy: {failure_policy}
  rules:
    - name: check-team
      match:
        any:
          - resources:
              kinds: [Pod]
              namespaceSelector:
                matchLabels: {{env: prod}}
      {kind}
"#
            )
        };
        let validate_rule = r#"validate:
        message: "label team is required"
        pattern: {metadata: {labels: {team: "?*"}}}"#;
        let mutate_rule = r#"mutate:
        patchStrategicMerge: {metadata: {labels: {checked: "yes"}}}"#;
        let in_namespace = |evaluator: &PolicyEvaluator, ns: &str, phase: Phase| {
            let mut object = pod("nginx:1.27", json!({}));
            object["metadata"]["namespace"] = json!(ns);
            let mut review = review(Operation::Create, Some(object), None);
            review.namespace = Some(ns.to_owned());
            evaluator
                .evaluate(phase, &review, Instant::now() + Duration::from_secs(10))
                .unwrap()
        };

        let fail = evaluator_with(&[&policy(validate_rule, "Fail")], Arc::new(OnlyProd));
        // Known labels decide as before.
        assert!(!in_namespace(&fail, "prod", Phase::Validate).allowed);
        // Unknown labels: an error, which Fail turns into a denial.
        let unknown = in_namespace(&fail, "new-namespace", Phase::Validate);
        assert!(!unknown.allowed, "{unknown:?}");
        assert_eq!(unknown.results[0].result, RuleResult::Error);
        assert!(unknown.results[0].message.contains("new-namespace"));

        let ignore = evaluator_with(&[&policy(validate_rule, "Ignore")], Arc::new(OnlyProd));
        let unknown = in_namespace(&ignore, "new-namespace", Phase::Validate);
        assert!(unknown.allowed);
        assert_eq!(unknown.results[0].result, RuleResult::Error);

        // Mutation: the rule errors, nothing is patched, Fail denies.
        let mutate = evaluator_with(&[&policy(mutate_rule, "Fail")], Arc::new(OnlyProd));
        let known = in_namespace(&mutate, "prod", Phase::Mutate);
        assert!(known.allowed && known.patch.is_some());
        let unknown = in_namespace(&mutate, "new-namespace", Phase::Mutate);
        assert!(!unknown.allowed, "{unknown:?}");
        assert!(unknown.patch.is_none());
        assert_eq!(unknown.results[0].result, RuleResult::Error);

        // A rule without a namespace selector does not depend on the labels.
        let plain = ENFORCE_LATEST;
        let evaluator = evaluator_with(&[plain], Arc::new(OnlyProd));
        let verdict = in_namespace(&evaluator, "new-namespace", Phase::Validate);
        assert!(verdict
            .results
            .iter()
            .all(|r| r.result != RuleResult::Error));
    }

    #[test]
    fn errors_block_only_when_an_enforce_policy_fails_closed() {
        let erroring = |failure_policy: &str| {
            one_rule(
                "needs-config",
                failure_policy,
                r#"      context:
        - name: settings
          configMap: {name: settings, namespace: default}
      validate:
        deny:
          conditions:
            any:
              - key: "{{ settings.data.blocked }}"
                operator: Equals
                value: "yes""#,
            )
        };
        let source = Arc::new(crate::sources::FileContextSource::load(None, Vec::new()).unwrap());
        let review = review(Operation::Create, Some(pod("nginx:1.27", json!({}))), None);
        let fail = evaluator_with(&[erroring("Fail").as_str()], source.clone());
        let verdict = validate(&fail, &review);
        assert!(!verdict.allowed);
        assert_eq!(verdict.results[0].result, RuleResult::Error);
        assert!(verdict
            .message
            .unwrap()
            .contains("needs-config:\n  check: "));

        let ignore = evaluator_with(&[erroring("Ignore").as_str()], source);
        let verdict = validate(&ignore, &review);
        assert!(verdict.allowed);
        assert_eq!(verdict.warnings.len(), 1);
        assert!(
            verdict.warnings[0].starts_with("policy needs-config.check: "),
            "{:?}",
            verdict.warnings
        );
    }

    /// A rule whose evaluation explodes (a foreach over thousands of elements, each running a
    /// query over the whole list) stops soon after the deadline instead of running on.
    #[test]
    fn an_exploding_evaluation_stops_at_the_deadline() {
        let policy = |phase: &str| {
            format!(
                r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: quadratic-{phase}
spec:
  validationFailureAction: Enforce
  rules:
    - name: each
      match:
        any:
          - resources:
              kinds: [Pod]
      {body}
"#,
                body = if phase == "validate" {
                    r#"validate:
        foreach:
          - list: request.object.spec.containers
            deny:
              conditions:
                any:
                  - key: "{{ length(request.object.spec.containers[?name == '{{element.name}}']) }}"
                    operator: GreaterThan
                    value: 1"#
                } else {
                    r#"mutate:
        foreach:
          - list: request.object.spec.containers
            patchStrategicMerge:
              metadata:
                labels:
                  "{{ element.name }}": "{{ length(request.object.spec.containers[?name == '{{element.name}}']) }}""#
                }
            )
        };
        let containers: Vec<Value> = (0..4000)
            .map(|i| json!({"name": format!("c{i}"), "image": "nginx:1.27"}))
            .collect();
        let mut object = pod("nginx:1.27", json!({}));
        object["spec"]["containers"] = Value::Array(containers);
        let review = review(Operation::Create, Some(object), None);
        for (phase, kind) in [(Phase::Validate, "validate"), (Phase::Mutate, "mutate")] {
            let evaluator = evaluator_with(&[&policy(kind)], Arc::new(EmptyContext));
            let started = Instant::now();
            let deadline = started + Duration::from_millis(200);
            let outcome = evaluator.evaluate(phase, &review, deadline);
            let elapsed = started.elapsed();
            assert_eq!(outcome, Err(EvalError::DeadlineExceeded), "{kind}");
            // 4,000 × 4,000 comparisons take many seconds; the deadline ends it after 200 ms.
            assert!(elapsed < Duration::from_secs(2), "{kind}: {elapsed:?}");
        }
    }

    #[test]
    fn readiness_mutation_and_deadline() {
        let cache = Arc::new(PolicyCache::new(Metrics::new("test")));
        let evaluator = PolicyEvaluator::new(cache.clone(), Arc::new(EmptyContext));
        let review = review(
            Operation::Create,
            Some(pod("nginx:latest", json!({}))),
            None,
        );
        assert!(!evaluator.is_ready());
        assert_eq!(
            evaluator.evaluate(Phase::Validate, &review, later()),
            Err(EvalError::NotReady)
        );
        let docs: Vec<PolicyDocument> = bylaw_api::yaml::parse_documents(ENFORCE_LATEST, "p")
            .unwrap()
            .into_iter()
            .map(|value| PolicyDocument {
                value,
                origin: "p".into(),
            })
            .collect();
        assert!(cache.replace(&docs).rejected.is_empty());
        assert!(evaluator.is_ready());
        // No mutate policy: admitted without a patch.
        assert_eq!(
            evaluator.evaluate(Phase::Mutate, &review, later()),
            Ok(Verdict::allow())
        );
        assert_eq!(
            evaluator.evaluate(Phase::Validate, &review, Instant::now()),
            Err(EvalError::DeadlineExceeded)
        );
        assert!(evaluator.validate_policy(&docs[0].value).is_ok());
        let problems = evaluator
            .validate_policy(&json!({"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy", "metadata": {"name": "x"}, "spec": {"rules": []}}))
            .unwrap_err();
        assert_eq!(problems, ["spec.rules: a policy needs at least one rule"]);
    }

    const ADD_TEAM: &str = r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: add-team-label
spec:
  rules:
    - name: default-team
      match:
        any:
          - resources:
              kinds: [Pod]
      mutate:
        patchStrategicMerge:
          metadata:
            labels:
              +(team): unassigned
"#;

    const ADD_TIER: &str = r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: add-tier
spec:
  rules:
    - name: tier-from-team
      match:
        any:
          - resources:
              kinds: [Pod]
      mutate:
        patchStrategicMerge:
          metadata:
            annotations:
              tier: "{{ request.object.metadata.labels.team }}-tier"
"#;

    #[test]
    fn mutation_returns_one_patch_and_later_policies_see_earlier_changes() {
        let evaluator = evaluator(&[ADD_TEAM, ADD_TIER, ENFORCE_LATEST]);
        let object = pod("nginx:latest", json!({"app": "web"}));
        let verdict = evaluator
            .evaluate(
                Phase::Mutate,
                &review(Operation::Create, Some(object.clone()), None),
                later(),
            )
            .unwrap();
        assert!(verdict.allowed);
        let mut patched = object;
        json_patch::patch(&mut patched, &verdict.patch.unwrap()).unwrap();
        assert_eq!(
            patched["metadata"]["labels"],
            json!({"app": "web", "team": "unassigned"})
        );
        assert_eq!(
            patched["metadata"]["annotations"],
            json!({"tier": "unassigned-tier"})
        );
        let rules: Vec<(&str, RuleType, RuleResult)> = verdict
            .results
            .iter()
            .map(|o| (&*o.rule, o.rule_type, o.result))
            .collect();
        assert_eq!(
            rules,
            [
                ("default-team", RuleType::Mutate, RuleResult::Pass),
                ("tier-from-team", RuleType::Mutate, RuleResult::Pass),
            ]
        );

        // An existing label is kept by the add-if-absent anchor: nothing to patch for it.
        let labelled = pod("nginx:1.27", json!({"team": "search"}));
        let verdict = evaluator
            .evaluate(
                Phase::Mutate,
                &review(Operation::Create, Some(labelled.clone()), None),
                later(),
            )
            .unwrap();
        let mut patched = labelled;
        json_patch::patch(&mut patched, &verdict.patch.unwrap()).unwrap();
        assert_eq!(patched["metadata"]["labels"], json!({"team": "search"}));
        assert_eq!(
            patched["metadata"]["annotations"],
            json!({"tier": "search-tier"})
        );

        // Deletions are never mutated.
        let delete = review(Operation::Delete, None, Some(pod("nginx:1.27", json!({}))));
        assert_eq!(
            evaluator.evaluate(Phase::Mutate, &delete, later()),
            Ok(Verdict::allow())
        );
    }

    /// Context manifests written to a temporary directory and read as standalone mode does.
    fn file_context(
        manifests: &str,
    ) -> (tempfile::TempDir, Arc<crate::sources::FileContextSource>) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("context.yaml");
        std::fs::write(&file, manifests).unwrap();
        let source = crate::sources::FileContextSource::load(None, vec![file]).unwrap();
        (dir, Arc::new(source))
    }

    #[test]
    fn roles_from_bindings_make_a_cluster_admin_exclusion_fire() {
        let policy = r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: no-latest-unless-admin
spec:
  validationFailureAction: Enforce
  rules:
    - name: check-tag
      match:
        any:
          - resources:
              kinds: [Pod]
      exclude:
        any:
          - clusterRoles: [cluster-admin]
      validate:
        message: "no latest"
        pattern:
          spec:
            containers:
              - image: "!*:latest"
"#;
        let (_dir, context) = file_context(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: admins\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}\nsubjects:\n  - {kind: Group, name: platform}\n",
        );
        let evaluator = evaluator_with(&[policy], context);
        let mut latest = review(
            Operation::Create,
            Some(pod("nginx:latest", json!({}))),
            None,
        );
        assert!(!validate(&evaluator, &latest).allowed, "alice is no admin");
        latest.user_info.groups.push("platform".into());
        let verdict = validate(&evaluator, &latest);
        assert!(verdict.allowed, "{:?}", verdict.message);
        assert!(
            verdict.results.is_empty(),
            "the rule is excluded: {:?}",
            verdict.results
        );
    }

    #[test]
    fn a_namespaced_policy_cannot_read_another_namespaces_config_map() {
        let policy = |config_namespace: &str| {
            format!(
                r#"
apiVersion: kyverno.io/v1
kind: Policy
metadata:
  name: registries
  namespace: default
spec:
  validationFailureAction: Enforce
  rules:
    - name: allowed-registry
      match:
        any:
          - resources:
              kinds: [Pod]
      context:
        - name: settings
          configMap: {{name: registries, namespace: {config_namespace}}}
      validate:
        message: "registry {{{{ settings.data.allowed }}}} only"
        deny:
          conditions:
            any:
              - key: "{{{{ settings.data.allowed }}}}"
                operator: Equals
                value: "nobody"
"#
            )
        };
        let (_dir, context) = file_context(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: registries, namespace: kube-system}\ndata: {allowed: nobody}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: registries, namespace: default}\ndata: {allowed: nobody}\n",
        );
        let request = review(Operation::Create, Some(pod("nginx:1.27", json!({}))), None);
        let own = evaluator_with(&[policy("default").as_str()], context.clone());
        let verdict = validate(&own, &request);
        assert!(!verdict.allowed, "its own namespace's ConfigMap is read");
        assert_eq!(verdict.results[0].result, RuleResult::Fail);

        let other = evaluator_with(&[policy("kube-system").as_str()], context);
        let verdict = validate(&other, &request);
        assert_eq!(verdict.results[0].result, RuleResult::Error);
        assert!(
            verdict.results[0]
                .message
                .contains("configMap namespace \"kube-system\" is different from the policy namespace \"default\""),
            "{}",
            verdict.results[0].message
        );
        assert!(
            !verdict.results[0].message.contains("nobody"),
            "no data leaks"
        );
    }
}
