//! The entry point callers use: a set of compiled policies and exceptions evaluated against a
//! request, plus the mapping of rule outcomes to report results.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::compile::CompiledPolicy;
use crate::context::{request_context, ContextProvider};
use crate::exceptions::CompiledException;
use crate::request::Request;
use crate::response::{PolicyResponse, RuleResponse, RuleStatus};
use crate::validate::{apply_variables, validate_policy, Evaluation};

/// Compiled policies and exceptions, swapped whole when anything changes.
#[derive(Debug, Default, Clone)]
pub struct PolicySet {
    pub policies: Vec<Arc<CompiledPolicy>>,
    pub exceptions: Vec<CompiledException>,
}

impl PolicySet {
    pub fn new(policies: Vec<CompiledPolicy>, exceptions: Vec<CompiledException>) -> Self {
        PolicySet {
            policies: policies.into_iter().map(Arc::new).collect(),
            exceptions,
        }
    }

    /// Runs every policy's validate rules against the request.
    pub fn validate(
        &self,
        request: &Request,
        provider: &dyn ContextProvider,
    ) -> Vec<PolicyResponse> {
        let context = request_context(request);
        self.policies
            .iter()
            .filter(|p| p.has_validate())
            .map(|policy| {
                validate_with_context(policy, request, &context, provider, &self.exceptions)
            })
            .collect()
    }
}

/// Runs one policy's validate rules with a prepared context document.
pub fn validate_with_context(
    policy: &CompiledPolicy,
    request: &Request,
    context: &Value,
    provider: &dyn ContextProvider,
    exceptions: &[CompiledException],
) -> PolicyResponse {
    let eval = Evaluation {
        request,
        context,
        provider,
        exceptions,
    };
    validate_policy(policy, &eval)
}

/// Runs one policy's validate rules with extra request variables (values files, `--set`).
pub fn validate_with_variables(
    policy: &CompiledPolicy,
    request: &Request,
    variables: &Map<String, Value>,
    provider: &dyn ContextProvider,
    exceptions: &[CompiledException],
) -> PolicyResponse {
    let mut context = request_context(request);
    apply_variables(&mut context, variables);
    validate_with_context(policy, request, &context, provider, exceptions)
}

/// The result a PolicyReport (and `bylaw test`) records for a rule response: failures of a
/// policy annotated `policies.kyverno.io/scored: "false"` are warnings.
pub fn report_status(policy: &CompiledPolicy, rule: &RuleResponse) -> RuleStatus {
    match rule.status {
        RuleStatus::Fail if !policy.scored => RuleStatus::Warn,
        other => other,
    }
}

/// Whether a failing rule blocks (Enforce) or only reports (Audit) in a namespace: the rule's
/// own `failureAction` (and its overrides) win over the policy's `validationFailureAction`
/// (and its overrides).
pub fn effective_action(
    policy: &CompiledPolicy,
    rule_name: &str,
    namespace: &str,
    namespace_labels: Option<&std::collections::BTreeMap<String, String>>,
) -> crate::response::FailureAction {
    use crate::compile::{ActionOverride, RuleBody};
    let overridden = |overrides: &[ActionOverride]| {
        overrides.iter().find_map(|o| {
            let by_name = o
                .namespaces
                .iter()
                .any(|n| crate::wildcard::wildcard_match(n, namespace));
            let by_labels = match (&o.namespace_selector, namespace_labels) {
                (Some(sel), Some(labels)) => sel.matches(labels),
                _ => false,
            };
            (by_name || by_labels).then_some(o.action)
        })
    };
    let rule = policy.rules.iter().find(|r| r.name == rule_name);
    if let Some(RuleBody::Validate(v)) = rule.map(|r| &r.body) {
        if let Some(action) = overridden(&v.action_overrides) {
            return action;
        }
        if let Some(action) = v.failure_action {
            return action;
        }
    }
    overridden(&policy.action_overrides).unwrap_or(policy.validation_failure_action)
}
