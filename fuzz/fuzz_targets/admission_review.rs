//! AdmissionReview bytes, as the API server would send them, parsed and evaluated against the
//! Pod Security policies (policies/pod-security), in both phases.
#![no_main]
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bylaw_runtime::admission::{AdmissionEvaluator, Phase};
use bylaw_runtime::sources::{EmptyContext, PolicyDocument};
use bylaw_runtime::{Metrics, PolicyCache, PolicyEvaluator};
use libfuzzer_sys::fuzz_target;

fn evaluator() -> &'static PolicyEvaluator {
    static EVALUATOR: OnceLock<PolicyEvaluator> = OnceLock::new();
    EVALUATOR.get_or_init(|| {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/pod-security");
        let mut documents = Vec::new();
        for level in ["baseline", "restricted"] {
            let mut files: Vec<_> = std::fs::read_dir(root.join(level))
                .expect("policies/pod-security is part of the repository")
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
                .collect();
            files.sort();
            for file in files {
                let text = std::fs::read_to_string(&file).expect("readable policy file");
                for value in bylaw_api::yaml::parse_documents(&text, "policy").expect("valid YAML") {
                    documents.push(PolicyDocument {
                        value,
                        origin: file.display().to_string(),
                    });
                }
            }
        }
        let cache = Arc::new(PolicyCache::new(Metrics::new("fuzz")));
        let summary = cache.replace(&documents);
        assert!(summary.rejected.is_empty(), "the Pod Security set loads");
        PolicyEvaluator::new(cache, Arc::new(EmptyContext))
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(parsed) = bylaw_webhook::review::parse_review(data) else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    for phase in [Phase::Mutate, Phase::Validate] {
        let _ = evaluator().evaluate(phase, &parsed.request, deadline);
    }
});
