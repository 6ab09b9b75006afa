//! The admission contract between the webhook server and whatever evaluates policies.
//!
//! The server only knows [`AdmissionEvaluator`]; the engine adapter implements it. Everything here is
//! plain data so it can be built in tests without an engine, and [`ReviewRequest`] serializes to the
//! same camelCase shape as the `request` field of an `admission.k8s.io/v1` AdmissionReview, so an
//! adapter can hand `serde_json::to_value(request)` to JMESPath as the `request` variable.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Which webhook a review arrived on; the evaluator runs the rules that belong to that phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// The mutating webhook: mutate (and image verification) rules, may return a patch.
    Mutate,
    /// The validating webhook: validate rules, may deny.
    Validate,
}

impl Phase {
    /// Lower-case name, as used in paths and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Mutate => "mutate",
            Phase::Validate => "validate",
        }
    }

    /// Value of the `request_webhook` metric label (Kyverno's spelling).
    pub fn webhook_label(self) -> &'static str {
        match self {
            Phase::Mutate => "MutatingWebhookConfiguration",
            Phase::Validate => "ValidatingWebhookConfiguration",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Group, version and kind of an object (`{"group":"apps","version":"v1","kind":"Deployment"}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GroupVersionKind {
    /// API group; empty for the core group.
    #[serde(default)]
    pub group: String,
    /// API version, e.g. `v1`.
    #[serde(default)]
    pub version: String,
    /// Kind, e.g. `Pod`.
    #[serde(default)]
    pub kind: String,
}

impl GroupVersionKind {
    /// The `apiVersion` string: `v1` for the core group, `group/version` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// Group, version and resource (plural) being requested (`{"group":"","version":"v1","resource":"pods"}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GroupVersionResource {
    /// API group; empty for the core group.
    #[serde(default)]
    pub group: String,
    /// API version.
    #[serde(default)]
    pub version: String,
    /// Plural resource name, e.g. `pods`.
    #[serde(default)]
    pub resource: String,
}

/// The operation being admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Operation {
    /// `CREATE`
    Create,
    /// `UPDATE`
    Update,
    /// `DELETE`
    Delete,
    /// `CONNECT`
    Connect,
}

impl Operation {
    /// Wire spelling: `CREATE`, `UPDATE`, `DELETE`, `CONNECT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }

    /// Value of the `resource_request_operation` metric label (lower case, as Kyverno).
    pub fn metric_label(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete => "delete",
            Operation::Connect => "connect",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The user that made the request, as authenticated by the API server.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// User name, e.g. `system:serviceaccount:default:builder`.
    #[serde(default)]
    pub username: String,
    /// Unique user id; often empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// Groups the user belongs to.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Extra authenticator-provided attributes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

/// One admission request, decoded from an AdmissionReview's `request` field.
///
/// Objects stay raw JSON (`serde_json::Value`) so policies see exactly what the API server sent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewRequest {
    /// Round-trip id; the response carries the same value.
    pub uid: String,
    /// Type of the object as submitted to the webhook (after any conversion).
    pub kind: GroupVersionKind,
    /// Resource being requested.
    pub resource: GroupVersionResource,
    /// Sub-resource, e.g. `status` or `scale`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_resource: Option<String>,
    /// Type of the object in the original API request, when it differs from `kind`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_kind: Option<GroupVersionKind>,
    /// Resource of the original API request, when it differs from `resource`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_resource: Option<GroupVersionResource>,
    /// Sub-resource of the original API request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_sub_resource: Option<String>,
    /// Object name; may be empty on CREATE with `generateName`.
    #[serde(default)]
    pub name: String,
    /// Namespace; `None` for cluster-scoped resources (an empty string on the wire is read as `None`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "non_empty_string"
    )]
    pub namespace: Option<String>,
    /// CREATE, UPDATE, DELETE or CONNECT.
    pub operation: Operation,
    /// Who asked.
    #[serde(default)]
    pub user_info: UserInfo,
    /// The new object (absent on DELETE).
    #[serde(default, deserialize_with = "review_object")]
    pub object: Option<serde_json::Value>,
    /// The existing object (UPDATE and DELETE).
    #[serde(default, deserialize_with = "review_object")]
    pub old_object: Option<serde_json::Value>,
    /// True when the request will not be persisted.
    #[serde(default)]
    pub dry_run: bool,
    /// Operation options, e.g. a `CreateOptions` object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<serde_json::Value>,
    /// `metadata.managedFields` were left out of `object` and `oldObject` when decoding
    /// ([`decoding_reviews`]), because no served policy could read them.
    #[serde(skip)]
    pub managed_fields_left_out: bool,
}

