//! Kyverno's security advisories that concern the engine, each performed against bylaw.
//! docs/security.md lists them with the advisory ids; a test here is named after the attack
//! and asserts the outcome a correct engine gives (the bypass or crash does not happen).

use std::collections::BTreeMap;

use bylaw_engine::compile::{compile_policy, CompiledPolicy};
use bylaw_engine::context::NoContext;
use bylaw_engine::engine::PolicySet;
use bylaw_engine::exceptions::CompiledException;
use bylaw_engine::request::{Operation, Request};
use bylaw_engine::response::{PolicyResponse, RuleStatus};
use serde_json::{json, Value};

fn policy(doc: Value) -> CompiledPolicy {
    compile_policy(&doc).unwrap_or_else(|e| panic!("policy does not compile: {e:?}"))
}

fn exception(doc: Value) -> CompiledException {
    CompiledException::compile(&doc).unwrap_or_else(|e| panic!("exception does not compile: {e:?}"))
}

/// The status of one rule (the only rule of the only policy that answered).
fn only_status(responses: &[PolicyResponse]) -> RuleStatus {
    let rules: Vec<_> = responses.iter().flat_map(|r| r.rules.iter()).collect();
    assert_eq!(rules.len(), 1, "expected one rule response, got {rules:?}");
    rules[0].status
}

#[allow(dead_code)]
fn statuses(responses: &[PolicyResponse]) -> Vec<(String, RuleStatus)> {
    responses
        .iter()
        .flat_map(|r| r.rules.iter())
        .map(|r| (r.name.to_string(), r.status))
        .collect()
}

fn require_team_label(kinds: &[&str]) -> Value {
    json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": "require-team",
                     "annotations": {"pod-policies.kyverno.io/autogen-controllers": "none"}},
        "spec": {
            "validationFailureAction": "Enforce",
            "background": false,
            "rules": [{
                "name": "check-team",
                "match": {"any": [{"resources": {"kinds": kinds}}]},
                "validate": {
                    "message": "label team is required",
                    "pattern": {"metadata": {"labels": {"team": "?*"}}}
                }
            }]
        }
    })
}

fn update(object: Value, old: Value) -> Request {
    let mut request = Request::create(object);
    request.operation = Operation::Update;
    request.old_object = Some(old);
    request
}

// ---------------------------------------------------------------------------------------------
// GHSA-hq4m-4948-64cc: resources carrying `deletionTimestamp` were exempted from policies, so a
// finalizer that keeps an object "being deleted" forever let it be changed without checks.

#[test]
fn deletion_timestamp_does_not_exempt_an_update_from_validation() {
    let set = PolicySet::new(vec![policy(require_team_label(&["Service"]))], vec![]);
    let terminating = |labels: Value| {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "shop", "labels": labels,
                         "finalizers": ["example.com/hold"],
                         "deletionTimestamp": "2024-01-01T00:00:00Z",
                         "deletionGracePeriodSeconds": 0},
            "spec": {"ports": [{"port": 80}]}
        })
    };
    // The old object complied; the update removes the label while the object is terminating.
    let request = update(terminating(json!({})), terminating(json!({"team": "a"})));
    assert_eq!(
        only_status(&set.validate(&request, &NoContext)),
        RuleStatus::Fail
    );
}

#[test]
fn deletion_timestamp_on_a_created_object_does_not_exempt_it() {
    let set = PolicySet::new(vec![policy(require_team_label(&["Pod"]))], vec![]);
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "shop",
                     "deletionTimestamp": "2024-01-01T00:00:00Z"},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}
    });
    assert_eq!(
        only_status(&set.validate(&Request::create(pod), &NoContext)),
        RuleStatus::Fail
    );
}

