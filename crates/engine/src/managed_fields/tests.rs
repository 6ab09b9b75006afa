//! A policy set that says it cannot read `metadata.managedFields` (`reads_managed_fields`)
//! must answer the same whether the objects it sees carry them or not: the webhook then leaves
//! them out when decoding. Checked over Kyverno's whole library and its test resources, and
//! on rules written to reach the managedFields every way the analysis knows of.

use std::path::{Path, PathBuf};

use crate::compile::{compile_policy, CompiledPolicy};
use crate::context::NoContext;
use crate::engine::PolicySet;
use crate::exceptions::CompiledException;
use crate::request::Request;
use crate::response::PolicyResponse;
use serde_json::{json, Value};

/// The object as the API server sends it: with a managedFields entry that mirrors its fields.
fn with_managed_fields(object: &Value) -> Value {
    fn fields_of(value: &Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (format!("f:{k}"), fields_of(v)))
                    .collect(),
            ),
            _ => json!({}),
        }
    }
    let mut object = object.clone();
    let fields = fields_of(&object);
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.insert(
            "managedFields".to_owned(),
            json!([{
                "manager": "kubectl-client-side-apply",
                "operation": "Update",
                "apiVersion": "v1",
                "time": "2026-12-04T09:00:00Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": fields
            }]),
        );
    }
    object
}

fn responses(set: &PolicySet, object: &Value) -> Vec<PolicyResponse> {
    set.validate(&Request::create(object.clone()), &NoContext)
}

fn kind(doc: &Value) -> &str {
    doc.get("kind").and_then(Value::as_str).unwrap_or_default()
}

#[test]
fn library_policies_that_do_not_read_managed_fields_answer_alike_with_them() {
    let files = crate::library_files(&crate::conformance_corpus(), &|path| {
        path.extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml")
    });
    // Policies and resources per suite directory.
    let mut by_dir: std::collections::BTreeMap<PathBuf, (Vec<CompiledPolicy>, Vec<Value>)> =
        Default::default();
    for file in &files {
        // A suite's resources sit beside its policy or in a `.kyverno-test` directory below it.
        let mut dir = file.parent().unwrap_or(Path::new("")).to_owned();
        if dir
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with('.'))
        {
            dir.pop();
        }
        for doc in crate::yaml_documents(file) {
            let entry = by_dir.entry(dir.clone()).or_default();
            match kind(&doc) {
                "ClusterPolicy" | "Policy" => {
                    if let Ok(policy) = compile_policy(&doc) {
                        entry.0.push(policy);
                    }
                }
                "Test" | "PolicyException" | "Values" | "" => {}
                _ if doc.get("metadata").is_some_and(Value::is_object) => entry.1.push(doc),
                _ => {}
            }
        }
    }
    let (mut clear, mut reading, mut compared) = (0, 0, 0);
    for (dir, (policies, resources)) in by_dir {
        for policy in policies {
            if policy.reads_managed_fields {
                reading += 1;
                continue;
            }
            clear += 1;
            let name = policy.name.clone();
            let set = PolicySet::new(vec![policy], Vec::new());
            for resource in &resources {
                let without = responses(&set, resource);
                let with = responses(&set, &with_managed_fields(resource));
                assert_eq!(
                    without,
                    with,
                    "{name} in {} answers differently with managedFields on {}",
                    dir.display(),
                    resource["metadata"]["name"]
                );
                compared += 1;
            }
        }
    }
    // The analysis must leave most of the library clear, or the webhook gains nothing; and
    // the comparison must have run on many resources to mean anything.
    assert!(clear > 150, "only {clear} policies clear ({reading} read)");
    assert!(compared > 500, "only {compared} comparisons");
}

#[test]
fn the_pod_security_policies_do_not_read_managed_fields() {
    let files = crate::library_files(&crate::conformance_corpus().join("pod-security"), &|path| {
        path.extension().is_some_and(|ext| ext == "yaml")
    });
    let policies: Vec<CompiledPolicy> = files
        .iter()
        .flat_map(|file| crate::yaml_documents(file))
        .filter(|doc| kind(doc) == "ClusterPolicy")
        .map(|doc| compile_policy(&doc).expect("library policy compiles"))
        .collect();
    assert!(policies.len() >= 20, "{} policies", policies.len());
    for policy in &policies {
        assert!(
            !policy.reads_managed_fields,
            "{} reads managedFields",
            policy.name
        );
    }
    assert!(!PolicySet::new(policies, Vec::new()).reads_managed_fields());
}

