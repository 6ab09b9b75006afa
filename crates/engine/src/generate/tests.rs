//! The case table (`testdata/rules.yaml`), the downstream decision tables from Kyverno's
//! documentation, and the bounds.

use serde::Deserialize;
use serde_json::{json, Value};

use super::labels::strip_generate_labels;
use super::*;
use crate::compile::compile_policy;
use crate::engine::PolicySet;
use crate::request::{GroupVersionKind, Operation, Request};

#[derive(Debug, Deserialize)]
struct Expected {
    action: GenerateAction,
    object: Value,
    #[serde(default)]
    clone_source: Option<ResourceRef>,
}

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    rule: Value,
    #[serde(default)]
    spec: Value,
    #[serde(default)]
    policy_namespace: Option<String>,
    #[serde(default)]
    operation: Option<String>,
    #[serde(default)]
    trigger: Value,
    #[serde(default)]
    old: Option<Value>,
    #[serde(default)]
    cluster: Vec<Value>,
    status: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    resources: Option<Vec<Expected>>,
    #[serde(default)]
    targets: Option<Vec<String>>,
    #[serde(default)]
    actions: Option<Vec<GenerateAction>>,
    #[serde(default)]
    downstream: Option<DownstreamAction>,
}

fn policy_set(case: &Case) -> PolicySet {
    let mut spec = json!({"rules": [case.rule]});
    if let (Value::Object(spec), Value::Object(extra)) = (&mut spec, &case.spec) {
        spec.extend(extra.clone());
    }
    let doc = match &case.policy_namespace {
        Some(ns) => json!({"apiVersion": "kyverno.io/v1", "kind": "Policy",
                           "metadata": {"name": "policy", "namespace": ns}, "spec": spec}),
        None => json!({"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
                       "metadata": {"name": "policy"}, "spec": spec}),
    };
    PolicySet::new(vec![compile_policy(&doc).unwrap()], Vec::new())
}

fn request(case: &Case) -> Request {
    let operation = case
        .operation
        .as_deref()
        .and_then(Operation::parse)
        .unwrap_or(Operation::Create);
    let mut request = Request::create(case.trigger.clone());
    request.operation = operation;
    request.old_object = case.old.clone();
    request.kind = GroupVersionKind::of(request.resource());
    request
}

fn check(case: &Case, failures: &mut Vec<String>) {
    let set = policy_set(case);
    let cluster = ObjectStore(case.cluster.clone());
    let results = set.generate(&request(case), &cluster);
    let [policy] = results.as_slice() else {
        failures.push(format!("{}: {} policy results", case.name, results.len()));
        return;
    };
    let rule = policy.rules.first();
    let response = rule.and_then(|r| r.response.as_ref());
    let status = response.map_or("none", |r| r.status.as_str());
    if status != case.status {
        failures.push(format!(
            "{}: status {status} ({:?}), want {}",
            case.name,
            response.map(|r| &r.message),
            case.status
        ));
        return;
    }
    if let Some(want) = &case.message {
        let message = response.map(|r| r.message.as_str()).unwrap_or_default();
        if !message.contains(want.as_str()) {
            failures.push(format!("{}: message {message:?} lacks {want:?}", case.name));
        }
    }
    let got: Vec<&GeneratedResource> = policy.resources().collect();
    if let Some(want) = &case.resources {
        let same = got.len() == want.len()
            && got.iter().zip(want).all(|(g, w)| {
                g.action == w.action
                    && g.object == w.object
                    && (w.clone_source.is_none() || g.clone_source == w.clone_source)
            });
        if !same {
            failures.push(format!(
                "{}:\n  got  {}\n  want {want:?}",
                case.name,
                serde_json::to_string(&got).unwrap()
            ));
        }
    }
    if let Some(want) = &case.targets {
        let targets: Vec<String> = got.iter().map(|g| g.target.to_string()).collect();
        if targets != *want {
            failures.push(format!("{}: targets {targets:?}, want {want:?}", case.name));
        }
    }
    if let Some(want) = &case.actions {
        let actions: Vec<GenerateAction> = got.iter().map(|g| g.action).collect();
        if actions != *want {
            failures.push(format!("{}: actions {actions:?}, want {want:?}", case.name));
        }
    }
    if let Some(want) = case.downstream {
        let decided = rule.map(|r| r.downstream);
        if decided != Some(want) {
            failures.push(format!(
                "{}: downstream {decided:?}, want {want:?}",
                case.name
            ));
        }
    }
}