#[test]
fn deletion_timestamp_does_not_exempt_a_terminating_object_from_mutation() {
    let add_label = json!({
        "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
        "metadata": {"name": "add-owner"},
        "spec": {"rules": [{
            "name": "owner",
            "match": {"any": [{"resources": {"kinds": ["Service"]}}]},
            "mutate": {"patchStrategicMerge": {"metadata": {"labels": {"owner": "platform"}}}}
        }]}
    });
    let set = PolicySet::new(vec![policy(add_label)], vec![]);
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop", "finalizers": ["example.com/hold"],
                     "deletionTimestamp": "2024-01-01T00:00:00Z"},
        "spec": {"ports": [{"port": 80}]}
    });
    let result = set.mutate(&update(service.clone(), service), &NoContext);
    assert_eq!(result.patched["metadata"]["labels"]["owner"], "platform");
}

// ---------------------------------------------------------------------------------------------
// GHSA-jrr2-x33p-6hvc (engine half): a `namespaceSelector` is decided on the labels the
// request carries; the runtime half (labels that cannot be looked up) is in
// crates/runtime/src/evaluator.rs and crates/webhook/tests/advisories.rs.

#[test]
fn namespace_selector_selects_by_the_namespace_labels_not_the_object_labels() {
    let doc = json!({
        "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
        "metadata": {"name": "prod-team",
                     "annotations": {"pod-policies.kyverno.io/autogen-controllers": "none"}},
        "spec": {"validationFailureAction": "Enforce", "rules": [{
            "name": "check-team",
            "match": {"any": [{"resources": {
                "kinds": ["Pod"],
                "namespaceSelector": {"matchLabels": {"env": "prod"}}
            }}]},
            "validate": {"message": "team required",
                         "pattern": {"metadata": {"labels": {"team": "?*"}}}}
        }]}
    });
    let set = PolicySet::new(vec![policy(doc)], vec![]);
    // The attacker labels the Pod itself `env: dev`: it must not change what the namespace is.
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "payments", "labels": {"env": "dev"}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}
    });
    let mut request = Request::create(pod);
    request.namespace_labels = Some(BTreeMap::from([("env".to_owned(), "prod".to_owned())]));
    assert_eq!(
        only_status(&set.validate(&request, &NoContext)),
        RuleStatus::Fail
    );
}

// ---------------------------------------------------------------------------------------------
// GHSA-gg4x-fgg2-h9w9: with two PolicyExceptions for the same policy, a resource was let
// through that only the narrower one was written for, and only partly. Each exception must
// exempt what it names, for what it matches, and nothing of the other's.

fn disallow_host_path() -> Value {
    json!({
        "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
        "metadata": {"name": "disallow-host-path",
                     "annotations": {"pod-policies.kyverno.io/autogen-controllers": "none"}},
        "spec": {"validationFailureAction": "Enforce", "background": true, "rules": [{
            "name": "host-path",
            "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
            "validate": {
                "message": "HostPath volumes are forbidden.",
                "pattern": {"spec": {"=(volumes)": [{"X(hostPath)": "null"}]}}
            }
        }]}
    })
}

fn host_path_pod(name: &str, namespace: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "containers": [{"name": "c", "image": "busybox"}],
            "volumes": [{"name": "host", "hostPath": {"path": "/etc"}}]
        }
    })
}

