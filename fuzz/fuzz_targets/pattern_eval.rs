//! A validate pattern and a resource, both arbitrary JSON: pattern evaluation, and the same
//! pattern as a rule evaluated through the engine.
#![no_main]
use libfuzzer_sys::fuzz_target;
use serde_json::json;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let (pattern, resource) = common::split(data);
    let (Some(pattern), Some(resource)) = (common::document(pattern), common::document(resource))
    else {
        return;
    };
    let _ = bylaw_engine::pattern::validate_pattern(&resource, &pattern);
    let policy = json!({
        "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
        "metadata": {"name": "fuzz"},
        "spec": {"rules": [{
            "name": "r",
            "match": {"any": [{"resources": {"kinds": ["*"]}}]},
            "validate": {"pattern": pattern}
        }]}
    });
    if let Ok(compiled) = bylaw_engine::compile::compile_policy(&policy) {
        let set = bylaw_engine::engine::PolicySet::new(vec![compiled], vec![]);
        let request = bylaw_engine::request::Request::create(resource);
        let _ = set.validate(&request, &bylaw_engine::context::NoContext);
    }
});
