//! Evaluation cost of the Pod Security policies of Kyverno's public library (baseline and
//! restricted, pattern-based, plus the podSecurity subrule policies), compiled once, against a
//! realistic three-container Pod and a Deployment.
//!
//! `cargo bench -p bylaw-engine --bench evaluate` (the corpus is read from
//! `../shared/conformance/kyverno-policies`, or `BYLAW_CONFORMANCE_CORPUS`).

mod cases;

use bylaw_engine::context::NoContext;
use cases::{
    assert_no_errors, deployment, pod, pod_mutation_set, pod_security_cel_set, pod_security_set,
};
use criterion::{criterion_group, criterion_main, Criterion};

fn bench(c: &mut Criterion) {
    let set = pod_security_set();
    let pod = pod();
    let deployment = deployment();
    // Sanity: the hardened Pod passes every rule, so the benchmark measures full evaluation.
    assert_no_errors(&set, &pod);
    c.bench_function("pod-security set / 3-container Pod", |b| {
        b.iter(|| set.validate(std::hint::black_box(&pod), &NoContext))
    });
    c.bench_function("pod-security set / Deployment", |b| {
        b.iter(|| set.validate(std::hint::black_box(&deployment), &NoContext))
    });
    for (label, dir, kind) in [
        (
            "pod-security validate.cel set / 3-container Pod",
            "pod-security-cel",
            "ClusterPolicy",
        ),
        (
            "pod-security ValidatingPolicy set / 3-container Pod",
            "pod-security-vpol",
            "ValidatingPolicy",
        ),
    ] {
        let cel_set = pod_security_cel_set(dir, kind);
        assert_no_errors(&cel_set, &pod);
        c.bench_function(label, |b| {
            b.iter(|| cel_set.validate(std::hint::black_box(&pod), &NoContext))
        });
    }
    let mutation = pod_mutation_set();
    c.bench_function("library mutate policies / 3-container Pod", |b| {
        b.iter(|| mutation.mutate(std::hint::black_box(&pod), &NoContext))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
