//! `kyverno-test.yaml` documents: YAML loading and decoding into the Test and Values types.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(documents) = bylaw_api::yaml::parse_documents(text, "kyverno-test.yaml") else {
        return;
    };
    for document in documents {
        let _ = bylaw_api::from_value::<bylaw_api::Test>(document.clone());
        let _ = bylaw_api::from_value::<bylaw_api::Values>(document.clone());
        let _ = bylaw_api::from_value::<bylaw_api::UserInfo>(document);
    }
});
