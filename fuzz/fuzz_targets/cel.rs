//! CEL: an arbitrary expression as a ValidatingPolicy validation, compiled and evaluated
//! against an arbitrary object.
#![no_main]
use libfuzzer_sys::fuzz_target;
use serde_json::json;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let (expression, object) = common::split(data);
    let Ok(expression) = std::str::from_utf8(expression) else {
        return;
    };
    let object = match common::document(object) {
        Some(serde_json::Value::Object(map)) => serde_json::Value::Object(map),
        _ => json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": "p", "namespace": "default"},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]}}),
    };
    let policy = json!({
        "apiVersion": "policies.kyverno.io/v1alpha1", "kind": "ValidatingPolicy",
        "metadata": {"name": "fuzz"},
        "spec": {
            "matchConstraints": {"resourceRules": [{"apiGroups": ["*"], "apiVersions": ["*"],
                "operations": ["CREATE"], "resources": ["*"]}]},
            "validations": [{"expression": expression, "messageExpression": expression}]
        }
    });
    if let Ok(bylaw_engine::engine::CompiledDocument::Policy(compiled)) =
        bylaw_engine::engine::compile_document(&policy)
    {
        let set = bylaw_engine::engine::PolicySet::new(vec![*compiled], vec![]);
        let request = bylaw_engine::request::Request::create(object);
        let _ = set.validate(&request, &bylaw_engine::context::NoContext);
    }
});