#[test]
fn two_exceptions_each_exempt_only_what_they_match() {
    // The narrow exception, listed first: one Pod name in `monitoring`, and only with a label.
    let narrow = exception(json!({
        "apiVersion": "kyverno.io/v2", "kind": "PolicyException",
        "metadata": {"name": "node-exporter", "namespace": "monitoring"},
        "spec": {
            "exceptions": [{"policyName": "disallow-host-path", "ruleNames": ["host-path"]}],
            "match": {"any": [{"resources": {"kinds": ["Pod"], "namespaces": ["monitoring"],
                                              "names": ["node-exporter-*"]}}]},
            "conditions": {"all": [{"key": "{{ request.object.metadata.labels.approved || '' }}",
                                     "operator": "Equals", "value": "yes"}]}
        }
    }));
    // A second exception for the same rule, for another namespace entirely.
    let other = exception(json!({
        "apiVersion": "kyverno.io/v2", "kind": "PolicyException",
        "metadata": {"name": "logging", "namespace": "monitoring"},
        "spec": {
            "exceptions": [{"policyName": "disallow-host-path", "ruleNames": ["host-path"]}],
            "match": {"any": [{"resources": {"kinds": ["Pod"], "namespaces": ["logging"]}}]}
        }
    }));
    for exceptions in [
        vec![narrow.clone(), other.clone()],
        vec![other.clone(), narrow.clone()],
    ] {
        let set = PolicySet::new(vec![policy(disallow_host_path())], exceptions);
        let check = |pod: Value| only_status(&set.validate(&Request::create(pod), &NoContext));
        // What the narrow exception is for: exempted.
        assert_eq!(
            check(host_path_pod(
                "node-exporter-1",
                "monitoring",
                json!({"approved": "yes"})
            )),
            RuleStatus::Skip
        );
        // Its name and namespace but not its condition: the other exception must not fill in.
        assert_eq!(
            check(host_path_pod("node-exporter-1", "monitoring", json!({}))),
            RuleStatus::Fail
        );
        // Another name in its namespace.
        assert_eq!(
            check(host_path_pod(
                "miner",
                "monitoring",
                json!({"approved": "yes"})
            )),
            RuleStatus::Fail
        );
        // What the other exception is for.
        assert_eq!(
            check(host_path_pod("fluentd", "logging", json!({}))),
            RuleStatus::Skip
        );
    }
}

fn baseline_pod_security() -> Value {
    json!({
        "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
        "metadata": {"name": "psa",
                     "annotations": {"pod-policies.kyverno.io/autogen-controllers": "none"}},
        "spec": {"validationFailureAction": "Enforce", "rules": [{
            "name": "baseline",
            "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
            "validate": {"podSecurity": {"level": "baseline", "version": "latest"}}
        }]}
    })
}

fn pod_security_exception(name: &str, pod_names: &[&str], exclusions: Value) -> CompiledException {
    exception(json!({
        "apiVersion": "kyverno.io/v2", "kind": "PolicyException",
        "metadata": {"name": name, "namespace": "bylaw"},
        "spec": {
            "exceptions": [{"policyName": "psa", "ruleNames": ["baseline"]}],
            "match": {"any": [{"resources": {"kinds": ["Pod"], "names": pod_names}}]},
            "podSecurity": exclusions
        }
    }))
}

#[test]
fn two_pod_security_exceptions_do_not_combine_their_exclusions() {
    // One exception lets `agent-*` Pods mount /var/log only; another lets `debug-*` Pods use
    // host namespaces. An `agent-*` Pod mounting /etc and sharing the host PID namespace needs
    // both loosened, and neither exception grants both to it.
    let var_log_only = pod_security_exception(
        "agent-logs",
        &["agent-*"],
        json!([{"controlName": "HostPath Volumes",
                "restrictedField": "spec.volumes[*].hostPath.path", "values": ["/var/log"]}]),
    );
    let host_namespaces = pod_security_exception(
        "debuggers",
        &["debug-*", "agent-*"],
        json!([{"controlName": "Host Namespaces"}]),
    );
    let pod = |name: &str, path: &str| {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "ops"},
            "spec": {
                "hostPID": true,
                "containers": [{"name": "c", "image": "agent:1"}],
                "volumes": [{"name": "host", "hostPath": {"path": path}}]
            }
        })
    };
    for exceptions in [
        vec![var_log_only.clone(), host_namespaces.clone()],
        vec![host_namespaces.clone(), var_log_only.clone()],
    ] {
        let set = PolicySet::new(vec![policy(baseline_pod_security())], exceptions);
        let check = |name: &str, path: &str| {
            only_status(&set.validate(&Request::create(pod(name, path)), &NoContext))
        };
        assert_eq!(check("agent-1", "/etc"), RuleStatus::Fail);
        assert_eq!(check("debug-1", "/var/log"), RuleStatus::Fail);
    }
}

