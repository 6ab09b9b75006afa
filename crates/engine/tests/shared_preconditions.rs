//! Rule preconditions that read only `request` are answered once per request for every rule
//! that has the same block; a rule whose own values or context entries can change what it
//! sees under `request` evaluates its block itself.

use bylaw_engine::compile::compile_policy;
use bylaw_engine::context::{ContextProvider, NoContext};
use bylaw_engine::engine::PolicySet;
use bylaw_engine::request::Request;
use bylaw_engine::response::{PolicyResponse, RuleStatus};
use serde_json::{json, Map, Value};

/// A policy with one rule that requires a `team` label, under `preconditions`, and the
/// rule's own `context` entries.
fn policy(name: &str, preconditions: Value, context: Value) -> Value {
    json!({
        "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
        "metadata": {"name": name},
        "spec": {"rules": [{
            "name": "team",
            "match": {"any": [{"resources": {"kinds": ["ConfigMap"]}}]},
            "context": context,
            "preconditions": preconditions,
            "validate": {"message": "a team label is required",
                         "pattern": {"metadata": {"labels": {"team": "?*"}}}}
        }]}
    })
}

fn not_creating() -> Value {
    json!({"all": [{"key": "{{ request.operation || 'BACKGROUND' }}",
                    "operator": "NotEquals", "value": "CREATE"}]})
}

fn evaluate(
    policies: &[Value],
    provider: &dyn ContextProvider,
) -> Vec<(String, RuleStatus, String)> {
    let compiled = policies
        .iter()
        .map(|p| compile_policy(p).expect("the policy compiles"))
        .collect();
    let set = PolicySet::new(compiled, Vec::new());
    let request = Request::create(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "shop"}
    }));
    set.validate(&request, provider)
        .iter()
        .flat_map(|response: &PolicyResponse| {
            response.rules.iter().map(move |rule| {
                (
                    response.policy.to_string(),
                    rule.status,
                    rule.message.clone(),
                )
            })
        })
        .collect()
}

/// Stands in for a values file that sets `request.operation` for one policy's rule.
struct ValuesFor {
    policy: &'static str,
    values: Map<String, Value>,
}

impl ContextProvider for ValuesFor {
    fn rule_values(&self, policy: &str, _rule: &str) -> Option<&Map<String, Value>> {
        (policy == self.policy).then_some(&self.values)
    }
}

const SKIPPED: &str = "preconditions not met";

#[test]
fn rules_with_the_same_block_get_the_same_answer() {
    let answers = evaluate(
        &[
            policy("first", not_creating(), json!([])),
            policy("second", not_creating(), json!([])),
        ],
        &NoContext,
    );
    // A CREATE: the precondition does not hold for either rule.
    assert_eq!(
        answers,
        [
            ("first".to_owned(), RuleStatus::Skip, SKIPPED.to_owned()),
            ("second".to_owned(), RuleStatus::Skip, SKIPPED.to_owned()),
        ]
    );
}

#[test]
fn a_rule_with_its_own_values_is_not_answered_by_another_rule() {
    let provider = ValuesFor {
        policy: "with-values",
        values: json!({"request.operation": "UPDATE"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    };
    let answers = evaluate(
        &[
            policy("plain", not_creating(), json!([])),
            policy("with-values", not_creating(), json!([])),
        ],
        &provider,
    );
    assert_eq!(
        answers[0],
        ("plain".to_owned(), RuleStatus::Skip, SKIPPED.to_owned())
    );
    // Its values make the operation UPDATE: the precondition holds and the pattern fails.
    assert_eq!(answers[1].0, "with-values");
    assert_eq!(answers[1].1, RuleStatus::Fail, "{answers:?}");
}

#[test]
fn a_rule_with_context_entries_is_not_answered_by_another_rule() {
    let answers = evaluate(
        &[
            policy("plain", not_creating(), json!([])),
            policy(
                "with-context",
                not_creating(),
                json!([{"name": "request.operation", "variable": {"value": "UPDATE"}}]),
            ),
        ],
        &NoContext,
    );
    assert_eq!(
        answers[0],
        ("plain".to_owned(), RuleStatus::Skip, SKIPPED.to_owned())
    );
    assert_eq!(answers[1].0, "with-context");
    assert_eq!(answers[1].1, RuleStatus::Fail, "{answers:?}");
}

#[test]
fn blocks_that_differ_are_answered_each_for_itself() {
    let holds = json!({"all": [{"key": "{{ request.operation || 'BACKGROUND' }}",
                                "operator": "Equals", "value": "CREATE"}]});
    let answers = evaluate(
        &[
            policy("not-create", not_creating(), json!([])),
            policy("create", holds, json!([])),
        ],
        &NoContext,
    );
    assert_eq!(answers[0].1, RuleStatus::Skip);
    assert_eq!(answers[1].1, RuleStatus::Fail, "{answers:?}");
}

#[test]
fn a_block_that_reads_a_rules_own_variable_is_answered_for_each_rule() {
    let reads_op =
        json!({"all": [{"key": "{{ op }}", "operator": "NotEquals", "value": "CREATE"}]});
    let answers = evaluate(
        &[
            policy(
                "update",
                reads_op.clone(),
                json!([{"name": "op", "variable": {"value": "UPDATE"}}]),
            ),
            policy(
                "create",
                reads_op,
                json!([{"name": "op", "variable": {"value": "CREATE"}}]),
            ),
        ],
        &NoContext,
    );
    assert_eq!(answers[0].1, RuleStatus::Fail, "{answers:?}");
    assert_eq!(
        answers[1],
        ("create".to_owned(), RuleStatus::Skip, SKIPPED.to_owned())
    );
}
