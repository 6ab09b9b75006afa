//! `{{ }}` substitution: an arbitrary document (strings, keys) against an arbitrary context.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let (template, ctx) = common::split(data);
    let ctx = common::document(ctx).unwrap_or(serde_json::Value::Null);
    match common::document(template) {
        Some(doc) => {
            let _ = bylaw_engine::variables::substitute_all(&doc, &ctx);
        }
        None => {
            if let Ok(text) = std::str::from_utf8(template) {
                let _ = bylaw_engine::variables::substitute_str(text, &ctx);
            }
        }
    }
});