// ---------------------------------------------------------------------------------------------
// GHSA-r5p3-955p-5ggq: `{{@ | non_existent_function}}` yielded nil into the policy and a type
// assertion on it crashed the admission controller. Here it is an error result, never a panic.

#[test]
fn a_null_jmespath_result_in_any_substituted_place_is_data_not_a_crash() {
    // `@ | non_existent_function` is a field lookup that finds nothing (null); with parentheses
    // it calls a function that does not exist (an error). Each place gets what a null (or an
    // error) means there.
    let cases = [
        // A failing rule's message shows the null.
        (
            "message",
            json!({"validate": {"message": "{{@ | non_existent_function}}",
            "pattern": {"metadata": {"labels": {"owner": "?*"}}}}}),
            RuleStatus::Fail,
        ),
        // A null pattern value does not match the label that is set.
        (
            "pattern",
            json!({"validate": {"pattern": {"metadata": {"labels":
            {"team": "{{@ | non_existent_function}}"}}}}}),
            RuleStatus::Fail,
        ),
        // null is not "x": nothing to deny.
        (
            "deny",
            json!({"validate": {"deny": {"conditions": {"any": [
            {"key": "{{@ | non_existent_function}}", "operator": "Equals", "value": "x"}]}}}}),
            RuleStatus::Pass,
        ),
        (
            "unknown function in a message",
            json!({"validate": {
            "message": "{{ non_existent_function(@) }}",
            "pattern": {"metadata": {"labels": {"owner": "?*"}}}}}),
            RuleStatus::Fail,
        ),
        (
            "unknown function in a pattern",
            json!({"validate": {"pattern": {"metadata": {"labels":
            {"team": "{{ non_existent_function(@) }}"}}}}}),
            RuleStatus::Error,
        ),
        (
            "unknown function in a condition",
            json!({"validate": {"deny": {"conditions": {"any": [
            {"key": "{{ non_existent_function(@) }}", "operator": "Equals", "value": "x"}]}}}}),
            RuleStatus::Error,
        ),
        (
            "unknown function in a variable",
            json!({
            "context": [{"name": "v", "variable": {"jmesPath": "non_existent_function(@)"}}],
            "validate": {"deny": {"conditions": {"any": [
                {"key": "{{v}}", "operator": "Equals", "value": "x"}]}}}}),
            RuleStatus::Error,
        ),
    ];
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "shop", "labels": {"team": "a"}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}
    });
    for (place, body, want) in cases {
        let mut rule = json!({"name": "r", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]}});
        for (key, value) in body.as_object().into_iter().flatten() {
            rule[key] = value.clone();
        }
        let doc = json!({
            "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
            "metadata": {"name": "null-substitution",
                         "annotations": {"pod-policies.kyverno.io/autogen-controllers": "none"}},
            "spec": {"validationFailureAction": "Enforce", "rules": [rule]}
        });
        let set = PolicySet::new(vec![policy(doc)], vec![]);
        let responses = set.validate(&Request::create(pod.clone()), &NoContext);
        assert_eq!(only_status(&responses), want, "{place}: {responses:?}");
    }

    // Mutation: a null label value and a null annotation key.
    let mutate = |patch: Value| {
        let doc = json!({
            "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
            "metadata": {"name": "null-label"},
            "spec": {"rules": [{
                "name": "label",
                "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "mutate": {"patchStrategicMerge": patch}
            }]}
        });
        PolicySet::new(vec![policy(doc)], vec![]).mutate(&Request::create(pod.clone()), &NoContext)
    };
    // A null in a strategic merge patch removes the field, as a literal null would.
    let result = mutate(json!({"metadata": {"labels": {"team": "{{@ | non_existent_function}}"}}}));
    assert_eq!(only_status(&result.responses), RuleStatus::Pass);
    assert!(result.patched["metadata"]["labels"].get("team").is_none());
    let result =
        mutate(json!({"metadata": {"labels": {"team": "{{ non_existent_function(@) }}"}}}));
    assert_eq!(only_status(&result.responses), RuleStatus::Error);
    assert_eq!(result.patched, pod, "an errored rule changes nothing");
    let result =
        mutate(json!({"metadata": {"annotations": {"{{ non_existent_function(@) }}": "x"}}}));
    assert_eq!(only_status(&result.responses), RuleStatus::Error);
    assert_eq!(result.patched, pod, "an errored rule changes nothing");
}

