//! A validation context holds only placeholders for the request's object and old object and
//! reads them from the request (`PolicySet::validation_context`). Every rule must answer as it
//! does over a full context document (`context::request_context`), whatever it reads or
//! writes under `request`; the answers are also checked against what Kyverno gives.

use bylaw_engine::compile::compile_policy;
use bylaw_engine::context::{request_context, NoContext};
use bylaw_engine::engine::{validate_with_context_mut, PolicySet, RequestMemo};
use bylaw_engine::exceptions::CompiledException;
use bylaw_engine::request::{Operation, Request};
use bylaw_engine::response::{PolicyResponse, RuleStatus};
use serde_json::{json, Value};

fn deny_rule(name: &str, context: Value, key: &str, value: Value) -> Value {
    json!({
        "name": name,
        "match": {"any": [{"resources": {"kinds": ["ConfigMap"]}}]},
        "context": context,
        "validate": {
            "message": "{{ request.object.metadata.name }}: {{ request.operation }}",
            "deny": {"conditions": {"any": [{"key": key, "operator": "Equals", "value": value}]}}
        }
    })
}

fn rules() -> Vec<Value> {
    vec![
        deny_rule(
            "reads-object",
            json!([]),
            "{{ request.object.data.mode }}",
            json!("debug"),
        ),
        deny_rule(
            "reads-old-object",
            json!([]),
            "{{ request.oldObject.data.mode || 'none' }}",
            json!("debug"),
        ),
        deny_rule(
            "whole-request",
            json!([]),
            "{{ length(keys(request)) > `5` && request.object.metadata.name }}",
            json!("settings"),
        ),
        deny_rule(
            "request-values",
            json!([]),
            "{{ length(request.*) > `3` }}",
            json!(true),
        ),
        deny_rule(
            "request-compared",
            json!([]),
            "{{ request == request && request.object != request.oldObject }}",
            json!(true),
        ),
        deny_rule(
            "root",
            json!([]),
            "{{ length(@.request.object.data) }}",
            json!(2),
        ),
        deny_rule(
            "writes-under-object",
            json!([{"name": "request.object.data.added", "variable": {"value": "yes"}}]),
            "{{ request.object.data.added }}-{{ request.object.data.mode }}",
            json!("yes-debug"),
        ),
        deny_rule(
            "replaces-request",
            json!([{"name": "request", "variable": {"value": {"object": null, "operation": "X"}}}]),
            "{{ request.object || 'gone' }}",
            json!("gone"),
        ),
        deny_rule(
            "variable-from-object",
            json!([{"name": "mode", "variable": {"jmesPath": "request.object.data.mode"}}]),
            "{{ mode }}",
            json!("debug"),
        ),
        // After the rules that wrote under `request`: their writes must not leak.
        deny_rule(
            "reads-again",
            json!([]),
            "{{ request.object.data.added || 'clean' }}",
            json!("clean"),
        ),
    ]
}

fn policy() -> Value {
    json!({
        "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
        "metadata": {"name": "settings"},
        "spec": {"validationFailureAction": "Enforce", "background": false, "rules": rules()}
    })
}

fn config_map(mode: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "shop"},
        "data": {"mode": mode, "level": "3"}
    })
}

fn update() -> Request {
    let mut request = Request::create(config_map("debug"));
    request.operation = Operation::Update;
    request.old_object = Some(config_map("quiet"));
    request
}

fn delete() -> Request {
    let mut request = Request::create(Value::Null);
    request.operation = Operation::Delete;
    request.old_object = Some(config_map("debug"));
    request.kind = bylaw_engine::request::GroupVersionKind::of(&config_map("debug"));
    request
}

fn exception() -> CompiledException {
    CompiledException::compile(&json!({
        "apiVersion": "kyverno.io/v2", "kind": "PolicyException",
        "metadata": {"name": "quiet-level", "namespace": "shop"},
        "spec": {
            "exceptions": [{"policyName": "settings", "ruleNames": ["reads-object"]}],
            "match": {"any": [{"resources": {"kinds": ["ConfigMap"]}}]},
            "conditions": {"any": [{"key": "{{ request.object.data.level }}", "operator": "Equals", "value": "3"}]}
        }
    }))
    .expect("the exception compiles")
}

/// The same evaluation twice: over a validation context (placeholders) and over a full one.
fn both_ways(
    request: &Request,
    exceptions: Vec<CompiledException>,
) -> (Vec<PolicyResponse>, PolicyResponse) {
    let compiled = compile_policy(&policy()).expect("the policy compiles");
    let set = PolicySet::new(vec![compiled], exceptions);
    let placeholders = set.validate(request, &NoContext);
    let mut full = request_context(request);
    let before = full.clone();
    let over_full = validate_with_context_mut(
        &set.policies[0],
        request,
        &mut full,
        &RequestMemo::new(request),
        &NoContext,
        &set.exceptions,
    );
    assert_eq!(
        full, before,
        "the engine leaves a full context as it found it"
    );
    (placeholders, over_full)
}

#[test]
fn placeholders_answer_as_a_full_context() {
    for request in [update(), delete(), Request::create(config_map("debug"))] {
        let (placeholders, full) = both_ways(&request, vec![]);
        assert_eq!(placeholders, vec![full.clone()], "{:?}", request.operation);
        let (placeholders, full) = both_ways(&request, vec![exception()]);
        assert_eq!(placeholders, vec![full], "{:?}", request.operation);
    }
}

#[test]
fn placeholders_give_kyvernos_answers() {
    let (responses, _) = both_ways(&update(), vec![]);
    let status = |name: &str| {
        responses[0]
            .rules
            .iter()
            .find(|r| *r.name == *name)
            .unwrap_or_else(|| panic!("no response for {name}"))
            .status
    };
    for denied in [
        "reads-object",
        "whole-request",
        "request-values",
        "request-compared",
        "root",
        "writes-under-object",
        "replaces-request",
        "variable-from-object",
        "reads-again",
    ] {
        assert_eq!(status(denied), RuleStatus::Fail, "{denied}");
    }
    assert_eq!(status("reads-old-object"), RuleStatus::Pass);
    let message = &responses[0].rules[0].message;
    assert_eq!(message, "settings: UPDATE");
    // An exception whose conditions read the object skips the rule.
    let (responses, _) = both_ways(&update(), vec![exception()]);
    assert_eq!(responses[0].rules[0].status, RuleStatus::Skip);
}
