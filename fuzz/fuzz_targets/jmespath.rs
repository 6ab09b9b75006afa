//! A JMESPath expression (with Kyverno's functions) and a JSON document: parse and evaluate.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let (expr, doc) = common::split(data);
    let Ok(expr) = std::str::from_utf8(expr) else {
        return;
    };
    let doc = common::document(doc).unwrap_or(serde_json::Value::Null);
    if let Ok(compiled) = bylaw_engine::jmespath::compile_uncached(expr) {
        let _ = compiled.search(&doc);
    }
});
