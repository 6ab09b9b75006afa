//! YAML parsing errors name the file, the line and column, and the reason; typed decoding names
//! the offending field.

use bylaw_api::{from_value, parse_documents, ClusterPolicy};
use serde_json::json;

#[test]
fn malformed_yaml_reports_file_line_and_reason() {
    // (input, expected line, expected column (None: not asserted), words the reason must contain)
    let cases: [(&str, usize, Option<usize>, &[&str]); 6] = [
        // The flow sequence opened on line 2 is still open when the input ends (line 3).
        ("a: 1\nb: [1, 2\n", 3, Some(1), &["flow sequence", "line 2"]),
        // `image` is indented one column less than `name`, so it cannot continue that mapping.
        (
            "kind: Pod\nspec:\n  containers:\n  - name: x\n   image: y\n",
            5,
            None,
            &["expected key"],
        ),
        // A tab cannot indent YAML.
        ("a:\n\tb: 1\n", 2, Some(1), &["cannot start any token"]),
        // Lines count from the start of the file across documents: the string opened on line 4
        // never ends.
        (
            "---\nok: 1\n---\nkey: \"unterminated\n",
            5,
            None,
            &["quoted scalar", "line 4"],
        ),
        // The second `a` is on line 3.
        ("a: 1\nb: 2\na: 3\n", 3, Some(1), &["duplicate", "\"a\""]),
        (
            "spec:\n  rules:\n  - name: r\n    name: s\n",
            4,
            Some(5),
            &["duplicate", "\"name\""],
        ),
    ];
    for (input, line, column, words) in cases {
        let error = parse_documents(input, "policies/bad.yaml").expect_err(input);
        assert_eq!(error.source_name, "policies/bad.yaml");
        assert_eq!(error.line, Some(line), "line for {input:?}: {error}");
        if let Some(column) = column {
            assert_eq!(error.column, Some(column), "column for {input:?}: {error}");
        }
        for word in words {
            assert!(
                error.reason.contains(word),
                "reason for {input:?} should mention {word:?}: {error}"
            );
        }
        let shown = error.to_string();
        let prefix = format!("policies/bad.yaml:{line}:");
        assert!(
            shown.starts_with(&prefix),
            "{shown:?} starts with {prefix:?}"
        );
        assert!(
            !shown.contains(" at line {line} column"),
            "location is not repeated: {shown}"
        );
    }
}

#[test]
fn absurd_nesting_is_rejected_cleanly() {
    let flow = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
    // `- - - 1` nests block sequences on a single line.
    let block = format!("{}1\n", "- ".repeat(10_000));
    let mapping = format!("{}1{}", "{a: ".repeat(10_000), "}".repeat(10_000));
    for (name, input) in [
        ("flow.yaml", flow),
        ("block.yaml", block),
        ("mapping.yaml", mapping),
    ] {
        let error = parse_documents(&input, name).expect_err(name);
        assert!(error.reason.contains("recursion limit"), "{name}: {error}");
        assert!(
            error.to_string().starts_with(&format!("{name}:")),
            "{error}"
        );
    }
}

#[test]
fn alias_bombs_are_rejected() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let prev = i - 1;
        text.push_str(&format!("a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"));
    }
    let error =
        parse_documents(&text, "bomb.yaml").expect_err("expanding 10^12 nodes must be refused");
    assert!(error.reason.contains("limit"), "{error}");
}

#[test]
fn decode_errors_name_the_field_path() {
    let cases = [
        (
            json!({"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy", "metadata": {"name": "p"},
                   "spec": {"rules": [{"name": "r", "match": {"any": [{"resources": {"kinds": "Pod"}}]}}]}}),
            "spec.rules[0].match.any[0].resources.kinds",
            "expected a sequence",
        ),
        (
            json!({"metadata": {"name": "p"}, "spec": {"background": "yes"}}),
            "spec.background",
            "expected a boolean",
        ),
        (
            json!({"metadata": {"name": "p"}, "spec": {"rules": [{"name": "r", "validate": {"failureAction": "Block"}}]}}),
            "spec.rules[0].validate.failureAction",
            "unknown variant `Block`",
        ),
        (
            json!({"metadata": {"name": "p"}}),
            ".",
            "missing field `spec`",
        ),
    ];
    for (document, path, reason) in cases {
        let error = from_value::<ClusterPolicy>(document).expect_err(path);
        assert_eq!(error.path, path, "{error}");
        assert!(
            error.reason.contains(reason),
            "{error} should mention {reason:?}"
        );
        assert_eq!(
            error.to_string(),
            format!("{}: {}", error.path, error.reason)
        );
    }
}

#[test]
fn legacy_and_any_all_conditions_both_decode() {
    let policy: ClusterPolicy = from_value(json!({
        "metadata": {"name": "p"},
        "spec": {"rules": [
            {"name": "legacy", "preconditions": [{"key": "{{ request.operation }}", "operator": "Equals", "value": "CREATE"}]},
            {"name": "anyall", "preconditions": {"any": [{"key": 1, "operator": "In", "value": [1, 2]}]}},
        ]},
    }))
    .expect("both precondition forms are valid");
    let rules = policy.spec.rules();
    let legacy = rules[0]
        .preconditions
        .as_ref()
        .expect("legacy preconditions");
    assert_eq!(
        legacy.all().len(),
        1,
        "a plain list means all conditions must hold"
    );
    assert!(legacy.any().is_empty());
    let any_all = rules[1]
        .preconditions
        .as_ref()
        .expect("any/all preconditions");
    assert_eq!(any_all.any().len(), 1);
    assert_eq!(any_all.any()[0].value, Some(json!([1, 2])));

    let error = from_value::<ClusterPolicy>(json!({
        "metadata": {"name": "p"},
        "spec": {"rules": [{"name": "r", "preconditions": {"all": [{"key": "a", "operator": 5}]}}]},
    }))
    .expect_err("operator must be a string");
    assert_eq!(error.path, "spec.rules[0].preconditions.all[0].operator");
}

#[test]
fn deeply_nested_values_are_refused_before_decoding() {
    fn deep_value() -> serde_json::Value {
        let mut deep = json!(1);
        for _ in 0..10_000 {
            deep = serde_json::Value::Array(vec![deep]);
        }
        deep
    }
    // `json!` would serialise an interpolated value recursively, so the deep part is put in
    // place by hand. The decoder owns the value and must dispose of it without recursing too.
    let mut policy =
        json!({"metadata": {"name": "p"}, "spec": {"rules": [{"name": "r", "validate": {}}]}});
    policy["spec"]["rules"][0]["validate"]["pattern"] = deep_value();
    let error = from_value::<ClusterPolicy>(policy).expect_err("too deep");
    assert!(error.reason.contains("nesting deeper than 128"), "{error}");
    let mut test = json!({"values": {"globalValues": {}}});
    test["values"]["globalValues"]["x"] = deep_value();
    let error = bylaw_api::cli::decode::<bylaw_api::Test>(test).expect_err("too deep");
    assert!(error.reason.contains("nesting deeper than 128"), "{error}");
}
