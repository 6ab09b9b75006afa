//! One existing resource through the background policies, as Kyverno's background scan does:
//! validate (and verifyImages) rules of policies with `background: true`, no admission user
//! (rules that select by user, group or role do not match), the resource evaluated as it is
//! stored, exceptions applied. Pure: lookups go through the given [`ContextSource`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use bylaw_api::policyreport::{PolicyReportResult, Timestamp};
use bylaw_engine::compile::CompiledPolicy;
use bylaw_engine::context::request_context_without_objects;
use bylaw_engine::engine::{unevaluated_rules, validate_with_context_mut, PolicySet, RequestMemo};
use bylaw_engine::exceptions::CompiledException;
use bylaw_engine::request::{metadata_str, Request};
use bylaw_engine::response::{MessageFormat, PolicyResponse};
use bylaw_runtime::context_scope::{ContextBudget, PolicyScope, DEFAULT_MAX_CONTEXT_BYTES};
use bylaw_runtime::sources::ContextSource;
use serde_json::Value;

use crate::results::{background_results, PolicyFacts, PolicyKey, ResultFilter};

/// One scanned policy with what reports need of it, computed once per policy set rather than
/// once per scanned object.
#[derive(Debug, Clone)]
pub struct ScannedPolicy {
    pub policy: Arc<CompiledPolicy>,
    pub facts: PolicyFacts,
    /// It has rules bylaw reports as errors without evaluating (verifyImages).
    pub has_unsupported: bool,
}

/// The policies a background scan evaluates.
#[derive(Debug, Default, Clone)]
pub struct ScanPolicies {
    pub policies: Vec<ScannedPolicy>,
    /// Exceptions apply to every policy.
    pub exceptions: Arc<Vec<CompiledException>>,
    /// Whether some policy or exception reads `images` (the context must hold it then).
    uses_images: bool,
}

/// Whether `policy` has rules a background scan evaluates.
pub fn is_scanned(policy: &CompiledPolicy) -> bool {
    policy.background
        && crate::results::reports_enabled(policy)
        && (policy.has_validate() || !policy.unsupported_rules().is_empty())
}

impl ScanPolicies {
    /// The scanned part of `set` (exceptions kept whole).
    pub fn of(set: &PolicySet) -> ScanPolicies {
        ScanPolicies {
            policies: set
                .policies
                .iter()
                .filter(|p| is_scanned(p))
                .map(|p| ScannedPolicy {
                    policy: Arc::clone(p),
                    facts: PolicyFacts::of(p),
                    has_unsupported: !p.unsupported_rules().is_empty(),
                })
                .collect(),
            exceptions: Arc::new(set.exceptions.clone()),
            uses_images: set.uses_images(),
        }
    }

    /// Only the policies `wanted` names.
    pub fn only(&self, wanted: impl Fn(&PolicyKey) -> bool) -> ScanPolicies {
        ScanPolicies {
            policies: self
                .policies
                .iter()
                .filter(|p| wanted(&p.facts.key))
                .cloned()
                .collect(),
            exceptions: Arc::clone(&self.exceptions),
            uses_images: self.uses_images,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }
}

/// One policy's verdict on one resource.
#[derive(Debug, Clone)]
pub struct PolicyScan<'p> {
    pub scanned: &'p ScannedPolicy,
    /// The engine's rule responses (for metrics).
    pub response: PolicyResponse,
    /// What the report records (after the result filter).
    pub results: Vec<PolicyReportResult>,
    pub elapsed: Duration,
}

/// Evaluates every policy of `policies` against `object`; a policy that does not select the
/// resource yields an empty result list (so stale results are removed).
pub fn scan_object<'p>(
    policies: &'p ScanPolicies,
    object: Value,
    context: &dyn ContextSource,
    filter: ResultFilter,
    messages: MessageFormat,
    at: Timestamp,
) -> Vec<PolicyScan<'p>> {
    let mut request = Request::create(object);
    let labels_of = if request.kind.kind == "Namespace" && request.kind.group.is_empty() {
        metadata_str(&request.object, "name")
    } else {
        metadata_str(&request.object, "namespace")
    };
    if !labels_of.is_empty() {
        request.namespace_labels = context.namespace_labels(labels_of);
    }
    // Only validation reads it, so the object is read from the request rather than copied.
    let mut document = request_context_without_objects(&request, policies.uses_images);
    let budget = ContextBudget::new(DEFAULT_MAX_CONTEXT_BYTES);
    let memo = RequestMemo::new(&request);
    let mut scans = Vec::with_capacity(policies.policies.len());
    for scanned in &policies.policies {
        let started = Instant::now();
        let policy = scanned.policy.as_ref();
        let scope = PolicyScope::new(context, policy.namespace.as_deref(), &budget);
        let mut response = if policy.has_validate() {
            validate_with_context_mut(
                policy,
                &request,
                &mut document,
                &memo,
                &scope,
                &policies.exceptions,
            )
        } else {
            PolicyResponse {
                policy: policy.name.clone(),
                policy_namespace: policy.namespace.clone(),
                rules: Vec::new(),
            }
        };
        if scanned.has_unsupported {
            response
                .rules
                .extend(unevaluated_rules(policy, &request).rules);
        }
        let results = background_results(policy, &scanned.facts, &response, at, filter, messages);
        scans.push(PolicyScan {
            scanned,
            response,
            results,
            elapsed: started.elapsed(),
        });
    }
    scans
}