#[test]
fn rule_cases() {
    let cases: Vec<Case> = serde_yaml_ng::from_str(include_str!("testdata/rules.yaml")).unwrap();
    let mut failures = Vec::new();
    for case in &cases {
        check(case, &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Kyverno's documented tables: what happens to downstream objects of `data` and `clone`
/// rules, with synchronize on and off.
#[test]
fn downstream_decisions_follow_the_documented_tables() {
    use DownstreamAction::{Delete, Keep, Regenerate};
    use LifecycleEvent::*;
    let settings = |source, synchronize, orphan| GenerateSettings {
        source,
        synchronize,
        orphan_downstream_on_policy_delete: orphan,
        generate_existing: false,
    };
    // (event, data+sync, data+nosync, clone+sync, clone+nosync)
    let table = [
        (DownstreamDeleted, Regenerate, Keep, Regenerate, Keep),
        (PolicyDeleted, Delete, Keep, Keep, Keep),
        (TriggerDeleted, Delete, Keep, Delete, Keep),
        (DownstreamModified, Regenerate, Keep, Regenerate, Keep),
        (PolicyModified, Regenerate, Keep, Keep, Keep),
        (
            TriggerModified {
                still_matches: false,
            },
            Delete,
            Keep,
            Delete,
            Keep,
        ),
        (SourceDeleted, Keep, Keep, Delete, Keep),
        (SourceModified, Keep, Keep, Regenerate, Keep),
    ];
    for (event, data_sync, data_nosync, clone_sync, clone_nosync) in table {
        let cases = [
            (settings(SourceKind::Data, true, false), data_sync),
            (settings(SourceKind::Data, false, false), data_nosync),
            (settings(SourceKind::Clone, true, false), clone_sync),
            (settings(SourceKind::Clone, false, false), clone_nosync),
            (settings(SourceKind::CloneList, true, false), clone_sync),
        ];
        for (settings, want) in cases {
            assert_eq!(settings.decide(event), want, "{event:?} with {settings:?}");
        }
    }
    // orphanDownstreamOnPolicyDelete keeps synchronized data downstream objects.
    assert_eq!(
        settings(SourceKind::Data, true, true).decide(PolicyDeleted),
        Keep
    );
}

#[test]
fn generate_existing_runs_for_existing_triggers_on_policy_create_and_update() {
    let doc = |rule_flag: Option<bool>, spec_flag: bool| {
        let mut generate = json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "x",
                                  "namespace": "y", "data": {}});
        if let Some(flag) = rule_flag {
            generate["generateExisting"] = json!(flag);
        }
        json!({"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
               "metadata": {"name": "p"},
               "spec": {"generateExisting": spec_flag, "rules": [{"name": "r",
                   "match": {"any": [{"resources": {"kinds": ["Namespace"]}}]},
                   "generate": generate}]}})
    };
    for (rule_flag, spec_flag, want) in [
        (Some(true), false, true),
        (None, true, true),
        (None, false, false),
        (Some(false), false, false),
    ] {
        let policy = compile_policy(&doc(rule_flag, spec_flag)).unwrap();
        let crate::compile::RuleBody::Generate(generate) = &policy.rules[0].body else {
            panic!("not a generate rule");
        };
        let settings = settings(&policy, generate);
        assert_eq!(
            settings.generate_existing, want,
            "{rule_flag:?} {spec_flag}"
        );
        let on_create = settings.decide(LifecycleEvent::PolicyCreated);
        let on_update = settings.decide(LifecycleEvent::PolicyModified);
        if want {
            assert_eq!(on_create, DownstreamAction::GenerateForExisting);
            assert_eq!(on_update, DownstreamAction::GenerateForExisting);
        } else {
            assert_eq!(on_create, DownstreamAction::Keep);
        }
    }
}

#[test]
fn comparison_view_drops_only_generation_labels() {
    let mut object = json!({"metadata": {"name": "x", "labels": {
        "app.kubernetes.io/managed-by": "kyverno",
        "generate.kyverno.io/policy-name": "p",
        "team": "a"}}});
    strip_generate_labels(&mut object);
    assert_eq!(
        object,
        json!({"metadata": {"name": "x", "labels": {"team": "a"}}})
    );
    let mut only_generated =
        json!({"metadata": {"labels": {"generate.kyverno.io/rule-name": "r"}}});
    strip_generate_labels(&mut only_generated);
    assert_eq!(only_generated, json!({"metadata": {}}));
}

#[test]
fn deeply_nested_data_is_a_clean_error() {
    // A big stack only for building and dropping the 10,000-level value; generation itself
    // must stop at its depth limit.
    let handle = std::thread::Builder::new()
        .stack_size(256 * 1024 * 1024)
        .spawn(|| {
            let mut data = json!("leaf");
            for _ in 0..10_000 {
                let mut level = serde_json::Map::new();
                level.insert("a".to_owned(), data);
                data = Value::Object(level);
            }
            let doc = json!({"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
                "metadata": {"name": "deep"}, "spec": {"rules": [{"name": "r",
                    "match": {"any": [{"resources": {"kinds": ["Namespace"]}}]},
                    "generate": {"apiVersion": "v1", "kind": "ConfigMap", "name": "x",
                                 "namespace": "y", "data": data}}]}});
            let set = PolicySet::new(vec![compile_policy(&doc).unwrap()], Vec::new());
            let trigger =
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}});
            let results = set.generate(&Request::create(trigger), &ObjectStore(Vec::new()));
            let response = results[0].response.rules[0].clone();
            assert_eq!(response.status, crate::response::RuleStatus::Error);
            assert!(
                response.message.contains("nested deeper"),
                "{}",
                response.message
            );
        })
        .expect("spawn");
    handle.join().expect("no panic");
}