// ---------------------------------------------------------------------------------------------
// GHSA-r2rj-wwm5-x6mq: context variables that double a string at every step (`join` of the
// previous one with itself) exhausted the admission controller's memory.

#[test]
fn context_variables_that_double_a_string_stop_with_an_error() {
    amplify_through_variables("join('', [l{prev}, l{prev}])");
}

#[test]
fn context_variables_that_double_a_list_stop_with_an_error() {
    amplify_through_variables("[l{prev}, l{prev}]");
}

/// Forty context variables, each built from two copies of the one before (`{prev}` in
/// `step`), starting from 1 KiB: 2^40 KiB unless something stops it.
fn amplify_through_variables(step: &str) {
    let mut context = vec![json!({"name": "l0", "variable": {"value": "x".repeat(1024)}})];
    for level in 1..=40 {
        context.push(json!({"name": format!("l{level}"), "variable": {
            "jmesPath": step.replace("{prev}", &(level - 1).to_string())
        }}));
    }
    let doc = json!({
        "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
        "metadata": {"name": "amplify",
                     "annotations": {"pod-policies.kyverno.io/autogen-controllers": "none"}},
        "spec": {"validationFailureAction": "Enforce", "rules": [{
            "name": "grow",
            "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
            "context": context,
            "validate": {"deny": {"conditions": {"any": [
                {"key": "{{ length(l40) }}", "operator": "Equals", "value": 0}]}}}
        }]}
    });
    let set = PolicySet::new(vec![policy(doc)], vec![]);
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": "p", "namespace": "shop"},
                     "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
    let responses = set.validate(&Request::create(pod), &NoContext);
    let rule = &responses[0].rules[0];
    assert_eq!(rule.status, RuleStatus::Error, "{rule:?}");
}

#[test]
fn a_jmespath_expression_nested_deeper_than_the_stack_allows_stops_with_an_error() {
    // Forty nested `map` calls: deep enough to overflow a 2 MiB stack in an unoptimised build
    // when nothing bounds the recursion.
    let mut nested = String::from("`[\"x\"]`");
    for _ in 0..40 {
        nested = format!("map(&[@, @], {nested})[]");
    }
    let doc = json!({
        "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
        "metadata": {"name": "deep",
                     "annotations": {"pod-policies.kyverno.io/autogen-controllers": "none"}},
        "spec": {"validationFailureAction": "Enforce", "rules": [{
            "name": "deep",
            "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
            "validate": {"deny": {"conditions": {"any": [
                {"key": format!("{{{{ length({nested}) }}}}"), "operator": "Equals", "value": 0}]}}}
        }]}
    });
    let set = PolicySet::new(vec![policy(doc)], vec![]);
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": "p", "namespace": "shop"},
                     "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
    let responses = set.validate(&Request::create(pod), &NoContext);
    assert_eq!(only_status(&responses), RuleStatus::Error);
    assert!(
        responses[0].rules[0].message.contains("nests deeper"),
        "{:?}",
        responses[0].rules[0].message
    );
}

