//! Runs one benchmark case a fixed number of times, for instruction counts that do not depend
//! on how long criterion decides to sample:
//!
//! ```sh
//! cargo build --release -p bylaw-engine --example profile_evaluate
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*evaluate_times*' \
//!   target/release/examples/profile_evaluate pod 100
//! ```
//!
//! Cases: `pod` and `deployment` (the Pod Security set), `cel` (the library's `validate.cel`
//! Pod Security policies against the Pod), `mutate` (the library's Pod mutate policies against
//! the Pod). Instructions per evaluation = the total collected ÷ the count.

#[path = "../benches/cases/mod.rs"]
#[allow(dead_code)]
mod cases;

use bylaw_engine::context::NoContext;
use bylaw_engine::engine::PolicySet;
use bylaw_engine::request::Request;

#[inline(never)]
fn evaluate_times(set: &PolicySet, request: &Request, mutate: bool, times: usize) -> usize {
    let mut rules = 0;
    for _ in 0..times {
        if mutate {
            let result = set.mutate(std::hint::black_box(request), &NoContext);
            rules += result.responses.len() + result.patch.len();
        } else {
            let responses = set.validate(std::hint::black_box(request), &NoContext);
            rules += responses.iter().map(|r| r.rules.len()).sum::<usize>();
        }
    }
    rules
}

fn main() {
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap_or_else(|| "pod".to_owned());
    let times: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(100);
    let (set, request, mutate) = match case.as_str() {
        "pod" => (cases::pod_security_set(), cases::pod(), false),
        "deployment" => (cases::pod_security_set(), cases::deployment(), false),
        "mutate" => (cases::pod_mutation_set(), cases::pod(), true),
        "cel" => (
            cases::pod_security_cel_set("pod-security-cel", "ClusterPolicy"),
            cases::pod(),
            false,
        ),
        other => {
            eprintln!("unknown case {other}: pod, deployment, cel or mutate");
            std::process::exit(2);
        }
    };
    // ONLY=name evaluates just that policy of the set, for a per-policy breakdown.
    let set = match std::env::var("ONLY") {
        Ok(name) => PolicySet {
            policies: set
                .policies
                .into_iter()
                .filter(|p| *p.name == *name)
                .collect(),
            exceptions: set.exceptions,
        },
        Err(_) => set,
    };
    let rules = evaluate_times(&set, &request, mutate, times);
    println!("{case}: {times} evaluations, {rules} rule responses and patch operations");
}
