//! Case tables (`testdata/*.yaml`) and the conformance corpus for mutate.

use serde::Deserialize;
use serde_json::{json, Value};

use super::*;

#[derive(Debug, Deserialize)]
struct PrimitiveCase {
    name: String,
    resource: Value,
    #[serde(default)]
    overlay: Value,
    #[serde(default)]
    patch: String,
    #[serde(default)]
    expected: Option<Value>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_path: Option<String>,
}

fn check_primitive(
    case: &PrimitiveCase,
    got: Result<Value, MutateError>,
    failures: &mut Vec<String>,
) {
    match (&case.expected, &case.error, got) {
        (Some(want), None, Ok(got)) => {
            if *want != got {
                failures.push(format!("{}:\n  got  {got}\n  want {want}", case.name));
            }
        }
        (None, Some(want), Err(err)) => {
            if !err.reason.contains(want.as_str()) {
                failures.push(format!("{}: error {err} lacks {want:?}", case.name));
            }
            if let Some(path) = &case.error_path {
                if err.path != *path {
                    failures.push(format!(
                        "{}: error path {:?}, want {path:?}",
                        case.name, err.path
                    ));
                }
            }
        }
        (_, _, got) => failures.push(format!("{}: unexpected result {got:?}", case.name)),
    }
}

#[test]
fn strategic_merge_cases() {
    let cases: Vec<PrimitiveCase> =
        serde_yaml_ng::from_str(include_str!("testdata/strategic_merge.yaml")).unwrap();
    let mut failures = Vec::new();
    for case in &cases {
        check_primitive(
            case,
            strategic_merge(&case.resource, &case.overlay),
            &mut failures,
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn json6902_cases() {
    let cases: Vec<PrimitiveCase> =
        serde_yaml_ng::from_str(include_str!("testdata/json6902.yaml")).unwrap();
    let mut failures = Vec::new();
    for case in &cases {
        check_primitive(case, json6902(&case.resource, &case.patch), &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[derive(Debug, Deserialize)]
struct RuleCase {
    name: String,
    resource: Value,
    mutate: Value,
    #[serde(default)]
    context: Value,
    status: String,
    #[serde(default)]
    expected: Option<Value>,
    #[serde(default)]
    message: Option<String>,
}

fn context_for(resource: &Value, extra: &Value) -> Value {
    let mut ctx = json!({"request": {"operation": "CREATE", "object": resource}});
    if let (Value::Object(ctx_map), Value::Object(extra)) = (&mut ctx, extra) {
        for (k, v) in extra {
            ctx_map.insert(k.clone(), v.clone());
        }
    }
    ctx
}

fn status_name(status: MutateStatus) -> &'static str {
    match status {
        MutateStatus::Pass => "pass",
        MutateStatus::Skip => "skip",
        MutateStatus::Error => "error",
        MutateStatus::Fail => "fail",
    }
}

#[test]
fn rule_cases() {
    let cases: Vec<RuleCase> =
        serde_yaml_ng::from_str(include_str!("testdata/rules.yaml")).unwrap();
    let mut failures = Vec::new();
    for case in &cases {
        let mut ctx = context_for(&case.resource, &case.context);
        let outcome = mutate_rule(&case.mutate, &case.resource, &mut ctx, &StandardEnv);
        if status_name(outcome.status) != case.status {
            failures.push(format!(
                "{}: status {:?} ({}), want {}",
                case.name, outcome.status, outcome.message, case.status
            ));
            continue;
        }
        if let Some(message) = &case.message {
            if !outcome.message.contains(message.as_str()) {
                failures.push(format!(
                    "{}: message {:?} lacks {message:?}",
                    case.name, outcome.message
                ));
            }
        }
        if let Some(want) = &case.expected {
            if outcome.patched.as_ref() != Some(want) {
                failures.push(format!(
                    "{}:\n  got  {:?}\n  want {want}",
                    case.name, outcome.patched
                ));
            }
            if ctx.pointer("/request/object") != Some(want) {
                failures.push(format!("{}: request.object was not updated", case.name));
            }
        }
        if outcome.status != MutateStatus::Pass && outcome.patched.is_some() {
            failures.push(format!(
                "{}: a non-pass outcome carries a resource",
                case.name
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn applying_a_policy_twice_changes_nothing_the_second_time() {
    let rules = [
        json!({"patchStrategicMerge": {"metadata": {"labels": {"+(team)": "a"}},
            "spec": {"containers": [{"(image)": "*:latest", "imagePullPolicy": "Always"}]}}}),
        json!({"patchStrategicMerge": {"spec": {
            "volumes": [{"name": "certs", "configMap": {"name": "ca"}}]}}}),
        json!({"foreach": [{"list": "request.object.spec.containers",
            "patchStrategicMerge": {"spec": {"containers": [
                {"name": "{{ element.name }}", "securityContext": {"privileged": false}}]}}}]}),
        json!({"patchesJson6902": "- op: add\n  path: /metadata/annotations/checked\n  value: \"yes\""}),
    ];
    let original = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "app", "image": "app:latest"}]}});
    let run = |resource: &Value| {
        let mut ctx = context_for(resource, &Value::Null);
        let mut current = resource.clone();
        let mut statuses = Vec::new();
        for rule in &rules {
            let outcome = mutate_rule(rule, &current, &mut ctx, &StandardEnv);
            statuses.push(outcome.status);
            if let Some(patched) = outcome.patched {
                current = patched;
            }
        }
        (current, statuses)
    };
    let (once, first) = run(&original);
    assert_eq!(first, [MutateStatus::Pass; 4]);
    assert_eq!(
        once,
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "labels": {"team": "a"}, "annotations": {"checked": "yes"}},
            "spec": {
                "containers": [{"name": "app", "image": "app:latest", "imagePullPolicy": "Always",
                    "securityContext": {"privileged": false}}],
                "volumes": [{"name": "certs", "configMap": {"name": "ca"}}]}})
    );
    let (twice, second) = run(&once);
    assert_eq!(twice, once);
    assert_eq!(second, [MutateStatus::Skip; 4]);
}

#[test]
fn a_patched_list_element_moves_to_the_front() {
    // kyaml (which Kyverno merges with) puts the patch's elements first, also when they
    // already exist; the reorder alone makes the rule pass again on the next run.
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}});
    let mut ctx = context_for(&pod, &Value::Null);
    let rule =
        json!({"patchStrategicMerge": {"spec": {"containers": [{"name": "b", "image": "b:1"}]}}});
    let outcome = mutate_rule(&rule, &pod, &mut ctx, &StandardEnv);
    assert_eq!(outcome.status, MutateStatus::Pass);
    assert_eq!(
        outcome.patched.unwrap()["spec"]["containers"],
        json!([{"name": "b", "image": "b:1"}, {"name": "a", "image": "a:1"}])
    );
}

