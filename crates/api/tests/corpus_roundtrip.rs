//! Every typed document of the conformance corpus survives decode → encode unchanged, so no field
//! of a real policy, exception, report or test input is lost.
//!
//! Normalisation before comparing, and why:
//! - object entries whose value is `null` are dropped on both sides: Kyverno's Go types treat an
//!   explicit null like an absent field, and so do ours (`Option::None`, not serialised);
//! - for the CLI inputs (Test, Values, UserInfo, Context) keys may differ in case only, because
//!   Kyverno matches their keys case-insensitively and bylaw writes the canonical spelling.
//!
//! The corpus is `shared/conformance/` next to the repository (override with
//! `BYLAW_CONFORMANCE_DIR=/path/to/conformance`). Documents of kinds bylaw does not type (Pods,
//! ValidatingPolicy, ...) are counted and listed, not failed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use bylaw_api::cli::{self, Context, Test, UserInfo, Values};
use bylaw_api::kyverno::v1::{ClusterPolicy, Policy};
use bylaw_api::kyverno::v2::PolicyException;
use bylaw_api::policyreport::{ClusterPolicyReport, PolicyReport};
use bylaw_api::{from_value, parse_documents, DecodeError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

fn conformance_dir() -> PathBuf {
    match std::env::var_os("BYLAW_CONFORMANCE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance"),
    }
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml")
        {
            out.push(path);
        }
    }
}

/// How a document is decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Typed {
    ClusterPolicy,
    Policy,
    PolicyException,
    ValidatingPolicy,
    NamespacedValidatingPolicy,
    PolicyReport,
    ClusterPolicyReport,
    Test,
    Values,
    UserInfo,
    Context,
}

impl Typed {
    fn is_cli(self) -> bool {
        matches!(
            self,
            Typed::Test | Typed::Values | Typed::UserInfo | Typed::Context
        )
    }
}

fn classify(doc: &Value) -> Option<Typed> {
    let object = doc.as_object()?;
    let api_version = object.get("apiVersion").and_then(Value::as_str);
    let kind = object.get("kind").and_then(Value::as_str);
    let group = api_version.map(|v| v.split_once('/').map_or("", |(group, _)| group));
    match (group, kind) {
        (Some("kyverno.io"), Some("ClusterPolicy")) => Some(Typed::ClusterPolicy),
        (Some("kyverno.io"), Some("Policy")) => Some(Typed::Policy),
        (Some("kyverno.io"), Some("PolicyException")) => Some(Typed::PolicyException),
        (Some("policies.kyverno.io"), Some("ValidatingPolicy")) => Some(Typed::ValidatingPolicy),
        (Some("policies.kyverno.io"), Some("NamespacedValidatingPolicy")) => {
            Some(Typed::NamespacedValidatingPolicy)
        }
        (Some("wgpolicyk8s.io"), Some("PolicyReport")) => Some(Typed::PolicyReport),
        (Some("wgpolicyk8s.io"), Some("ClusterPolicyReport")) => Some(Typed::ClusterPolicyReport),
        (Some("cli.kyverno.io"), Some("Test")) => Some(Typed::Test),
        // Kyverno's values loader ignores `kind`; the corpus has both spellings.
        (Some("cli.kyverno.io"), Some("Values" | "Value")) => Some(Typed::Values),
        (Some("cli.kyverno.io"), Some("UserInfo")) => Some(Typed::UserInfo),
        (Some("cli.kyverno.io"), Some("Context")) => Some(Typed::Context),
        // Legacy test files have neither apiVersion nor kind.
        (None, None) if object.contains_key("results") && object.contains_key("policies") => {
            Some(Typed::Test)
        }
        _ => None,
    }
}

fn round_trip<T: DeserializeOwned + Serialize>(
    doc: Value,
    cli: bool,
) -> Result<Value, DecodeError> {
    let typed: T = if cli {
        cli::decode(doc)?
    } else {
        from_value(doc)?
    };
    Ok(serde_json::to_value(&typed).expect("typed values serialise"))
}

