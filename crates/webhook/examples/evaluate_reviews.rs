//! Times the policy evaluator alone (no TLS, no HTTP) on one AdmissionReview, to separate the
//! engine's cost from the server's in `docs/performance.md`:
//!
//! ```sh
//! cargo run --release -p bylaw-webhook --example evaluate_reviews -- \
//!     ../shared/conformance/kyverno-policies/pod-security examples/admission-reviews/bench/pod-create.json
//! ```
//!
//! The first argument is a policy directory (or a comma-separated list); the optional third is the
//! number of evaluations (default 5000).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bylaw_runtime::{
    AdmissionEvaluator, EmptyContext, FilePolicySource, Metrics, Phase, PolicyCache,
    PolicyEvaluator, ReloadOutcome, ReviewRequest,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: evaluate_reviews POLICY_DIR[,DIR…] REVIEW.json [COUNT]";
    let policies: Vec<PathBuf> = args
        .next()
        .ok_or(usage)?
        .split(',')
        .map(PathBuf::from)
        .collect();
    let review_file = args.next().ok_or(usage)?;
    let count: u32 = args.next().map_or(Ok(5000), |n| n.parse())?;

    let cache = Arc::new(PolicyCache::new(Metrics::new("bench")));
    let outcome = cache.reload_from(&FilePolicySource::new(policies));
    match outcome {
        ReloadOutcome::Failed(errors) => return Err(errors.join("\n").into()),
        ReloadOutcome::Loaded(summary) if !summary.rejected.is_empty() => {
            let errors: Vec<String> = summary.rejected.iter().map(ToString::to_string).collect();
            return Err(errors.join("\n").into());
        }
        _ => {}
    }
    let evaluator = PolicyEvaluator::new(cache, Arc::new(EmptyContext));
    let body = std::fs::read(&review_file)?;
    let review: serde_json::Value = serde_json::from_slice(&body)?;
    let request: ReviewRequest = serde_json::from_value(review["request"].clone())?;

    let deadline = || Instant::now() + Duration::from_secs(10);
    let verdict = evaluator.evaluate(Phase::Validate, &request, deadline())?;
    println!(
        "{review_file}: allowed={} after {} rule outcomes",
        verdict.allowed,
        verdict.results.len()
    );
    for phase in [Phase::Validate, Phase::Mutate] {
        let started = Instant::now();
        for _ in 0..count {
            std::hint::black_box(evaluator.evaluate(phase, &request, deadline())?);
        }
        println!("{phase}: {:?} per review", started.elapsed() / count);
    }
    let started = Instant::now();
    for _ in 0..count {
        std::hint::black_box(serde_json::from_slice::<serde_json::Value>(&body)?);
    }
    println!(
        "JSON parse of the review body: {:?}",
        started.elapsed() / count
    );
    Ok(())
}