#[test]
fn a_jmespath_expression_that_multiplies_a_list_stops_with_an_error() {
    // Without context entries: one expression whose intermediate results double.
    // Each level makes 32 copies of every element: 32^6 = 2^30 elements after six levels.
    let copies = vec!["@"; 32].join(", ");
    let mut growing = String::from("`[\"xxxxxxxxxxxxxxxx\"]`");
    for _ in 0..6 {
        growing = format!("map(&[{copies}], {growing})[]");
    }
    let doc = json!({
        "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
        "metadata": {"name": "amplify-list",
                     "annotations": {"pod-policies.kyverno.io/autogen-controllers": "none"}},
        "spec": {"validationFailureAction": "Enforce", "rules": [{
            "name": "grow",
            "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
            "validate": {"deny": {"conditions": {"any": [
                {"key": format!("{{{{ length({growing}) }}}}"), "operator": "Equals", "value": 0}]}}}
        }]}
    });
    let set = PolicySet::new(vec![policy(doc)], vec![]);
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": "p", "namespace": "shop"},
                     "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
    let responses = set.validate(&Request::create(pod), &NoContext);
    assert_eq!(only_status(&responses), RuleStatus::Error);
    assert!(
        responses[0].rules[0].message.contains("steps of work"),
        "{:?}",
        responses[0].rules[0].message
    );
}

// ---------------------------------------------------------------------------------------------
// GHSA-fpjq-c37h-cqcv: a foreach mutation whose `patchesJson6902` (or patchStrategicMerge)
// resolved to nil hit an unchecked type assertion and crashed the controllers.

#[test]
fn a_foreach_mutation_whose_patch_resolves_to_null_is_an_error_not_a_crash() {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "shop"},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}
    });
    let foreach_bodies = [
        json!({"list": "request.object.spec.containers",
               "patchesJson6902": "{{ element.missing }}"}),
        json!({"list": "request.object.spec.containers",
               "patchesJson6902": "{{ element.missing || `null` }}"}),
        json!({"list": "request.object.spec.containers",
               "patchStrategicMerge": "{{ element.missing }}"}),
        json!({"list": "request.object.spec.containers",
               "patchesJson6902": "{{@ | non_existent_function}}"}),
        json!({"list": "request.object.spec.containers", "patchesJson6902": 42}),
        json!({"list": "request.object.spec.containers", "patchStrategicMerge": null}),
        json!({"list": "request.object.spec.containers",
               "patchesJson6902": "- op: add\n  path: /metadata/labels/x\n  value: {{ element.missing }}"}),
    ];
    for body in foreach_bodies {
        let doc = json!({
            "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
            "metadata": {"name": "foreach-null"},
            "spec": {"rules": [{
                "name": "each",
                "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "mutate": {"foreach": [body.clone()]}
            }]}
        });
        let Ok(compiled) = compile_policy(&doc) else {
            continue;
        };
        let set = PolicySet::new(vec![compiled], vec![]);
        let result = set.mutate(&Request::create(pod.clone()), &NoContext);
        let status = only_status(&result.responses);
        assert_eq!(status, RuleStatus::Error, "{body}");
        assert_eq!(result.patched, pod, "{body}: nothing is changed");
    }
}

// ---------------------------------------------------------------------------------------------
// GHSA-33hq-f2mf-jm3c: the podSecurity subrule's baseline level let `Unconfined` seccomp
// profiles through.

