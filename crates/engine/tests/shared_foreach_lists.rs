//! foreach lists that read only the request's object are searched once per request and shared
//! by the rules that walk the same list (`RequestMemo`). Every policy must answer as it does
//! evaluated alone, whatever list it walks and whatever it writes under `request` first.

use bylaw_engine::compile::compile_policy;
use bylaw_engine::context::NoContext;
use bylaw_engine::engine::PolicySet;
use bylaw_engine::request::Request;
use bylaw_engine::response::{PolicyResponse, RuleStatus};
use serde_json::{json, Value};

fn foreach_policy(name: &str, list: &str, context: Value, deny_when: Value) -> Value {
    json!({
        "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
        "metadata": {"name": name},
        "spec": {"rules": [{
            "name": "each",
            "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
            "context": context,
            "validate": {
                "message": "{{ element.name }} is not allowed",
                "foreach": [{"list": list, "deny": {"conditions": {"any": [deny_when]}}}]
            }
        }]}
    })
}

fn name_is(name: &str) -> Value {
    json!({"key": "{{ element.name }}", "operator": "Equals", "value": name})
}

fn policies() -> Vec<Value> {
    let containers = "request.object.spec.containers";
    vec![
        foreach_policy("containers-no-b", containers, json!([]), name_is("b")),
        foreach_policy("containers-no-a", containers, json!([]), name_is("a")),
        foreach_policy(
            "init-no-init",
            "request.object.spec.initContainers",
            json!([]),
            name_is("init"),
        ),
        foreach_policy(
            "all-no-init",
            "request.object.spec.[initContainers, containers][]",
            json!([]),
            name_is("init"),
        ),
        foreach_policy("containers-no-b-again", containers, json!([]), name_is("b")),
        foreach_policy(
            "filtered-by-function",
            "request.object.spec.containers[?starts_with(name, 'b')]",
            json!([]),
            name_is("b"),
        ),
        foreach_policy(
            "filtered-by-literal",
            "request.object.spec.containers[?name == 'a'] || `[{\"name\": \"b\"}]`",
            json!([]),
            name_is("b"),
        ),
        // Writes the list it walks under `request.object` first: it must see what it wrote.
        foreach_policy(
            "written-list",
            containers,
            json!([{"name": "request.object.spec.containers", "variable": {"value": [{"name": "z"}]}}]),
            name_is("z"),
        ),
        foreach_policy("containers-no-c", containers, json!([]), name_is("c")),
    ]
}

fn pod() -> Request {
    Request::create(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "initContainers": [{"name": "init", "image": "busybox"}],
            "containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "redis"}]
        }
    }))
}

fn alone(policy: &Value, request: &Request) -> Vec<PolicyResponse> {
    let compiled = compile_policy(policy).expect("the policy compiles");
    PolicySet::new(vec![compiled], vec![]).validate(request, &NoContext)
}

#[test]
fn rules_sharing_a_list_answer_as_each_does_alone() {
    let request = pod();
    let policies = policies();
    let compiled = policies
        .iter()
        .map(|p| compile_policy(p).expect("the policy compiles"))
        .collect();
    let together = PolicySet::new(compiled, vec![]).validate(&request, &NoContext);
    let each: Vec<PolicyResponse> = policies.iter().flat_map(|p| alone(p, &request)).collect();
    assert_eq!(together, each);

    let status = |name: &str| {
        together
            .iter()
            .find(|r| &*r.policy == name)
            .and_then(|r| r.rules.first())
            .unwrap_or_else(|| panic!("no response for {name}"))
            .status
    };
    for (policy, want) in [
        ("containers-no-b", RuleStatus::Fail),
        ("containers-no-a", RuleStatus::Fail),
        ("init-no-init", RuleStatus::Fail),
        ("all-no-init", RuleStatus::Fail),
        ("containers-no-b-again", RuleStatus::Fail),
        ("filtered-by-function", RuleStatus::Fail),
        ("filtered-by-literal", RuleStatus::Pass),
        ("written-list", RuleStatus::Fail),
        ("containers-no-c", RuleStatus::Pass),
    ] {
        assert_eq!(status(policy), want, "{policy}");
    }
}
