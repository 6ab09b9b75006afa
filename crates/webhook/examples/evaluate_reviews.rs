//! Times the policy evaluator alone (no TLS, no HTTP) on one AdmissionReview, to separate the
//! engine's cost from the server's in `docs/performance.md`:
//!
//! ```sh
//! cargo run --release -p bylaw-webhook --example evaluate_reviews -- \
//!     ../shared/conformance/kyverno-policies/pod-security examples/admission-reviews/bench/pod-create.json
//! ```
//!
//! The first argument is a policy directory (or a comma-separated list); the optional third is the
//! number of evaluations (default 5000); the optional fourth runs only one of the timed loops
//! (`validate`, `mutate`, `parse`, `review`), e.g. under callgrind. `review` is what the server
//! does per review besides TLS and HTTP: parse the body, evaluate the review it gave up, record
//! the metrics. `THREADS=n` runs the `review` loop on n threads at once, as the server's workers
//! do, and prints the time per review on each.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bylaw_runtime::metrics::{ExecutionCause, ResourceLabels};
use bylaw_runtime::{
    AdmissionEvaluator, EmptyContext, FilePolicySource, Metrics, Phase, PolicyCache,
    PolicyEvaluator, ReloadOutcome, ReviewRequest,
};

use bylaw_webhook::review::parse_review_with;

// The same allocator as the `bylaw` binary, so that counts match the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    let only = args.next();
    let runs = |name: &str| only.as_deref().is_none_or(|only| only == name);

    let metrics = Metrics::new("bench");
    let cache = Arc::new(PolicyCache::new(metrics.clone()));
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

    // As the server decides: objects without managedFields when no policy can read them.
    let leave_out = !evaluator.reads_managed_fields(Phase::Validate);
    let deadline = || Instant::now() + Duration::from_secs(10);
    let verdict = evaluator.evaluate(Phase::Validate, &request, deadline())?;
    println!(
        "{review_file}: allowed={} after {} rule outcomes",
        verdict.allowed,
        verdict.results.len()
    );
    let count = count.max(1);
    for phase in [Phase::Validate, Phase::Mutate] {
        if !runs(phase.as_str()) {
            continue;
        }
        let started = Instant::now();
        for _ in 0..count {
            std::hint::black_box(evaluator.evaluate(phase, &request, deadline())?);
        }
        println!("{phase}: {:?} per review", started.elapsed() / count);
    }
    if runs("parse") {
        let started = Instant::now();
        for _ in 0..count {
            std::hint::black_box(
                parse_review_with(&body, leave_out).map_err(|e| format!("{e:?}"))?,
            );
        }
        println!(
            "AdmissionReview parse of the body: {:?}",
            started.elapsed() / count
        );
    }
    if runs("review") {
        // THREADS=n runs the loop on n threads at once over the same evaluator and metrics, as
        // the server's workers do: what the cores share (reference counts, metric series) then
        // costs what it does under load.
        let threads: u32 = match std::env::var("THREADS") {
            Ok(n) => n
                .parse()
                .map_err(|e| format!("THREADS={n}: not a number of threads ({e})"))?,
            Err(_) => 1,
        };
        let threads = threads.max(1);
        let review_loop = |count: u32| -> Result<(), String> {
            for _ in 0..count {
                let review = parse_review_with(&body, leave_out)
                    .map_err(|e| format!("{e:?}"))?
                    .request;
                // The server keeps these for the metrics before it hands the review over.
                let (kind, namespace) = (review.kind.kind.clone(), review.namespace.clone());
                let resource = ResourceLabels {
                    kind: &kind,
                    namespace: namespace.as_deref(),
                    operation: review.operation,
                };
                let verdict = evaluator
                    .evaluate_owned(Phase::Validate, review, deadline(), None)
                    .map_err(|e| e.to_string())?;
                metrics.record_rule_outcomes(
                    &verdict.results,
                    ExecutionCause::AdmissionRequest,
                    resource,
                );
                metrics.record_policy_evaluations(&verdict.results);
                metrics.record_admission(
                    Phase::Validate,
                    resource,
                    verdict.allowed,
                    Duration::ZERO,
                );
                std::hint::black_box(verdict);
            }
            Ok(())
        };
        let started = Instant::now();
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| scope.spawn(|| review_loop(count)))
                .collect();
            workers.into_iter().try_for_each(|worker| {
                worker
                    .join()
                    .map_err(|_| "a review thread panicked".to_owned())?
            })
        })?;
        println!(
            "parse + validate + metrics: {:?} per review on each of {threads} thread(s)",
            started.elapsed() / count
        );
    }
    Ok(())
}
