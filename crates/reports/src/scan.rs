//! One existing resource through the background policies, as Kyverno's background scan does:
//! validate (and verifyImages) rules of policies with `background: true`, no admission user
//! (rules that select by user, group or role do not match), the resource evaluated as it is
//! stored, exceptions applied. Pure: lookups go through the given [`ContextSource`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bylaw_api::policyreport::{PolicyReportResult, Timestamp};
use bylaw_engine::compile::CompiledPolicy;
use bylaw_engine::engine::{unevaluated_rules, validate_with_context_mut, PolicySet};
use bylaw_engine::request::{metadata_str, Request};
use bylaw_engine::response::PolicyResponse;
use bylaw_runtime::context_scope::{ContextBudget, PolicyScope, DEFAULT_MAX_CONTEXT_BYTES};
use bylaw_runtime::sources::ContextSource;
use serde_json::Value;

use crate::results::{background_results, PolicyFacts, PolicyKey, ResultFilter};

/// The policies a background scan evaluates, with their report facts.
#[derive(Debug, Default, Clone)]
pub struct ScanPolicies {
    pub set: Arc<PolicySet>,
    pub facts: HashMap<PolicyKey, PolicyFacts>,
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
        let policies: Vec<Arc<CompiledPolicy>> = set
            .policies
            .iter()
            .filter(|p| is_scanned(p))
            .cloned()
            .collect();
        let facts = policies
            .iter()
            .map(|p| (PolicyKey::of_policy(p), PolicyFacts::of(p)))
            .collect();
        ScanPolicies {
            set: Arc::new(PolicySet {
                policies,
                exceptions: set.exceptions.clone(),
            }),
            facts,
        }
    }

    /// Only the policies `wanted` names.
    pub fn only(&self, wanted: impl Fn(&PolicyKey) -> bool) -> ScanPolicies {
        let policies: Vec<Arc<CompiledPolicy>> = self
            .set
            .policies
            .iter()
            .filter(|p| wanted(&PolicyKey::of_policy(p)))
            .cloned()
            .collect();
        ScanPolicies {
            facts: self
                .facts
                .iter()
                .filter(|(k, _)| wanted(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            set: Arc::new(PolicySet {
                policies,
                exceptions: self.set.exceptions.clone(),
            }),
        }
    }
}

/// One policy's verdict on one resource.
#[derive(Debug, Clone)]
pub struct PolicyScan<'p> {
    pub policy: &'p CompiledPolicy,
    pub key: PolicyKey,
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
    object: &Value,
    context: &dyn ContextSource,
    filter: ResultFilter,
    at: Timestamp,
) -> Vec<PolicyScan<'p>> {
    let mut request = Request::create(object.clone());
    let labels_of = if request.kind.kind == "Namespace" && request.kind.group.is_empty() {
        metadata_str(object, "name")
    } else {
        metadata_str(object, "namespace")
    };
    if !labels_of.is_empty() {
        request.namespace_labels = context.namespace_labels(labels_of);
    }
    let set = &policies.set;
    let mut document = set.context_for(&request);
    let budget = ContextBudget::new(DEFAULT_MAX_CONTEXT_BYTES);
    let mut scans = Vec::with_capacity(set.policies.len());
    for policy in &set.policies {
        let started = Instant::now();
        let key = PolicyKey::of_policy(policy);
        let scope = PolicyScope::new(context, policy.namespace.as_deref(), &budget);
        let mut response = if policy.has_validate() {
            validate_with_context_mut(policy, &request, &mut document, &scope, &set.exceptions)
        } else {
            PolicyResponse {
                policy: policy.name.clone(),
                policy_namespace: policy.namespace.clone(),
                rules: Vec::new(),
            }
        };
        if !policy.unsupported_rules().is_empty() {
            response
                .rules
                .extend(unevaluated_rules(policy, &request).rules);
        }
        let facts = policies
            .facts
            .get(&key)
            .cloned()
            .unwrap_or_else(|| PolicyFacts::of(policy));
        let results = background_results(policy, &facts, &response, at, filter);
        scans.push(PolicyScan {
            policy,
            key,
            response,
            results,
            elapsed: started.elapsed(),
        });
    }
    scans
}