#[test]
fn baseline_pod_security_refuses_unconfined_seccomp_everywhere_it_can_be_set() {
    let set = PolicySet::new(vec![policy(baseline_pod_security())], vec![]);
    let unconfined = json!({"seccompProfile": {"type": "Unconfined"}});
    let container = |security: Option<&Value>| {
        let mut c = json!({"name": "c", "image": "busybox"});
        if let Some(s) = security {
            c["securityContext"] = s.clone();
        }
        c
    };
    let pods = [
        (
            "pod level",
            json!({"securityContext": unconfined,
                             "containers": [container(None)]}),
        ),
        (
            "container",
            json!({"containers": [container(Some(&unconfined))]}),
        ),
        (
            "second container",
            json!({"containers": [container(None),
                                     {"name": "d", "image": "busybox",
                                      "securityContext": unconfined}]}),
        ),
        (
            "init container",
            json!({"initContainers": [container(Some(&unconfined))],
                                  "containers": [container(None)]}),
        ),
        (
            "ephemeral container",
            json!({"containers": [container(None)],
                                       "ephemeralContainers": [container(Some(&unconfined))]}),
        ),
        (
            "pod level, container RuntimeDefault",
            json!({"securityContext": unconfined,
                "containers": [container(Some(&json!({"seccompProfile": {"type": "RuntimeDefault"}})))]}),
        ),
    ];
    for (place, spec) in pods {
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
                         "metadata": {"name": "p", "namespace": "shop"}, "spec": spec});
        assert_eq!(
            only_status(&set.validate(&Request::create(pod), &NoContext)),
            RuleStatus::Fail,
            "{place}"
        );
    }
    // The control does fire on a clean Pod: a RuntimeDefault profile passes.
    let clean = json!({"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": "p", "namespace": "shop"},
                       "spec": {"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                                "containers": [container(None)]}});
    assert_eq!(
        only_status(&set.validate(&Request::create(clean), &NoContext)),
        RuleStatus::Pass
    );
}

// ---------------------------------------------------------------------------------------------
// Not an advisory but the same class (issue #14): Kyverno re-scans substituted values for
// `{{ }}`, so a resource's own fields run JMESPath of the requester's choice over the whole
// context and the result comes back in the denial message. bylaw treats values as final.

#[test]
fn a_resource_cannot_make_the_policy_evaluate_its_fields_as_variables() {
    let doc = json!({
        "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
        "metadata": {"name": "no-notes",
                     "annotations": {"pod-policies.kyverno.io/autogen-controllers": "none"}},
        "spec": {"validationFailureAction": "Enforce", "rules": [{
            "name": "check-note",
            "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
            // Stands for anything the rule looked up: a ConfigMap, an API call.
            "context": [{"name": "secret", "variable": {"value": "hunter2"}}],
            "validate": {
                "message": "note {{ request.object.metadata.annotations.note }} is not allowed",
                "deny": {"conditions": {"any": [{
                    "key": "{{ request.object.metadata.annotations.note }}",
                    "operator": "NotEquals", "value": ""}]}}
            }
        }]}
    });
    let set = PolicySet::new(vec![policy(doc)], vec![]);
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": "p", "namespace": "shop",
                                  "annotations": {"note": "{{ secret }}"}},
                     "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
    let responses = set.validate(&Request::create(pod), &NoContext);
    let rule = &responses[0].rules[0];
    assert_eq!(rule.status, RuleStatus::Fail);
    assert_eq!(rule.message, "note {{ secret }} is not allowed");
}

// ---------------------------------------------------------------------------------------------
// The engine does no I/O on the admission path: `is_external_url` used to resolve request-
// supplied host names with a blocking DNS lookup. Now it decides from the text.

#[test]
fn is_external_url_decides_without_dns() {
    let env = bylaw_engine::jmespath::SystemEnv;
    let query = |url: &str| {
        bylaw_engine::jmespath::compile(&format!("is_external_url('{url}')"))
            .and_then(|e| e.search_with_env(&json!({}), &env))
    };
    // A name under a reserved, never-delegated suffix: a lookup would fail or hang; the answer
    // comes from the text, at once.
    assert_eq!(query("http://bylaw-test.invalid/").unwrap(), json!(true));
    assert_eq!(
        query("http://metadata.google.internal/").unwrap(),
        json!(false)
    );
    assert_eq!(
        query("http://169.254.169.254/latest/meta-data").unwrap(),
        json!(false)
    );
}