fn encode_again(kind: Typed, doc: Value) -> Result<Value, DecodeError> {
    match kind {
        Typed::ClusterPolicy => round_trip::<ClusterPolicy>(doc, false),
        Typed::Policy => round_trip::<Policy>(doc, false),
        Typed::PolicyException => round_trip::<PolicyException>(doc, false),
        Typed::ValidatingPolicy => round_trip::<bylaw_api::ValidatingPolicy>(doc, false),
        Typed::NamespacedValidatingPolicy => {
            round_trip::<bylaw_api::NamespacedValidatingPolicy>(doc, false)
        }
        Typed::PolicyReport => round_trip::<PolicyReport>(doc, false),
        Typed::ClusterPolicyReport => round_trip::<ClusterPolicyReport>(doc, false),
        Typed::Test => round_trip::<Test>(doc, true),
        Typed::Values => round_trip::<Values>(doc, true),
        Typed::UserInfo => round_trip::<UserInfo>(doc, true),
        Typed::Context => round_trip::<Context>(doc, true),
    }
}

fn drop_nulls(value: &Value) -> Value {
    match value {
        Value::Object(object) => Value::Object(
            object
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), drop_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(drop_nulls).collect()),
        other => other.clone(),
    }
}

fn lowercase_keys(value: &Value) -> Value {
    match value {
        Value::Object(object) => Value::Object(
            object
                .iter()
                .map(|(k, v)| (k.to_lowercase(), lowercase_keys(v)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(lowercase_keys).collect()),
        other => other.clone(),
    }
}

/// JSON paths at which `expected` and `actual` differ.
fn differences(expected: &Value, actual: &Value, path: &str, out: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                match b.get(key) {
                    Some(other) => differences(value, other, &format!("{path}.{key}"), out),
                    None => out.push(format!("{path}.{key}: lost (was {value})")),
                }
            }
            for key in b.keys().filter(|key| !a.contains_key(*key)) {
                out.push(format!("{path}.{key}: added ({})", b[key]));
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                differences(x, y, &format!("{path}[{i}]"), out);
            }
        }
        _ if expected != actual => out.push(format!("{path}: {expected} became {actual}")),
        _ => {}
    }
}

