//! Table-driven tests: `cases.yaml` (documented Kyverno behaviour; the policy library itself is
//! covered end to end by the conformance ratchet).

use serde::Deserialize;
use serde_json::{json, Value};

use super::{validate_pattern, Pattern, PatternOutcome, MAX_DEPTH};

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    #[serde(default)]
    pattern: Option<Value>,
    /// `anyPattern`: passes if one pattern passes, skips if every pattern skipped.
    #[serde(default)]
    any_pattern: Option<Vec<Value>>,
    resource: Value,
    want: String,
    #[serde(default)]
    path: Option<String>,
}

fn outcome_name(result: &Result<PatternOutcome, super::PatternError>) -> &'static str {
    match result {
        Ok(PatternOutcome::Pass) => "pass",
        Ok(PatternOutcome::Fail { .. }) => "fail",
        Ok(PatternOutcome::Skip { .. }) => "skip",
        Err(_) => "error",
    }
}

/// Kyverno's `anyPattern` combination, as the rule evaluator applies it.
fn any_pattern(
    resource: &Value,
    patterns: &[Value],
) -> Result<PatternOutcome, super::PatternError> {
    let mut last_fail = None;
    let mut last_skip = None;
    for pattern in patterns {
        match validate_pattern(resource, pattern)? {
            PatternOutcome::Pass => return Ok(PatternOutcome::Pass),
            skip @ PatternOutcome::Skip { .. } => last_skip = Some(skip),
            fail @ PatternOutcome::Fail { .. } => last_fail = Some(fail),
        }
    }
    Ok(last_fail.or(last_skip).unwrap_or(PatternOutcome::Pass))
}

fn run_table(source: &str) -> usize {
    let cases: Vec<Case> = serde_yaml_ng::from_str(source).expect("case table parses");
    let mut failures = Vec::new();
    for case in &cases {
        let result = match (&case.pattern, &case.any_pattern) {
            (Some(pattern), None) => validate_pattern(&case.resource, pattern),
            (None, Some(patterns)) => any_pattern(&case.resource, patterns),
            _ => panic!("{}: needs exactly one of pattern / any_pattern", case.name),
        };
        let got = outcome_name(&result);
        if got != case.want {
            failures.push(format!(
                "{}: want {}, got {:?}",
                case.name, case.want, result
            ));
            continue;
        }
        if let (Some(want_path), Ok(PatternOutcome::Fail { path, .. })) = (&case.path, &result) {
            if want_path != path {
                failures.push(format!("{}: want path {want_path}, got {path}", case.name));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    cases.len()
}

#[test]
fn documented_behaviour_table() {
    let count = run_table(include_str!("cases.yaml"));
    assert!(count > 100);
}

#[test]
fn failure_reports_path_and_values() {
    let pattern = json!({"spec": {"containers": [{"securityContext": {"privileged": "false"}}]}});
    let resource = json!({"spec": {"containers": [{"securityContext": {"privileged": true}}]}});
    let outcome = validate_pattern(&resource, &pattern).expect("pattern compiles");
    assert_eq!(
        outcome,
        PatternOutcome::Fail {
            path: "/spec/containers/0/securityContext/privileged/".to_owned(),
            detail: "got true, want \"false\"".to_owned(),
        }
    );
}

#[test]
fn compile_errors_name_the_pattern_path() {
    let err = Pattern::compile(&json!({"spec": {"containers": [{"+(image)": "x"}]}})).unwrap_err();
    assert_eq!(err.path, "spec.containers[0].+(image)");
    assert!(err.to_string().starts_with("spec.containers[0].+(image): "));
}

#[test]
fn compiled_pattern_is_reusable() {
    let pattern = Pattern::compile(&json!({"spec": {"replicas": ">=2"}})).expect("compiles");
    assert_eq!(
        pattern.validate(&json!({"spec": {"replicas": 3}})),
        PatternOutcome::Pass
    );
    assert!(matches!(
        pattern.validate(&json!({"spec": {"replicas": 1}})),
        PatternOutcome::Fail { .. }
    ));
}

/// Builds `{"a": {"a": ... leaf ...}}` iteratively, `depth` levels deep.
fn nested(depth: usize, leaf: Value) -> Value {
    let mut value = leaf;
    for _ in 0..depth {
        let mut map = serde_json::Map::new();
        map.insert("a".to_owned(), value);
        value = Value::Object(map);
    }
    value
}

#[test]
fn deeply_nested_input_is_a_clean_error() {
    // A big stack only for building and dropping the 10,000-level values; the engine itself
    // must not recurse past its depth limit.
    let handle = std::thread::Builder::new()
        .stack_size(256 * 1024 * 1024)
        .spawn(|| {
            let deep_pattern = nested(10_000, json!("x"));
            let err = Pattern::compile(&deep_pattern).unwrap_err();
            assert!(err.reason.contains("nested deeper"), "{err}");

            // A deep resource under a shallow pattern is fine: evaluation follows the pattern.
            let deep_resource = nested(10_000, json!("x"));
            assert_eq!(
                validate_pattern(&deep_resource, &json!({"a": {"a": "*"}})),
                Ok(PatternOutcome::Pass)
            );

            // At the limit a pattern still works.
            let ok = nested(MAX_DEPTH - 1, json!("x"));
            assert_eq!(validate_pattern(&ok, &ok), Ok(PatternOutcome::Pass));
        })
        .expect("spawn");
    handle.join().expect("no panic");
}

/// A backtracking matcher would not finish this in any reasonable time; speed itself is measured
/// in the benchmarks, not here.
#[test]
fn pathological_wildcard_value_is_decided() {
    let pattern = json!({"metadata": {"name": "*a".repeat(300) + "b"}});
    let resource = json!({"metadata": {"name": "a".repeat(10_000)}});
    assert!(matches!(
        validate_pattern(&resource, &pattern),
        Ok(PatternOutcome::Fail { .. })
    ));
}