thread_local! {
    /// Whether [`ReviewRequest`]s decoded on this thread now leave out the objects'
    /// managedFields; set by [`decoding_reviews`].
    static LEAVE_OUT_MANAGED_FIELDS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `decode`, in which the [`ReviewRequest`]s decoded on this thread leave
/// `metadata.managedFields` out of `object` and `oldObject` when `leave_out_managed_fields`.
/// They are still read as JSON (an ill-formed or too deep body is refused as before), only not
/// built: the API server sends them with every object, and building and dropping them is
/// about a quarter of what a review costs when no policy can read them
/// ([`bylaw_engine::engine::PolicySet::reads_managed_fields`]). The caller marks the decoded
/// request ([`ReviewRequest::managed_fields_left_out`]).
pub fn decoding_reviews<T>(leave_out_managed_fields: bool, decode: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            LEAVE_OUT_MANAGED_FIELDS.set(self.0);
        }
    }
    let _restore = Restore(LEAVE_OUT_MANAGED_FIELDS.replace(leave_out_managed_fields));
    decode()
}

fn review_object<'de, D>(deserializer: D) -> Result<Option<serde_json::Value>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    if LEAVE_OUT_MANAGED_FIELDS.get() {
        bylaw_engine::json::deserialize_optional_object_without_managed_fields(deserializer)
    } else {
        bylaw_engine::json::deserialize_optional_value(deserializer)
    }
}

fn non_empty_string<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let value: Option<String> = Option::deserialize(deserializer)?;
    Ok(value.filter(|s| !s.is_empty()))
}

impl ReviewRequest {
    /// The object policies look at: `object`, or `oldObject` on DELETE.
    pub fn subject(&self) -> Option<&serde_json::Value> {
        match self.operation {
            Operation::Delete => self.old_object.as_ref().or(self.object.as_ref()),
            _ => self.object.as_ref().or(self.old_object.as_ref()),
        }
    }
}

/// Outcome of one rule, with Kyverno's five statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleResult {
    /// The resource satisfies the rule (or the mutation applied).
    Pass,
    /// The resource violates the rule.
    Fail,
    /// The resource violates a rule whose failure only warns.
    Warn,
    /// The rule could not be evaluated.
    Error,
    /// The rule did not apply (preconditions false, exception, …).
    Skip,
}

impl RuleResult {
    /// Lower-case name, also the `rule_result` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleResult::Pass => "pass",
            RuleResult::Fail => "fail",
            RuleResult::Warn => "warn",
            RuleResult::Error => "error",
            RuleResult::Skip => "skip",
        }
    }
}

/// Kind of rule that produced an outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RuleType {
    /// `validate`
    Validate,
    /// `mutate`
    Mutate,
    /// `generate`
    Generate,
    /// `verifyImages`
    VerifyImages,
}

impl RuleType {
    /// Value of the `rule_type` metric label (Kyverno's spelling).
    pub fn metric_label(self) -> &'static str {
        match self {
            RuleType::Validate => "validate",
            RuleType::Mutate => "mutate",
            RuleType::Generate => "generate",
            RuleType::VerifyImages => "imageVerify",
        }
    }
}

/// What one rule of one policy decided about the request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuleOutcome {
    /// Policy name.
    pub policy: std::sync::Arc<str>,
    /// Namespace of a namespaced `Policy`; `None` for a `ClusterPolicy`.
    pub policy_namespace: Option<String>,
    /// Rule name.
    pub rule: std::sync::Arc<str>,
    /// Kind of rule.
    pub rule_type: RuleType,
    /// Pass, fail, warn, error or skip.
    pub result: RuleResult,
    /// Human-readable message (the rule's message on failure); empty for a pass, which
    /// reports, events and logs show without one.
    pub message: String,
    /// True when a failure blocks the request (`Enforce`), false for `Audit`.
    pub enforce: bool,
    /// The policy's `background` setting.
    pub background: bool,
    /// Time spent evaluating this rule.
    pub duration: Duration,
}