#[test]
fn corpus_documents_round_trip_through_the_typed_api() {
    let root = conformance_dir();
    assert!(
        root.is_dir(),
        "conformance corpus not found at {} (set BYLAW_CONFORMANCE_DIR to the `conformance` directory)",
        root.display()
    );
    let mut files = Vec::new();
    yaml_files(&root, &mut files);
    assert!(!files.is_empty(), "no YAML files under {}", root.display());

    let mut typed_counts: BTreeMap<Typed, usize> = BTreeMap::new();
    let mut untyped: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let mut case_folded = 0usize;
    let mut failures = Vec::new();

    for file in &files {
        let shown = file
            .strip_prefix(&root)
            .unwrap_or(file)
            .display()
            .to_string();
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{shown}: {e}"));
        let documents = match parse_documents(&text, &shown) {
            Ok(documents) => documents,
            Err(error) => {
                failures.push(format!("{error}"));
                continue;
            }
        };
        for (index, doc) in documents.into_iter().enumerate() {
            let Some(kind) = classify(&doc) else {
                let api_version = doc.get("apiVersion").and_then(Value::as_str).unwrap_or("-");
                let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("-");
                let entry = untyped
                    .entry(format!("{api_version} {kind}"))
                    .or_insert((0, shown.clone()));
                entry.0 += 1;
                continue;
            };
            *typed_counts.entry(kind).or_default() += 1;
            let original = drop_nulls(&doc);
            let encoded = match encode_again(kind, doc) {
                Ok(encoded) => drop_nulls(&encoded),
                Err(error) => {
                    failures.push(format!(
                        "{shown} (document {index}, {kind:?}): decode failed at {error}"
                    ));
                    continue;
                }
            };
            if original == encoded {
                continue;
            }
            if kind.is_cli() && lowercase_keys(&original) == lowercase_keys(&encoded) {
                case_folded += 1;
                continue;
            }
            let mut diffs = Vec::new();
            differences(&original, &encoded, "", &mut diffs);
            for diff in diffs {
                failures.push(format!("{shown} (document {index}, {kind:?}): {diff}"));
            }
        }
    }

    let mut report = String::new();
    let _ = writeln!(
        report,
        "{} YAML files under {}",
        files.len(),
        root.display()
    );
    for (kind, count) in &typed_counts {
        let _ = writeln!(report, "  typed {kind:?}: {count}");
    }
    let _ = writeln!(
        report,
        "  CLI documents equal up to key case: {case_folded}"
    );
    let _ = writeln!(
        report,
        "  untyped documents (apiVersion kind: count, first file):"
    );
    for (kind, (count, example)) in &untyped {
        let _ = writeln!(report, "    {kind}: {count} ({example})");
    }
    println!("{report}");

    assert!(
        typed_counts
            .get(&Typed::ClusterPolicy)
            .copied()
            .unwrap_or(0)
            > 0,
        "no ClusterPolicy found\n{report}"
    );
    assert!(
        typed_counts.get(&Typed::Test).copied().unwrap_or(0) > 0,
        "no Test found\n{report}"
    );
    assert!(
        failures.is_empty(),
        "{} documents do not round-trip:\n{}\n\n{report}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn cli_keys_match_case_insensitively_like_kyverno() {
    let test: Test = cli::decode(serde_json::json!({
        "apiVersion": "cli.kyverno.io/v1alpha1",
        "kind": "Test",
        "metadata": {"name": "t"},
        "Policies": ["policy.yaml"],
        "results": [{"policy": "p", "isMUtatingPolicy": true, "RESULT": "pass", "resources": ["a"], "kind": "Pod"}],
        "values": {"globalValues": {"Request.Operation": "CREATE"}},
    }))
    .expect("keys differing in case are accepted");
    assert_eq!(test.policies, Some(vec!["policy.yaml".to_owned()]));
    let result = &test.results.as_deref().unwrap_or_default()[0];
    assert_eq!(result.is_mutating_policy, Some(true));
    assert_eq!(result.expected(), Some(bylaw_api::PolicyResult::Pass));
    // Free-form maps keep their keys exactly.
    let globals = test
        .values
        .and_then(|v| v.global_values)
        .unwrap_or_default();
    assert_eq!(
        globals.get("Request.Operation"),
        Some(&Value::from("CREATE"))
    );

    let encoded = serde_json::to_value(result).expect("serialise");
    assert_eq!(
        encoded.get("isMutatingPolicy"),
        Some(&Value::Bool(true)),
        "canonical spelling is written"
    );

    let error = cli::decode::<Test>(serde_json::json!({"name": "t", "polices": ["typo.yaml"]}))
        .expect_err("unknown keys in a test file are rejected, as Kyverno's strict loader does");
    assert!(error.reason.contains("unknown field `polices`"), "{error}");
}

#[test]
fn round_trip_check_detects_lost_and_changed_fields() {
    let doc = serde_json::json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": "p"},
        "spec": {"rules": [{"name": "r", "notAKyvernoField": 1, "validate": {"pattern": {"x": null}}}]},
    });
    let encoded = encode_again(Typed::ClusterPolicy, doc.clone()).expect("decodes");
    let mut diffs = Vec::new();
    differences(&drop_nulls(&doc), &drop_nulls(&encoded), "", &mut diffs);
    assert_eq!(
        diffs,
        vec![".spec.rules[0].notAKyvernoField: lost (was 1)".to_owned()]
    );
    // Nulls inside free-form patterns are kept (they are dropped only for the comparison).
    assert_eq!(
        encoded["spec"]["rules"][0]["validate"]["pattern"],
        serde_json::json!({"x": null})
    );
}