#[test]
fn later_rules_see_earlier_mutations_in_request_object() {
    let resource = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}});
    let mut ctx = context_for(&resource, &Value::Null);
    let first = mutate_rule(
        &json!({"patchStrategicMerge": {"metadata": {"labels": {"tier": "gold"}}}}),
        &resource,
        &mut ctx,
        &StandardEnv,
    );
    let patched = first.patched.unwrap();
    let second = mutate_rule(
        &json!({"patchStrategicMerge": {"metadata": {"annotations": {
            "copied": "{{ request.object.metadata.labels.tier }}"}}}}),
        &patched,
        &mut ctx,
        &StandardEnv,
    );
    assert_eq!(second.status, MutateStatus::Pass, "{}", second.message);
    assert_eq!(
        second.patched.unwrap()["metadata"]["annotations"]["copied"],
        "gold"
    );
}

#[test]
fn foreach_variables_do_not_outlive_the_rule() {
    let resource = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
    let mut ctx = context_for(&resource, &Value::Null);
    let outcome = mutate_rule(
        &json!({"foreach": [{
            "list": "request.object.spec.containers",
            "patchStrategicMerge": {"metadata": {"labels": {"{{ element.name }}": "{{ elementIndex }}"}}}
        }]}),
        &resource,
        &mut ctx,
        &StandardEnv,
    );
    assert_eq!(outcome.status, MutateStatus::Pass, "{}", outcome.message);
    let patched = outcome.patched.unwrap();
    // Descending by default for strategic merge; a whole-string variable keeps its type.
    assert_eq!(patched["metadata"]["labels"], json!({"b": 1, "a": 0}));
    // `element` and `elementIndex` exist only inside the foreach; the mutation stays visible.
    for name in ["element", "element0", "elementIndex", "elementIndex0"] {
        assert!(ctx.get(name).is_none(), "{name} left in the context");
    }
    assert_eq!(ctx["request"]["object"], patched);
}

