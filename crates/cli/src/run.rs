//! One resource through every policy, in Kyverno's CLI order: all mutations first (each policy
//! sees the ones before), then validation and generation on the mutated resource. `bylaw apply`
//! and `bylaw test` both report from these runs.

use std::rc::Rc;

use bylaw_engine::compile::CompiledPolicy;
use bylaw_engine::context::{add_variable, request_context};
use bylaw_engine::engine::{
    generate_policy, mutate_existing_policy, mutate_policy, unevaluated_rules,
    validate_with_context_mut, RequestMemo,
};
use bylaw_engine::generate::{has_generate, ObjectStore};
use bylaw_engine::request::{metadata_str, Operation, Request, UserInfo};
use bylaw_engine::response::{PolicyResponse, RuleResponse};
use bylaw_engine::validate::apply_variables;
use serde_json::{Map, Value};

use crate::cluster::{Cluster, ClusterData};
use crate::load::{PolicyBundle, Values};

/// Which kind of rules a run evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Mutate,
    Validate,
    Generate,
    /// Mutate-existing rules: they change other objects, not the resource.
    MutateExisting,
    /// Rules bylaw cannot evaluate (`verifyImages`): each selected one is an error result.
    Unevaluated,
}

/// One policy's rules of one phase on the resource.
pub struct PolicyRun<'p> {
    pub policy: &'p CompiledPolicy,
    pub phase: Phase,
    pub response: PolicyResponse,
    /// The resource after this run (after this policy's mutations, for `Mutate`); shared by
    /// the runs that left it unchanged.
    pub resource: Rc<Value>,
    /// `(rule, object)` for each object a generate rule produced.
    pub generated: Vec<(String, Value)>,
    /// The response and the result for every existing object a mutate-existing rule changed.
    pub patched_targets: Vec<(RuleResponse, Value)>,
    /// Labels of the resource's namespace, as the request saw them.
    pub namespace_labels: Option<std::collections::BTreeMap<String, String>>,
}

/// Where a resource is evaluated: the values, the user, the pretend cluster context entries
/// read, and the objects generate rules see besides the resource (clone sources, other inputs).
pub struct Setting<'a> {
    pub values: &'a Values,
    pub user: &'a UserInfo,
    pub cluster: &'a ClusterData,
    pub existing: &'a [Value],
}

