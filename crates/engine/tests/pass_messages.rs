//! A caller that shows no message for a pass (the webhook) can have the engine leave them
//! out; everything else about the answer stays the same.

use bylaw_engine::compile::compile_policy;
use bylaw_engine::context::{request_context, NoContext};
use bylaw_engine::engine::{validate_with_context_mut, RequestMemo};
use bylaw_engine::request::Request;
use bylaw_engine::response::{PolicyResponse, RuleStatus};
use serde_json::json;

fn evaluate(pass_messages: bool) -> PolicyResponse {
    let policy = compile_policy(&json!({
        "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
        "metadata": {"name": "pods"},
        "spec": {"rules": [
            {"name": "named", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
             "validate": {"message": "a name is required",
                          "pattern": {"metadata": {"name": "?*"}}}},
            {"name": "no-latest", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
             "validate": {"message": "no latest tags",
                          "deny": {"conditions": {"any": [{
                              "key": "{{ request.object.spec.containers[0].image }}",
                              "operator": "Equals", "value": "*:latest"}]}}}},
            {"name": "baseline", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
             "validate": {"podSecurity": {"level": "baseline", "version": "latest"}}}
        ]}
    }))
    .expect("the policy compiles");
    let request = Request::create(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"containers": [{"name": "web", "image": "nginx:latest"}]}
    }));
    let mut context = request_context(&request);
    let memo = if pass_messages {
        RequestMemo::new(&request)
    } else {
        RequestMemo::new(&request).without_pass_messages()
    };
    validate_with_context_mut(&policy, &request, &mut context, &memo, &NoContext, &[])
}

fn answers(response: &PolicyResponse) -> Vec<(&str, RuleStatus, &str)> {
    response
        .rules
        .iter()
        .map(|r| (&*r.name, r.status, r.message.as_str()))
        .collect()
}

#[test]
fn passes_have_kyvernos_message_unless_left_out() {
    let with = evaluate(true);
    let without = evaluate(false);
    assert_eq!(
        answers(&with),
        [
            ("named", RuleStatus::Pass, "validation rule 'named' passed."),
            ("no-latest", RuleStatus::Fail, "no latest tags"),
            (
                "baseline",
                RuleStatus::Pass,
                "Validation rule 'baseline' passed."
            ),
        ]
    );
    assert_eq!(
        answers(&without),
        [
            ("named", RuleStatus::Pass, ""),
            ("no-latest", RuleStatus::Fail, "no latest tags"),
            ("baseline", RuleStatus::Pass, ""),
        ]
    );
}