#[test]
fn mutate_existing_patches_selected_targets() {
    let trigger = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "s", "namespace": "apps"}});
    let targets = [
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm-1", "namespace": "apps",
            "labels": {"sync": "yes"}}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm-2", "namespace": "apps"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm-3", "namespace": "other",
            "labels": {"sync": "yes"}}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "cm-4", "namespace": "apps"}}),
    ];
    let mutate = json!({
        "targets": [{
            "apiVersion": "v1", "kind": "ConfigMap", "namespace": "{{ request.object.metadata.namespace }}",
            "name": "cm-*",
            "preconditions": {"all": [{"key": "{{ target.metadata.labels.sync || '' }}",
                "operator": "Equals", "value": "yes"}]}
        }],
        "patchStrategicMerge": {"metadata": {"annotations": {
            "refreshed-by": "{{ request.object.metadata.name }}/{{ target.metadata.name }}"}}}
    });
    let ctx = context_for(&trigger, &Value::Null);
    let results = mutate_existing(&mutate, &targets, None, &ctx, &StandardEnv);
    let summary: Vec<(String, MutateStatus)> = results
        .iter()
        .map(|r| {
            let name = r
                .target
                .as_ref()
                .and_then(|t| t.pointer("/metadata/name"))
                .cloned();
            (
                name.and_then(|n| n.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                r.outcome.status,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("cm-1".to_owned(), MutateStatus::Pass),
            ("cm-2".to_owned(), MutateStatus::Skip)
        ]
    );
    let patched = results[0].outcome.patched.as_ref().unwrap();
    assert_eq!(patched["metadata"]["annotations"]["refreshed-by"], "s/cm-1");
    assert_eq!(
        results[0].outcome.message,
        "mutated ConfigMap/cm-1 in namespace apps"
    );
    assert!(results[1]
        .outcome
        .message
        .starts_with("preconditions not met"));
}

#[test]
fn hostile_nesting_is_an_error_not_a_crash() {
    // Built by hand: `json!` would serialize the inner value recursively.
    let mut deep = Value::String("leaf".into());
    for _ in 0..10_000 {
        let mut map = serde_json::Map::new();
        map.insert("a".into(), deep);
        deep = Value::Object(map);
    }
    let resource = json!({"apiVersion": "v1", "kind": "Pod"});
    let err = strategic_merge(&resource, &deep).unwrap_err();
    assert!(err.reason.contains("nested deeper"), "{err}");
    let err = strategic_merge(&deep, &json!({"a": 1})).unwrap_err();
    assert!(err.reason.contains("nested deeper"), "{err}");
    let err = json6902(&deep, "[]").unwrap_err();
    assert!(err.reason.contains("nested deeper"), "{err}");
    let (mut left, mut right) = (json!(1), json!(2));
    for _ in 0..300 {
        left = Value::Array(vec![left]);
        right = Value::Array(vec![right]);
    }
    let ops = diff(&left, &right);
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].op, PatchOp::Replace);
    // Dropping a 10,000-level value recursively could itself overflow; unwind it iteratively.
    for mut value in [deep] {
        while let Value::Object(mut map) = value {
            value = map.remove("a").unwrap_or(Value::Null);
        }
    }
}

#[test]
fn diff_of_a_mutation_reproduces_it() {
    let original = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "app", "image": "app:1"}]}});
    let mutated = strategic_merge(
        &original,
        &json!({"metadata": {"labels": {"a/b": "c"}},
            "spec": {"containers": [{"name": "sidecar", "image": "s"}, {"name": "app", "image": "app:2"}]}}),
    )
    .unwrap();
    let ops = diff(&original, &mutated);
    let text = serde_json::to_string(&ops).unwrap();
    let reapplied = json6902(&original, &text).unwrap();
    assert_eq!(reapplied, mutated);
    assert!(text.contains("/metadata/labels"), "{text}");
}

/// A node deeper than `MAX_DEPTH` is refused whether it is a scalar, an empty container or a
/// non-empty one; one level less is accepted.
#[test]
fn resources_nested_past_the_limit_are_refused() {
    // `depth` objects around `leaf`: the leaf sits at depth `depth`.
    let nested =
        |depth: usize, leaf: Value| (0..depth).fold(leaf, |inner, _| json!({ "a": inner }));
    let overlay = json!({"metadata": {"labels": {"x": "y"}}});
    for leaf in [json!(1), json!({}), json!([]), json!({"b": 1})] {
        let deepest = if leaf.as_object().is_some_and(|m| !m.is_empty()) {
            MAX_DEPTH - 1
        } else {
            MAX_DEPTH
        };
        let fits = nested(deepest, leaf.clone());
        assert!(
            strategic_merge(&fits, &overlay).is_ok(),
            "{leaf} at {deepest}"
        );
        assert!(json6902(&fits, "[]").is_ok(), "{leaf} at {deepest}");
        let too_deep = nested(deepest + 1, leaf.clone());
        let err = strategic_merge(&too_deep, &overlay).unwrap_err();
        assert!(
            err.to_string()
                .contains("resource is nested deeper than 128 levels"),
            "{err}"
        );
        assert!(
            json6902(&too_deep, "[]").is_err(),
            "{leaf} at {}",
            deepest + 1
        );
    }
}
