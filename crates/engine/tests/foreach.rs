//! foreach over elements that only need reading binds each element over the context instead
//! of copying it in. These tests hold that path to the one that writes elements into the
//! context (taken when an entry loads context entries): every rule must answer the same —
//! status, message, path and detail — and the answers are checked against what Kyverno says.

use bylaw_engine::compile::compile_policy;
use bylaw_engine::context::NoContext;
use bylaw_engine::engine::PolicySet;
use bylaw_engine::request::Request;
use bylaw_engine::response::{PolicyResponse, RuleStatus};
use serde_json::{json, Value};

/// Rules covering what an element's check can read: `element`, `elementIndex`, the
/// per-level names, the root (`@`), patterns with and without element scope, preconditions,
/// non-map elements and an `elementScope` that cannot apply.
fn rules() -> Vec<Value> {
    let foreach_rule = |name: &str, entry: Value| {
        json!({
            "name": name,
            "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
            "validate": {"message": "{{ element.name || 'no name' }} at {{ elementIndex }}",
                         "foreach": [entry]}
        })
    };
    vec![
        foreach_rule(
            "deny-privileged",
            json!({
                "list": "request.object.spec.[ephemeralContainers, initContainers, containers][]",
                "deny": {"conditions": {"any": [{
                    "key": "{{ element.securityContext.privileged || `false` }}",
                    "operator": "Equals", "value": true,
                    "message": "{{ element.name }} (#{{ elementIndex }}, level {{ element0.name }}) is privileged"}]}}
            }),
        ),
        foreach_rule(
            "pattern-scoped",
            json!({
                "list": "request.object.spec.containers",
                "pattern": {"image": "!*:latest"}
            }),
        ),
        foreach_rule(
            "pattern-whole-resource",
            json!({
                "list": "request.object.spec.containers",
                "elementScope": false,
                "pattern": {"metadata": {"labels": {"app": "?*"}}}
            }),
        ),
        foreach_rule(
            "preconditions",
            json!({
                "list": "request.object.spec.containers",
                "preconditions": {"all": [{"key": "{{ element.name }}", "operator": "NotEquals", "value": "sidecar"}]},
                "deny": {"conditions": {"all": [{"key": "{{ length(keys(@)) > `0` && element.image }}",
                                                 "operator": "Equals", "value": "nginx:latest"}]}}
            }),
        ),
        foreach_rule(
            "strings",
            json!({
                "list": "request.object.spec.containers[].image",
                "deny": {"conditions": {"any": [{"key": "{{ element }}", "operator": "Equals",
                                                 "value": "busybox"}]}}
            }),
        ),
        foreach_rule(
            "scope-on-strings",
            json!({
                "list": "request.object.spec.containers[].name",
                "elementScope": true,
                "pattern": {"name": "?*"}
            }),
        ),
        foreach_rule(
            "missing-list",
            json!({
                "list": "request.object.spec.volumes",
                "deny": {"conditions": {"any": [{"key": "{{ element.name }}", "operator": "Equals", "value": "x"}]}}
            }),
        ),
        foreach_rule(
            "all-pass",
            json!({
                "list": "request.object.spec.containers",
                "deny": {"conditions": {"any": [{"key": "{{ element.name }}", "operator": "Equals", "value": "nobody"}]}}
            }),
        ),
    ]
}

fn policy_with(rules: Vec<Value>) -> Value {
    json!({
        "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
        "metadata": {"name": "containers",
                     "annotations": {"pod-policies.kyverno.io/autogen-controllers": "none"}},
        "spec": {"validationFailureAction": "Enforce", "background": false, "rules": rules}
    })
}

/// The same rules with a context entry that changes nothing, so elements are written into the
/// context.
fn with_context_entries(rules: Vec<Value>) -> Vec<Value> {
    rules
        .into_iter()
        .map(|mut rule| {
            if let Some(entries) = rule["validate"]["foreach"].as_array_mut() {
                for entry in entries {
                    entry["context"] = json!([{"name": "unused", "variable": {"value": 1}}]);
                }
            }
            rule
        })
        .collect()
}

fn pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "initContainers": [{"name": "init", "image": "busybox"}],
            "containers": [
                {"name": "app", "image": "nginx:latest", "securityContext": {"privileged": true}},
                {"name": "sidecar", "image": "envoy:1.30"}
            ]
        }
    })
}

fn evaluate(rules: Vec<Value>) -> Vec<PolicyResponse> {
    let compiled = compile_policy(&policy_with(rules)).expect("the policy compiles");
    PolicySet::new(vec![compiled], vec![]).validate(&Request::create(pod()), &NoContext)
}

#[test]
fn bound_elements_answer_as_elements_written_into_the_context() {
    let bound = evaluate(rules());
    let written = evaluate(with_context_entries(rules()));
    assert_eq!(bound, written);
}

#[test]
fn bound_elements_give_kyvernos_answers() {
    let responses = evaluate(rules());
    let rules = &responses[0].rules;
    let rule = |name: &str| {
        rules
            .iter()
            .find(|r| *r.name == *name)
            .unwrap_or_else(|| panic!("no response for {name}: {rules:?}"))
    };
    let privileged = rule("deny-privileged");
    assert_eq!(privileged.status, RuleStatus::Fail);
    // The init container comes first in the list, so `app` is element 1.
    assert_eq!(
        privileged.message,
        "validation failure: app at 1; app (#1, level app) is privileged"
    );
    let scoped = rule("pattern-scoped");
    assert_eq!(scoped.status, RuleStatus::Fail);
    assert!(
        scoped
            .message
            .ends_with("rule pattern-scoped failed at path /image/"),
        "{}",
        scoped.message
    );
    assert_eq!(scoped.path.as_deref(), Some("/image/"));
    assert_eq!(rule("pattern-whole-resource").status, RuleStatus::Fail);
    assert_eq!(rule("preconditions").status, RuleStatus::Fail);
    assert_eq!(rule("strings").status, RuleStatus::Pass);
    assert_eq!(rule("scope-on-strings").status, RuleStatus::Error);
    assert!(
        rule("scope-on-strings")
            .message
            .contains("cannot use elementScope=true for elements that are not maps (element 0)"),
        "{}",
        rule("scope-on-strings").message
    );
    assert_eq!(rule("missing-list").status, RuleStatus::Skip);
    assert_eq!(rule("all-pass").status, RuleStatus::Pass);
}
