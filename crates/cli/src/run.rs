//! One resource through every policy, in Kyverno's CLI order: all mutations first (each policy
//! sees the ones before), then validation and generation on the mutated resource. `bylaw apply`
//! and `bylaw test` both report from these runs.

use bylaw_engine::compile::CompiledPolicy;
use bylaw_engine::context::request_context;
use bylaw_engine::engine::{
    generate_policy, mutate_policy, unevaluated_rules, validate_with_variables,
};
use bylaw_engine::generate::{has_generate, ObjectStore};
use bylaw_engine::request::{metadata_str, GroupVersionKind, Operation, Request, UserInfo};
use bylaw_engine::response::PolicyResponse;
use bylaw_engine::validate::apply_variables;
use serde_json::Value;

use crate::load::{PolicyBundle, Values};
use crate::test_cmd::Cluster;

/// Which kind of rules a run evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Mutate,
    Validate,
    Generate,
    /// Rules bylaw cannot evaluate (`verifyImages`): each selected one is an error result.
    Unevaluated,
}

/// One policy's rules of one phase on the resource.
pub struct PolicyRun<'p> {
    pub policy: &'p CompiledPolicy,
    pub phase: Phase,
    pub response: PolicyResponse,
    /// The resource after this run (after this policy's mutations, for `Mutate`).
    pub resource: Value,
    /// `(rule, object)` for each object a generate rule produced.
    pub generated: Vec<(String, Value)>,
    /// Labels of the resource's namespace, as the request saw them.
    pub namespace_labels: Option<std::collections::BTreeMap<String, String>>,
}

/// Runs every policy of `bundle` against `object`. Generate rules see a cluster holding the
/// mutated resource and `existing` (clone sources, other inputs).
pub fn run_resource<'p>(
    bundle: &'p PolicyBundle,
    values: &Values,
    user: &UserInfo,
    object: &Value,
    existing: &[Value],
) -> Vec<PolicyRun<'p>> {
    let name = metadata_str(object, "name");
    let mut runs = Vec::new();
    let mut current = object.clone();
    for policy in bundle.policies.iter().filter(|p| p.has_mutate()) {
        let vars = values.request_variables(&policy.name, name);
        let request = build_request(&current, &vars, user, values);
        let mut context = request_context(&request);
        apply_variables(&mut context, &vars);
        let (response, patched) = mutate_policy(
            policy,
            &request,
            &current,
            &mut context,
            values,
            &bundle.exceptions,
        );
        current = patched;
        runs.push(PolicyRun {
            policy,
            phase: Phase::Mutate,
            response,
            resource: current.clone(),
            generated: Vec::new(),
            namespace_labels: request.namespace_labels,
        });
    }
    for policy in bundle.policies.iter().filter(|p| p.has_validate()) {
        let vars = values.request_variables(&policy.name, name);
        let request = build_request(&current, &vars, user, values);
        let response = validate_with_variables(policy, &request, &vars, values, &bundle.exceptions);
        runs.push(PolicyRun {
            policy,
            phase: Phase::Validate,
            response,
            resource: current.clone(),
            generated: Vec::new(),
            namespace_labels: request.namespace_labels,
        });
    }
    for policy in bundle
        .policies
        .iter()
        .filter(|p| !p.unsupported_rules().is_empty())
    {
        let vars = values.request_variables(&policy.name, name);
        let request = build_request(&current, &vars, user, values);
        let response = unevaluated_rules(policy, &request);
        if !response.rules.is_empty() {
            runs.push(PolicyRun {
                policy,
                phase: Phase::Unevaluated,
                response,
                resource: current.clone(),
                generated: Vec::new(),
                namespace_labels: request.namespace_labels,
            });
        }
    }
    let mut objects = vec![current.clone()];
    objects.extend(existing.iter().filter(|o| o.is_object()).cloned());
    let cluster = Cluster {
        values,
        objects: ObjectStore(objects),
    };
    for policy in bundle.policies.iter().filter(|p| has_generate(p)) {
        let vars = values.request_variables(&policy.name, name);
        let request = build_request(&current, &vars, user, values);
        let mut context = request_context(&request);
        apply_variables(&mut context, &vars);
        let generation = generate_policy(policy, &request, &context, &cluster, &bundle.exceptions);
        runs.push(PolicyRun {
            policy,
            phase: Phase::Generate,
            generated: generation
                .rules
                .iter()
                .flat_map(|r| {
                    r.resources
                        .iter()
                        .map(|g| (r.rule.clone(), g.object.clone()))
                })
                .collect(),
            response: generation.response,
            resource: current.clone(),
            namespace_labels: request.namespace_labels,
        });
    }
    runs
}

/// The request evaluated for a resource: CREATE unless the values file says otherwise
/// (`request.operation`); DELETE evaluates the resource as the old object.
pub fn build_request(
    object: &Value,
    vars: &serde_json::Map<String, Value>,
    user: &UserInfo,
    values: &Values,
) -> Request {
    let operation = vars
        .get("request.operation")
        .and_then(Value::as_str)
        .and_then(Operation::parse)
        .unwrap_or(Operation::Create);
    let mut request = Request::create(object.clone());
    request.kind = GroupVersionKind::of(object);
    request.operation = operation;
    match operation {
        Operation::Delete => {
            request.old_object = Some(object.clone());
            request.object = Value::Null;
        }
        Operation::Update => request.old_object = Some(object.clone()),
        _ => {}
    }
    request.user = user.clone();
    let ns_key = if request.kind.kind == "Namespace" {
        metadata_str(object, "name")
    } else {
        metadata_str(object, "namespace")
    };
    request.namespace_labels = values.namespace_labels.get(ns_key).cloned();
    request
}