/// Runs every policy of `bundle` against `object`, as a request for `operation` (when `None`:
/// the values file's `request.operation`, else CREATE). Generate rules see a cluster holding the
/// mutated resource and the setting's existing objects.
pub fn run_resource<'p>(
    bundle: &'p PolicyBundle,
    setting: &Setting<'_>,
    object: &Value,
    operation: Option<Operation>,
) -> Vec<PolicyRun<'p>> {
    let Setting {
        values,
        user,
        cluster,
        existing,
    } = *setting;
    let provider = Cluster {
        values,
        data: cluster,
        objects: ObjectStore::default(),
    };
    let name = metadata_str(object, "name");
    let variables = |policy: &CompiledPolicy| {
        let mut vars = values.request_variables(&policy.name, name);
        // An operation asked for explicitly wins over the values file, as in Kyverno's CLI.
        if let Some(operation) = operation {
            vars.insert(
                "request.operation".to_owned(),
                Value::String(operation.as_str().to_owned()),
            );
        }
        vars
    };
    let mut runs = Vec::new();
    let mut current = Rc::new(object.clone());
    for policy in bundle.policies.iter().filter(|p| p.has_mutate()) {
        let vars = variables(policy);
        let request = build_request(&current, &vars, user, values);
        // A deleted object is not mutated.
        if request.operation == Operation::Delete {
            continue;
        }
        let mut context = request_context(&request);
        apply_variables(&mut context, &vars);
        let (response, patched) = mutate_policy(
            policy,
            &request,
            &request.object,
            &mut context,
            &provider,
            &bundle.exceptions,
        );
        current = Rc::new(patched);
        runs.push(PolicyRun {
            policy,
            phase: Phase::Mutate,
            response,
            resource: Rc::clone(&current),
            generated: Vec::new(),
            patched_targets: Vec::new(),
            namespace_labels: request.namespace_labels,
        });
    }
    // The request and its context are built once and shared by every policy whose variables
    // are the same (all of them, without a values file naming policies): the engine leaves
    // the context as it found it.
    let mut prepared: Option<(Map<String, Value>, Request, Value)> = None;
    for policy in bundle.policies.iter().filter(|p| p.has_validate()) {
        let vars = variables(policy);
        let (_, request, context) = match prepared {
            Some(ref mut same) if same.0 == vars => same,
            _ => {
                let request = build_request(&current, &vars, user, values);
                let mut context = request_context(&request);
                apply_variables(&mut context, &vars);
                prepared.insert((vars, request, context))
            }
        };
        let response = validate_with_context_mut(
            policy,
            request,
            context,
            &RequestMemo::new(request),
            &provider,
            &bundle.exceptions,
        );
        runs.push(PolicyRun {
            policy,
            phase: Phase::Validate,
            response,
            resource: Rc::clone(&current),
            generated: Vec::new(),
            patched_targets: Vec::new(),
            namespace_labels: request.namespace_labels.clone(),
        });
    }
    for policy in bundle
        .policies
        .iter()
        .filter(|p| !p.unsupported_rules().is_empty())
    {
        let vars = variables(policy);
        let request = build_request(&current, &vars, user, values);
        let response = unevaluated_rules(policy, &request);
        if !response.rules.is_empty() {
            runs.push(PolicyRun {
                policy,
                phase: Phase::Unevaluated,
                response,
                resource: Rc::clone(&current),
                generated: Vec::new(),
                patched_targets: Vec::new(),
                namespace_labels: request.namespace_labels,
            });
        }
    }
    // Generate rules see the resource and every input object; copied only when some policy
    // generates, so a run without generate rules stays linear in the number of resources.
    let mut generate_provider = None;
    for policy in bundle.policies.iter().filter(|p| has_generate(p)) {
        let generate_provider = generate_provider.get_or_insert_with(|| {
            let mut objects = vec![Value::clone(&current)];
            objects.extend(existing.iter().filter(|o| o.is_object()).cloned());
            Cluster {
                values,
                data: cluster,
                objects: ObjectStore(objects),
            }
        });
        let vars = variables(policy);
        let request = build_request(&current, &vars, user, values);
        let mut context = request_context(&request);
        apply_variables(&mut context, &vars);
        let generation = generate_policy(
            policy,
            &request,
            &context,
            &*generate_provider,
            &bundle.exceptions,
        );
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
            patched_targets: Vec::new(),
            resource: Rc::clone(&current),
            namespace_labels: request.namespace_labels,
        });
    }
    // Mutate-existing rules act on the suite's existing objects, as Kyverno's CLI runs them
    // against its fake cluster; the resource itself stays as it is.
    for policy in bundle.policies.iter().filter(|p| p.has_mutate()) {
        let vars = variables(policy);
        let request = build_request(&current, &vars, user, values);
        let mut context = request_context(&request);
        apply_variables(&mut context, &vars);
        let mutations = mutate_existing_policy(
            policy,
            &request,
            &mut context,
            &provider,
            &bundle.exceptions,
            &cluster.objects.0,
        );
        if mutations.is_empty() {
            continue;
        }
        let mut response = PolicyResponse {
            policy: policy.name.clone(),
            policy_namespace: policy.namespace.clone(),
            rules: Vec::new(),
        };
        let mut patched_targets = Vec::new();
        for mutation in mutations {
            if let Some(patched) = mutation.patched {
                patched_targets.push((mutation.response.clone(), patched));
            }
            response.rules.push(mutation.response);
        }
        runs.push(PolicyRun {
            policy,
            phase: Phase::MutateExisting,
            response,
            resource: Rc::clone(&current),
            generated: Vec::new(),
            patched_targets,
            namespace_labels: request.namespace_labels,
        });
    }
    runs
}

/// The request evaluated for a resource, shaped as the API server would send it (and as
/// Kyverno's CLI simulates it): CREATE unless `request.operation` in `vars` says otherwise;
/// UPDATE has the resource as both object and old object, DELETE only as the old object.
/// Variables that set fields of `request.object` or `request.oldObject` change those objects, so
/// matching and patterns see them. A document of a subresource's kind (values file
/// `subresources`) is a request for its parent resource and that subresource.
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
    let mut request = Request::create(Value::Null);
    (request.kind, request.subresource) = values.resource_kind(object);
    request.operation = operation;
    if vars.keys().any(|k| addresses_objects(k)) {
        let (new_object, old_object) = request_objects(object, vars);
        match operation {
            Operation::Delete => request.old_object = Some(old_object),
            Operation::Update => {
                request.object = new_object;
                request.old_object = Some(old_object);
            }
            Operation::Create | Operation::Connect => request.object = new_object,
        }
    } else {
        // Copied only where the operation puts the resource.
        match operation {
            Operation::Delete => request.old_object = Some(object.clone()),
            Operation::Update => {
                request.object = object.clone();
                request.old_object = Some(object.clone());
            }
            Operation::Create | Operation::Connect => request.object = object.clone(),
        }
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

/// Whether a variable sets a field of the request's new or old object.
fn addresses_objects(key: &str) -> bool {
    key.starts_with("request.object") || key.starts_with("request.oldObject")
}

/// The new and old object of a request for `object`, with the variables that address them
/// (`request.object.…`, `request.oldObject.…`) applied.
fn request_objects(object: &Value, vars: &serde_json::Map<String, Value>) -> (Value, Value) {
    let mut doc = serde_json::json!({"request": {"object": object, "oldObject": object}});
    for (key, value) in vars.iter().filter(|(k, _)| addresses_objects(k)) {
        add_variable(&mut doc, key, value.clone());
    }
    let mut take = |field: &str| {
        doc.pointer_mut(&format!("/request/{field}"))
            .map(Value::take)
            .unwrap_or(Value::Null)
    };
    (take("object"), take("oldObject"))
}
