//! `--message-format`: bylaw's messages (Kyverno's text and what was found and wanted) by
//! default, Kyverno's exact text on request, in `bylaw apply` and `bylaw test`.

mod common;

use common::{bylaw, fixture, rows, run_json, stderr, suite};
use serde_json::Value;

fn apply_messages(format: Option<&str>) -> Vec<(String, String)> {
    let dir = fixture("messages");
    let policy = dir.join("policy.yaml");
    let resources = dir.join("resources.yaml");
    let mut args = vec![
        "apply",
        policy.to_str().unwrap(),
        "-r",
        resources.to_str().unwrap(),
        "-o",
        "json",
    ];
    if let Some(format) = format {
        args.extend(["--message-format", format]);
    }
    let out = bylaw(&args);
    let results: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
    results
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            (
                r["rule"].as_str().unwrap_or("").to_owned(),
                r["message"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// Kyverno's messages for these rules, as its validation handler words them.
const KYVERNO: [(&str, &str); 4] = [
    (
        "pattern",
        "validation error: images are pinned. rule pattern failed at path /spec/containers/0/image/",
    ),
    (
        "any-pattern",
        "validation error: a team or an owner. rule any-pattern[0] failed at path /metadata/labels/ rule any-pattern[1] failed at path /metadata/labels/",
    ),
    ("deny", "bad is not allowed; the name is on the deny list"),
    (
        "foreach",
        "validation failure: validation error: containers need limits. rule foreach failed at path /resources/",
    ),
];

#[test]
fn apply_writes_kyvernos_text_on_request() {
    let kyverno = apply_messages(Some("kyverno"));
    for (rule, want) in KYVERNO {
        let got = kyverno
            .iter()
            .find(|(r, _)| r == rule)
            .map(|(_, m)| m.as_str());
        assert_eq!(got, Some(want), "{rule}");
    }
}

#[test]
fn bylaw_messages_add_what_was_found_and_wanted() {
    let bylaw = apply_messages(None);
    let message = |rule: &str| {
        bylaw
            .iter()
            .find(|(r, _)| r == rule)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    };
    for (rule, kyverno) in KYVERNO {
        assert!(
            message(rule).starts_with(kyverno),
            "{rule}: {}",
            message(rule)
        );
    }
    assert!(
        message("pattern").ends_with(r#" (got "nginx:latest", want "!*:latest")"#),
        "{}",
        message("pattern")
    );
    assert!(
        message("foreach").contains("(element 0 of request.object.spec.containers"),
        "{}",
        message("foreach")
    );
    // Deny has nothing to add.
    assert_eq!(
        message("deny"),
        "bad is not allowed; the name is on the deny list"
    );
}

#[test]
fn test_rows_carry_the_chosen_message() {
    let dir = suite(
        "messages",
        "apiVersion: cli.kyverno.io/v1alpha1
kind: Test
metadata: {name: messages}
policies: [policy.yaml]
resources: [resources.yaml]
results:
  - {policy: messages, rule: pattern, kind: Pod, resources: [bad], result: fail}
",
    );
    for (format, detail) in [("kyverno", false), ("bylaw", true)] {
        let (code, suites) = run_json(dir.path(), &["--message-format", format]);
        assert_eq!(code, Some(0));
        let message = rows(&suites[0])[0]["message"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        assert_eq!(message.contains("(got"), detail, "{format}: {message}");
    }
}