#[test]
fn a_policy_exception_skips_the_generate_rule() {
    let policy = json!({"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
        "metadata": {"name": "add-networkpolicy"}, "spec": {"rules": [{"name": "default-deny",
            "match": {"any": [{"resources": {"kinds": ["Namespace"]}}]},
            "generate": {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                         "name": "default-deny", "namespace": "{{request.object.metadata.name}}",
                         "data": {"spec": {"podSelector": {}}}}}]}});
    let exception = json!({"apiVersion": "kyverno.io/v2", "kind": "PolicyException",
        "metadata": {"name": "legacy", "namespace": "kyverno"},
        "spec": {"exceptions": [{"policyName": "add-networkpolicy", "ruleNames": ["default-deny"]}],
                 "match": {"any": [{"resources": {"kinds": ["Namespace"], "names": ["legacy-*"]}}]}}});
    let set = PolicySet::new(
        vec![compile_policy(&policy).unwrap()],
        vec![crate::exceptions::CompiledException::compile(&exception).unwrap()],
    );
    let namespace = |name: &str| {
        Request::create(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
        )
    };
    let excepted = set.generate(&namespace("legacy-billing"), &ObjectStore(Vec::new()));
    let response = &excepted[0].response.rules[0];
    assert_eq!(response.status, crate::response::RuleStatus::Skip);
    assert_eq!(response.exception.as_deref(), Some("kyverno/legacy"));
    assert_eq!(excepted[0].resources().count(), 0);

    let generated = set.generate(&namespace("billing"), &ObjectStore(Vec::new()));
    assert_eq!(
        generated[0].response.rules[0].status,
        crate::response::RuleStatus::Pass
    );
    assert_eq!(generated[0].resources().count(), 1);
}