/// The evaluator's answer for one review.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verdict {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Message shown to the user when denied.
    pub message: Option<String>,
    /// Warnings returned to the client (audit failures, `warn` results, …).
    pub warnings: Vec<String>,
    /// JSON patch to apply to `object` (mutate phase only).
    pub patch: Option<json_patch::Patch>,
    /// Every rule outcome, for metrics and reports.
    pub results: Vec<RuleOutcome>,
}

impl Verdict {
    /// An allowing verdict with nothing else to say.
    pub fn allow() -> Self {
        Verdict {
            allowed: true,
            ..Verdict::default()
        }
    }

    /// A denying verdict with a message for the user.
    pub fn deny(message: impl Into<String>) -> Self {
        Verdict {
            allowed: false,
            message: Some(message.into()),
            ..Verdict::default()
        }
    }
}

/// The request could not be evaluated; the endpoint's failure policy decides whether it is admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// Policies have not been loaded yet.
    #[error("policies are not loaded yet")]
    NotReady,
    /// Evaluation noticed the deadline passed and gave up.
    #[error("evaluation deadline exceeded")]
    DeadlineExceeded,
    /// The request is well-formed JSON but cannot be evaluated (e.g. the object is not an object).
    #[error("request cannot be evaluated: {0}")]
    InvalidRequest(String),
    /// The request was decoded without its objects' managedFields, and the policies served
    /// now could read them (they changed since it was decoded): decode it again whole.
    #[error("the request was decoded without managedFields, which the policies now read")]
    ManagedFieldsLeftOut,
    /// Anything else; the text goes to logs only.
    #[error("internal evaluation error: {0}")]
    Internal(String),
}

impl EvalError {
    /// Short, bounded name for metric labels and structured logs.
    pub fn kind(&self) -> &'static str {
        match self {
            EvalError::NotReady => "not_ready",
            EvalError::DeadlineExceeded => "deadline_exceeded",
            EvalError::InvalidRequest(_) => "invalid_request",
            EvalError::ManagedFieldsLeftOut => "managed_fields_left_out",
            EvalError::Internal(_) => "internal",
        }
    }
}

/// A policy's `failurePolicy`, re-exported for the webhook (which does not use the engine).
pub use bylaw_engine::compile::FailurePolicy;

/// What [`AdmissionEvaluator::try_evaluate_inline`] did with a review.
#[derive(Debug)]
pub enum InlineEvaluation {
    /// Evaluated: the answer the blocking path would have given.
    Evaluated(Result<Verdict, EvalError>),
    /// Not evaluated, or the work was abandoned at the budget; the review comes back to be
    /// evaluated on the blocking pool. Its objects may have had the review's namespace filled
    /// in (as evaluation does anyway) and the ones the operation does not read may be gone.
    Declined(Box<ReviewRequest>),
}

