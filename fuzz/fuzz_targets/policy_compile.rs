//! A policy document (YAML or JSON, any kind) → compile. Must end in Ok or Err, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(documents) = bylaw_api::yaml::parse_documents(text, "fuzz") else {
        return;
    };
    for document in documents {
        let _ = bylaw_engine::engine::compile_document(&document);
        let _ = bylaw_engine::exceptions::CompiledException::compile(&document);
    }
});
