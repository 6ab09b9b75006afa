//! Quantities (with arithmetic), Go durations, semver ranges and wildcards.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

use bylaw_engine::quantity::Quantity;

fuzz_target!(|data: &[u8]| {
    let (left, right) = common::split(data);
    let (Ok(left), Ok(right)) = (std::str::from_utf8(left), std::str::from_utf8(right)) else {
        return;
    };
    if let (Some(a), Some(b)) = (Quantity::parse(left), Quantity::parse(right)) {
        let _ = a.checked_add(&b);
        let _ = a.checked_sub(&b);
        let _ = a.checked_mul(&b);
        let _ = a.checked_div_trunc(&b);
        let _ = (a.to_i64(), a.to_f64(), a.signum());
    }
    if let Some(nanos) = bylaw_engine::quantity::parse_duration(left) {
        let _ = bylaw_engine::quantity::format_duration(nanos);
    }
    let _ = bylaw_engine::wildcard::wildcard_match(left, right);
    // Semver ranges and comparisons through the JMESPath function that uses them.
    let doc = serde_json::json!({"v": left, "r": right});
    for expr in ["semver_compare(v, r)", "compare(v, r)"] {
        if let Ok(compiled) = bylaw_engine::jmespath::compile(expr) {
            let _ = compiled.search(&doc);
        }
    }
});