/// Evaluates admission requests against the loaded policies.
///
/// Implementations must be cheap to call concurrently: the server calls `evaluate` from blocking
/// threads, up to its concurrency limit at once, `try_evaluate_inline` from its async threads,
/// and calls `is_ready` on every `/readyz` probe.
pub trait AdmissionEvaluator: Send + Sync + 'static {
    /// Evaluates `request` for `phase`. Should return [`EvalError::DeadlineExceeded`] rather than keep
    /// working once `deadline` has passed; the server stops waiting at the deadline either way.
    fn evaluate(
        &self,
        phase: Phase,
        request: &ReviewRequest,
        deadline: Instant,
    ) -> Result<Verdict, EvalError>;

    /// Evaluates `request` against only the policies whose `failurePolicy` is
    /// `failure_policy`: bylaw registers one webhook per failure policy, so a resource that
    /// policies of both kinds select is reviewed twice, each policy once. The default evaluates
    /// every policy.
    fn evaluate_only(
        &self,
        phase: Phase,
        request: &ReviewRequest,
        deadline: Instant,
        failure_policy: FailurePolicy,
    ) -> Result<Verdict, EvalError> {
        let _ = failure_policy;
        self.evaluate(phase, request, deadline)
    }

    /// Evaluates a review the caller gives up, so that an implementation can move its objects
    /// into the evaluation instead of copying them; with `failure_policy`, only the policies
    /// with that `failurePolicy`, as [`AdmissionEvaluator::evaluate_only`]. The default
    /// evaluates the borrowed review.
    fn evaluate_owned(
        &self,
        phase: Phase,
        request: ReviewRequest,
        deadline: Instant,
        failure_policy: Option<FailurePolicy>,
    ) -> Result<Verdict, EvalError> {
        match failure_policy {
            Some(failure_policy) => self.evaluate_only(phase, &request, deadline, failure_policy),
            None => self.evaluate(phase, &request, deadline),
        }
    }

    /// Evaluates `request` as [`AdmissionEvaluator::evaluate_owned`] does, on the caller's
    /// (async) thread, when that is safe: nothing the policies for `phase` can run may wait on
    /// the cluster or the network, and the work ends by `budget`. Otherwise the review comes
    /// back [`InlineEvaluation::Declined`], and a result that would be cut short by `budget` is
    /// never returned. The default declines every review.
    fn try_evaluate_inline(
        &self,
        phase: Phase,
        request: ReviewRequest,
        budget: Instant,
        failure_policy: Option<FailurePolicy>,
    ) -> InlineEvaluation {
        let _ = (phase, budget, failure_policy);
        InlineEvaluation::Declined(Box::new(request))
    }

    /// Whether the policies served for `phase` could read `metadata.managedFields` of the
    /// request's objects. When not, the server decodes reviews without them
    /// ([`decoding_reviews`]); an evaluator then given such a review while serving policies
    /// that could read them answers [`EvalError::ManagedFieldsLeftOut`]. The default keeps
    /// them always.
    fn reads_managed_fields(&self, phase: Phase) -> bool {
        let _ = phase;
        true
    }

    /// True once policies are loaded and admission can be served.
    fn is_ready(&self) -> bool;

    /// Checks a policy object (ClusterPolicy or Policy as JSON). `Err` lists problems, each
    /// prefixed with its field path, e.g. `spec.rules[0].match: at least one kind is required`.
    fn validate_policy(&self, object: &serde_json::Value) -> Result<(), Vec<String>>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn review_request_reads_the_wire_shape_and_writes_it_back() {
        let wire = json!({
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "subResource": "scale",
            "requestKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
            "name": "web",
            "namespace": "team-a",
            "operation": "UPDATE",
            "userInfo": {"username": "admin", "groups": ["system:masters"], "extra": {"scopes": ["x"]}},
            "object": {"metadata": {"name": "web"}},
            "oldObject": {"metadata": {"name": "web"}},
            "dryRun": true,
            "options": {"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"}
        });
        let request: ReviewRequest = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(request.kind.api_version(), "apps/v1");
        assert_eq!(request.operation, Operation::Update);
        assert_eq!(request.sub_resource.as_deref(), Some("scale"));
        assert_eq!(request.namespace.as_deref(), Some("team-a"));
        assert!(request.dry_run);
        assert_eq!(serde_json::to_value(&request).unwrap(), wire);
    }

    #[test]
    fn empty_namespace_and_missing_fields_are_read_as_absent() {
        let request: ReviewRequest = serde_json::from_value(json!({
            "uid": "1",
            "kind": {"group": "", "version": "v1", "kind": "Namespace"},
            "resource": {"group": "", "version": "v1", "resource": "namespaces"},
            "namespace": "",
            "operation": "DELETE",
            "object": null,
            "oldObject": {"metadata": {"name": "gone"}}
        }))
        .unwrap();
        assert_eq!(request.namespace, None);
        assert_eq!(request.kind.api_version(), "v1");
        assert_eq!(request.name, "");
        assert_eq!(request.user_info, UserInfo::default());
        assert_eq!(
            request.subject(),
            Some(&json!({"metadata": {"name": "gone"}}))
        );
    }

    #[test]
    fn labels_use_kyverno_spellings() {
        assert_eq!(
            Phase::Validate.webhook_label(),
            "ValidatingWebhookConfiguration"
        );
        assert_eq!(Operation::Connect.metric_label(), "connect");
        assert_eq!(RuleType::VerifyImages.metric_label(), "imageVerify");
        assert_eq!(RuleResult::Warn.as_str(), "warn");
        assert_eq!(EvalError::DeadlineExceeded.kind(), "deadline_exceeded");
    }
}