fn policy_with(rule: Value) -> CompiledPolicy {
    let mut rule = rule;
    rule["name"] = json!("check");
    rule["match"] = json!({"any": [{"resources": {"kinds": ["Pod"]}}]});
    compile_policy(&json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": "managed-fields"},
        "spec": {"validationFailureAction": "Enforce", "rules": [rule]}
    }))
    .expect("test policy compiles")
}

fn deny(key: &str, value: Value) -> Value {
    json!({"validate": {"message": "denied", "deny": {"conditions": {"any": [
        {"key": key, "operator": "Equals", "value": value}
    ]}}}})
}

fn pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}
    })
}

#[test]
fn rules_that_reach_the_managed_fields_are_found() {
    let reaching = [
        (
            "names them",
            deny(
                "{{ request.object.metadata.managedFields[0].manager }}",
                json!("kubectl-client-side-apply"),
            ),
        ),
        ("the whole object", deny("{{ request.object }}", json!({}))),
        (
            "the whole request",
            deny("{{ to_string(request) }}", json!("")),
        ),
        ("the whole context", deny("{{ length(@) }}", json!(0))),
        (
            "the whole metadata",
            deny("{{ length(keys(request.object.metadata)) }}", json!(4)),
        ),
        (
            "metadata's values",
            deny("{{ length(request.object.metadata.*) }}", json!(4)),
        ),
        (
            "the object's values",
            deny("{{ request.object.*.managedFields }}", json!(null)),
        ),
        (
            "metadata compared",
            deny(
                "{{ request.object.metadata == request.oldObject.metadata }}",
                json!(true),
            ),
        ),
        (
            "metadata in a list",
            deny("{{ length([request.object.metadata][0]) }}", json!(4)),
        ),
        (
            "metadata piped",
            deny("{{ request.object | metadata | length(@) }}", json!(4)),
        ),
        (
            "the old object",
            deny("{{ values(request.oldObject.metadata) }}", json!([])),
        ),
        ("the current value", deny("{{ @ }}", json!(""))),
        (
            "a nested variable",
            deny(
                "{{ request.object.metadata.{{ request.object.kind }} }}",
                json!(""),
            ),
        ),
        (
            "a variable holding the object",
            json!({
                "context": [{"name": "obj", "variable": {"jmesPath": "request.object"}}],
                "validate": {"message": "denied", "deny": {"conditions": {"any": [
                    {"key": "{{ obj.metadata.name }}", "operator": "Equals", "value": "web"}]}}}
            }),
        ),
        (
            "a foreach over metadata",
            json!({"validate": {"message": "denied", "foreach": [{
                "list": "request.object.metadata.*",
                "deny": {"conditions": {"any": [{"key": "{{ element }}", "operator": "Equals", "value": "x"}]}}
            }]}}),
        ),
        (
            "a wildcard key in metadata",
            json!({"validate": {"message": "denied", "pattern": {
                "metadata": {"*": "?*"}
            }}}),
        ),
        (
            "a wildcard key at the root",
            json!({"validate": {"message": "denied", "pattern": {
                "m*": {"name": "?*"}
            }}}),
        ),
        (
            "metadata as one value",
            json!({"validate": {"message": "denied", "pattern": {
                "metadata": "?*"
            }}}),
        ),
        (
            "a relative reference",
            json!({"validate": {"message": "denied", "pattern": {
                "metadata": {"name": "?*"},
                "spec": {"containers": [{"name": "$(./../../../../metadata/name)"}]}
            }}}),
        ),
        (
            "a CEL expression",
            json!({"validate": {"cel": {"expressions": [
                {"expression": "object.metadata.name != ''"}
            ]}}}),
        ),
        (
            "a mutation",
            json!({"mutate": {"patchStrategicMerge": {"metadata": {"labels": {"a": "b"}}}}}),
        ),
    ];
    for (why, rule) in reaching {
        let policy = policy_with(rule);
        assert!(
            policy.reads_managed_fields,
            "not found: a rule that reads {why}"
        );
    }

    let clear = [
        (
            "the name",
            deny("{{ request.object.metadata.name }}", json!("web")),
        ),
        (
            "labels whole",
            deny(
                "{{ length(keys(request.object.metadata.labels || `{}`)) }}",
                json!(1),
            ),
        ),
        (
            "images",
            deny(
                "{{ request.object.spec.containers[].image | [0] }}",
                json!("x"),
            ),
        ),
        (
            "the operation",
            deny("{{ request.operation }}", json!("DELETE")),
        ),
        (
            "the old name",
            deny("{{ request.oldObject.metadata.name || '' }}", json!("x")),
        ),
        (
            "a filter",
            deny(
                "{{ length(request.object.spec.containers[?name == 'web']) }}",
                json!(0),
            ),
        ),
        (
            "a variable",
            json!({
                "context": [{"name": "labels", "variable": {"jmesPath": "request.object.metadata.labels"}}],
                "validate": {"message": "denied", "deny": {"conditions": {"any": [
                    {"key": "{{ labels.app }}", "operator": "Equals", "value": "x"}]}}}
            }),
        ),
        (
            "a foreach over containers",
            json!({"validate": {"message": "{{ element.name }}", "foreach": [{
                "list": "request.object.spec.containers",
                "pattern": {"image": "!*:latest"}
            }]}}),
        ),
        (
            "a metadata pattern",
            json!({"validate": {"message": "denied", "pattern": {
                "metadata": {"labels": {"app": "?*"}, "=(annotations)": {"x": "y"}}
            }}}),
        ),
    ];
    for (why, rule) in clear {
        let policy = policy_with(rule);
        assert!(
            !policy.reads_managed_fields,
            "a rule that reads {why} counts as reading"
        );
    }
}

