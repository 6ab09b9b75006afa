//! Strategic merge (an overlay with anchors) and JSON 6902 patching of arbitrary resources.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let (patch, resource) = common::split(data);
    let resource = common::document(resource).unwrap_or(serde_json::json!({}));
    if let Some(overlay) = common::document(patch) {
        let _ = bylaw_engine::mutate::strategic_merge(&resource, &overlay);
    }
    if let Ok(text) = std::str::from_utf8(patch) {
        let _ = bylaw_engine::mutate::json6902(&resource, text);
    }
});