#[test]
fn a_rule_that_reads_them_answers_differently_with_them_so_the_comparison_can_fail() {
    // The library comparison above is only worth something if reading the managedFields
    // shows in the answer: a rule that does read them must not pass it.
    let policy = policy_with(deny(
        "{{ request.object.metadata.managedFields[0].manager || 'none' }}",
        json!("kubectl-client-side-apply"),
    ));
    assert!(policy.reads_managed_fields);
    let set = PolicySet::new(vec![policy], Vec::new());
    assert_ne!(
        responses(&set, &pod()),
        responses(&set, &with_managed_fields(&pod()))
    );
}

#[test]
fn an_exception_whose_conditions_read_them_counts_for_the_set() {
    let exception = |key: &str| {
        CompiledException::compile(&json!({
            "apiVersion": "kyverno.io/v2",
            "kind": "PolicyException",
            "metadata": {"name": "except", "namespace": "shop"},
            "spec": {
                "exceptions": [{"policyName": "managed-fields", "ruleNames": ["check"]}],
                "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "conditions": {"any": [{"key": key, "operator": "Equals", "value": "x"}]}
            }
        }))
        .expect("exception compiles")
    };
    let clear_rule = || policy_with(deny("{{ request.object.metadata.name }}", json!("x")));
    let reading = PolicySet::new(
        vec![clear_rule()],
        vec![exception("{{ to_string(request.object.metadata) }}")],
    );
    assert!(reading.reads_managed_fields());
    let clear = PolicySet::new(
        vec![clear_rule()],
        vec![exception("{{ request.object.metadata.name }}")],
    );
    assert!(!clear.reads_managed_fields());
}

#[test]
fn mutate_rules_count_for_mutation_only() {
    let policy = compile_policy(&json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": "both"},
        "spec": {"rules": [
            {
                "name": "label",
                "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "mutate": {"patchStrategicMerge": {"metadata": {"labels": {"+(team)": "none"}}}}
            },
            {
                "name": "check",
                "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "validate": {"message": "denied", "pattern": {"metadata": {"labels": {"team": "?*"}}}}
            }
        ]}
    }))
    .expect("policy compiles");
    assert!(policy.reads_managed_fields);
    assert!(!policy.validation_reads_managed_fields);
    let set = PolicySet::new(vec![policy], Vec::new());
    assert!(set.reads_managed_fields());
    assert!(!set.validation_reads_managed_fields());
}
