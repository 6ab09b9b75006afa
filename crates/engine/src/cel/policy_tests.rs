//! CEL policies through the engine's entry point ([`crate::engine::PolicySet`]): what a user
//! sees for `validate.cel` rules, ValidatingPolicies and ValidatingAdmissionPolicies.

use serde_json::{json, Value};

use crate::compile::CompiledPolicy;
use crate::context::{ContextError, ContextProvider, NoContext};
use crate::engine::{compile_document, CompiledDocument, PolicySet};
use crate::request::{Operation, Request};
use crate::response::{PolicyResponse, RuleStatus};

fn compile(doc: Value) -> CompiledPolicy {
    match compile_document(&doc) {
        Ok(CompiledDocument::Policy(p)) => *p,
        other => panic!("not a policy: {other:?}"),
    }
}

fn pod(name: &str, image: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": "team-a", "labels": {"app": "web"}},
           "spec": {"containers": [{"name": "c", "image": image}]}})
}

fn deployment(name: &str, image: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": name, "namespace": "team-a"},
           "spec": {"template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": image}]}}}})
}

fn run(policy: &CompiledPolicy, object: Value) -> PolicyResponse {
    run_with(policy, Request::create(object), &NoContext)
}

fn run_with(
    policy: &CompiledPolicy,
    request: Request,
    provider: &dyn ContextProvider,
) -> PolicyResponse {
    let set = PolicySet::new(vec![policy.clone()], Vec::new());
    set.validate(&request, provider)
        .into_iter()
        .next()
        .expect("one response per policy")
}

fn statuses(response: &PolicyResponse) -> Vec<(String, RuleStatus)> {
    response
        .rules
        .iter()
        .map(|r| (r.name.to_string(), r.status))
        .collect()
}

fn cluster_policy(rule: Value) -> Value {
    json!({"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
           "metadata": {"name": "cel"}, "spec": {"rules": [rule]}})
}

#[test]
fn validate_cel_rules_pass_fail_and_autogen() {
    let policy = compile(cluster_policy(json!({
        "name": "no-latest",
        "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
        "validate": {"cel": {
            "variables": [{"name": "images", "expression": "object.spec.containers.map(c, c.image)"}],
            "expressions": [{
                "expression": "variables.images.all(i, !i.endsWith(':latest'))",
                "messageExpression": "'latest tag used by ' + object.metadata.name"
            }]
        }}
    })));
    assert!(policy.unsupported_rules().is_empty());
    let good = run(&policy, pod("good", "nginx:1.27"));
    assert_eq!(
        statuses(&good),
        [("no-latest".to_owned(), RuleStatus::Pass)]
    );
    let bad = run(&policy, pod("bad", "nginx:latest"));
    assert_eq!(bad.rules[0].status, RuleStatus::Fail);
    assert_eq!(bad.rules[0].message, "latest tag used by bad");
    // The autogen rule sees the pod template.
    let deploy = run(&policy, deployment("d", "nginx:latest"));
    assert_eq!(
        statuses(&deploy),
        [("autogen-no-latest".to_owned(), RuleStatus::Fail)]
    );
}

#[test]
fn validate_cel_messages_errors_and_preconditions_follow_kubernetes() {
    let policy = compile(cluster_policy(json!({
        "name": "replicas",
        "match": {"any": [{"resources": {"kinds": ["Deployment"]}}]},
        "celPreconditions": [{"name": "labelled", "expression": "has(object.metadata.labels)"}],
        "validate": {"message": "too few replicas", "cel": {"expressions": [
            {"expression": "object.spec.replicas >= 2"}
        ]}}
    })));
    let mut d = deployment("d", "nginx:1");
    assert_eq!(run(&policy, d.clone()).rules[0].status, RuleStatus::Skip);
    d["metadata"]["labels"] = json!({"a": "b"});
    d["spec"]["replicas"] = json!(1);
    let failed = run(&policy, d.clone());
    assert_eq!(failed.rules[0].status, RuleStatus::Fail);
    assert_eq!(failed.rules[0].message, "too few replicas");
    // A missing field is an evaluation error, which Kubernetes' validator turns into a denial.
    d["spec"].as_object_mut().unwrap().remove("replicas");
    let errored = run(&policy, d);
    assert_eq!(errored.rules[0].status, RuleStatus::Fail);
    assert!(
        errored.rules[0].message.contains("resulted in error"),
        "{}",
        errored.rules[0].message
    );
}

#[test]
fn validate_cel_compile_errors_name_the_field() {
    let err = compile_document(&cluster_policy(json!({
        "name": "r",
        "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
        "validate": {"cel": {"expressions": [
            {"expression": "true"},
            {"expression": "object.spec.containers.all(c, "}
        ]}}
    })))
    .unwrap_err();
    assert_eq!(
        err.path,
        "spec.rules[0].validate.cel.expressions[1].expression"
    );
    assert!(err.reason.contains("compilation failed"), "{err}");
}

fn vpol(spec: Value) -> Value {
    json!({"apiVersion": "policies.kyverno.io/v1alpha1", "kind": "ValidatingPolicy",
           "metadata": {"name": "require-tag"}, "spec": spec})
}

fn pods_only() -> Value {
    json!({"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
        "operations": ["CREATE", "UPDATE"], "resources": ["pods"]}]})
}

#[test]
fn validating_policy_matches_by_constraints_and_autogens_controllers() {
    let policy = compile(vpol(json!({
        "validationActions": ["Deny"],
        "matchConstraints": pods_only(),
        "matchConditions": [{"name": "web", "expression": "object.metadata.?labels.?app.orValue('') == 'web'"}],
        "validations": [{"expression": "object.spec.containers.all(c, c.image.contains(':'))",
                         "message": "images need a tag"}]
    })));
    assert!(policy.kind.is_ruleless());
    assert_eq!(
        policy.validation_failure_action,
        crate::response::FailureAction::Enforce
    );
    let names: Vec<&str> = policy.rules.iter().map(|r| &*r.name).collect();
    assert_eq!(
        names,
        [
            "require-tag",
            "autogen-require-tag",
            "autogen-cronjob-require-tag"
        ]
    );
    assert_eq!(
        run(&policy, pod("p", "nginx")).rules[0].message,
        "images need a tag"
    );
    assert_eq!(
        statuses(&run(&policy, pod("p", "nginx:1"))),
        [("require-tag".to_owned(), RuleStatus::Pass)]
    );
    assert_eq!(
        statuses(&run(&policy, deployment("d", "nginx"))),
        [("autogen-require-tag".to_owned(), RuleStatus::Fail)]
    );
    // Not a pod or a controller: no response at all.
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "x"}});
    assert!(run(&policy, cm).rules.is_empty());
    // DELETE is not among the operations.
    let mut delete = Request::create(Value::Null);
    delete.operation = Operation::Delete;
    delete.old_object = Some(pod("p", "nginx"));
    delete.kind = crate::request::GroupVersionKind::of(&pod("p", "nginx"));
    assert!(run_with(&policy, delete, &NoContext).rules.is_empty());
    // Match conditions that do not hold skip the policy.
    let mut other = pod("o", "nginx");
    other["metadata"]["labels"]["app"] = json!("db");
    assert_eq!(run(&policy, other).rules[0].status, RuleStatus::Skip);
}

#[test]
fn validating_policy_errors_are_errors_and_variables_are_lazy() {
    let policy = compile(vpol(json!({
        "matchConstraints": pods_only(),
        "variables": [
            {"name": "broken", "expression": "object.spec.nothing.here"},
            {"name": "count", "expression": "size(object.spec.containers)"}
        ],
        "validations": [
            {"expression": "variables.count == 1"},
            {"expression": "variables.broken == 1"}
        ]
    })));
    let response = run(&policy, pod("p", "nginx:1"));
    assert_eq!(response.rules[0].status, RuleStatus::Error);
    assert!(
        response.rules[0].message.contains("variable \"broken\""),
        "{}",
        response.rules[0].message
    );
    let mut two = pod("p", "nginx:1");
    two["spec"]["containers"] =
        json!([{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]);
    // The first validation fails before the broken variable is ever needed.
    let response = run(&policy, two);
    assert_eq!(response.rules[0].status, RuleStatus::Fail);
    assert_eq!(
        response.rules[0].message,
        "CEL expression validation failed at index 0"
    );
}

/// A provider holding a ConfigMap, a Namespace and image metadata.
struct Cluster;

impl ContextProvider for Cluster {
    fn resource(
        &self,
        _api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Value>, ContextError> {
        Ok(match (kind, namespace, name) {
            ("ConfigMap", "platform", "registries") => Some(json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "registries", "namespace": "platform"},
                "data": {"allowed": "ghcr.io/,registry.k8s.io/"}})),
            ("Namespace", "", "team-a") => Some(json!({
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": "team-a", "labels": {"tier": "prod"}}})),
            ("LimitRange", "team-a", "params") => Some(json!({
                "apiVersion": "v1", "kind": "LimitRange",
                "metadata": {"name": "params", "namespace": "team-a"},
                "spec": {"maxContainers": 1}})),
            _ => None,
        })
    }

    fn image_data(&self, reference: &str) -> Result<Option<Value>, ContextError> {
        Ok((reference == "ghcr.io/app:1").then(|| json!({"config": {"User": "1000"}})))
    }
}

#[test]
fn validating_policy_reaches_the_provider() {
    let policy = compile(vpol(json!({
        "matchConstraints": pods_only(),
        "variables": [
            {"name": "allowed", "expression": "resource.Get('v1', 'configmaps', 'platform', 'registries').data.allowed.split(',')"}
        ],
        "validations": [
            {"expression": "object.spec.containers.all(c, variables.allowed.exists(r, c.image.startsWith(r)))"},
            {"expression": "object.spec.containers.all(c, image.GetMetadata(c.image).config.User != '0')"},
            {"expression": "namespaceObject.metadata.labels.tier == 'prod'"}
        ]
    })));
    let ok = run_with(
        &policy,
        Request::create(pod("p", "ghcr.io/app:1")),
        &Cluster,
    );
    assert_eq!(
        ok.rules[0].status,
        RuleStatus::Pass,
        "{}",
        ok.rules[0].message
    );
    let denied = run_with(
        &policy,
        Request::create(pod("p", "docker.io/app:1")),
        &Cluster,
    );
    assert_eq!(denied.rules[0].status, RuleStatus::Fail);
    // Without the provider the lookups fail, and say why.
    let offline = run(&policy, pod("p", "ghcr.io/app:1"));
    assert_eq!(offline.rules[0].status, RuleStatus::Error);
    assert!(
        offline.rules[0].message.contains("not found"),
        "{}",
        offline.rules[0].message
    );
}

#[test]
fn namespaced_validating_policy_stays_in_its_namespace() {
    let policy = compile(json!({
        "apiVersion": "policies.kyverno.io/v1", "kind": "NamespacedValidatingPolicy",
        "metadata": {"name": "local", "namespace": "team-b"},
        "spec": {"matchConstraints": pods_only(), "validations": [{"expression": "false"}]}
    }));
    assert_eq!(policy.key(), "team-b/local");
    assert!(run(&policy, pod("p", "a:1")).rules.is_empty());
    let mut there = pod("p", "a:1");
    there["metadata"]["namespace"] = json!("team-b");
    assert_eq!(run(&policy, there).rules[0].status, RuleStatus::Fail);
}

fn vap() -> Value {
    json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
    "metadata": {"name": "max-containers"},
    "spec": {
        "paramKind": {"apiVersion": "v1", "kind": "LimitRange"},
        "matchConstraints": pods_only(),
        "validations": [{"expression": "size(object.spec.containers) <= params.spec.maxContainers",
                         "messageExpression": "'at most ' + string(params.spec.maxContainers) + ' containers'"}]
    }})
}

#[test]
fn admission_policy_with_binding_and_params() {
    let binding = json!({"apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding", "metadata": {"name": "b"},
        "spec": {"policyName": "max-containers", "validationActions": ["Deny"],
                 "paramRef": {"name": "params", "parameterNotFoundAction": "Deny"},
                 "matchResources": {"namespaceSelector": {"matchLabels": {"tier": "prod"}}}}});
    let policy = super::policy::compile_admission_policy(&vap(), &[&binding]).unwrap();
    assert_eq!(
        policy.validation_failure_action,
        crate::response::FailureAction::Enforce
    );
    let mut request = Request::create(pod("p", "a:1"));
    request.namespace_labels = Some([("tier".to_owned(), "prod".to_owned())].into());
    let one = run_with(&policy, request.clone(), &Cluster);
    assert_eq!(
        statuses(&one),
        [("max-containers".to_owned(), RuleStatus::Pass)]
    );
    let mut two = request.clone();
    two.object["spec"]["containers"] =
        json!([{"name": "a", "image": "a"}, {"name": "b", "image": "b"}]);
    let denied = run_with(&policy, two, &Cluster);
    assert_eq!(denied.rules[0].status, RuleStatus::Fail);
    assert_eq!(denied.rules[0].message, "at most 1 containers");
    // Missing params with parameterNotFoundAction: Deny deny.
    let missing = run_with(&policy, request.clone(), &NoContext);
    assert_eq!(missing.rules[0].status, RuleStatus::Fail);
    // The binding's namespace selector keeps other namespaces out.
    let mut dev = request;
    dev.namespace_labels = Some([("tier".to_owned(), "dev".to_owned())].into());
    assert!(run_with(&policy, dev, &Cluster).rules.is_empty());
}

#[test]
fn admission_policy_without_binding_uses_its_own_constraints() {
    let mut doc = vap();
    doc["spec"].as_object_mut().unwrap().remove("paramKind");
    doc["spec"]["validations"] = json!([{"expression": "object.metadata.name.startsWith('web-')"}]);
    let policy = compile(doc);
    assert_eq!(
        run(&policy, pod("web-1", "a:1")).rules[0].status,
        RuleStatus::Pass
    );
    let failed = run(&policy, pod("db-1", "a:1"));
    assert_eq!(failed.rules[0].status, RuleStatus::Fail);
    assert_eq!(
        failed.rules[0].message,
        "failed expression: object.metadata.name.startsWith('web-')"
    );
}

#[test]
fn exceptions_skip_validate_cel_rules() {
    let policy = compile(cluster_policy(json!({
        "name": "no-latest",
        "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
        "validate": {"cel": {"expressions": [{"expression": "false"}]}}
    })));
    let exception = crate::exceptions::CompiledException::compile(&json!({
        "apiVersion": "kyverno.io/v2", "kind": "PolicyException",
        "metadata": {"name": "allow", "namespace": "team-a"},
        "spec": {"exceptions": [{"policyName": "cel", "ruleNames": ["no-latest"]}],
                 "match": {"any": [{"resources": {"kinds": ["Pod"], "names": ["legacy"]}}]}}
    }))
    .unwrap();
    let set = PolicySet::new(vec![policy], vec![exception]);
    let skipped = set.validate(&Request::create(pod("legacy", "a:latest")), &NoContext);
    assert_eq!(skipped[0].rules[0].status, RuleStatus::Skip);
    let failed = set.validate(&Request::create(pod("new", "a:latest")), &NoContext);
    assert_eq!(failed[0].rules[0].status, RuleStatus::Fail);
}

#[test]
fn a_namespace_selector_in_match_constraints_is_known_once_compiled() {
    let mut constraints = pods_only();
    let plain = compile(vpol(json!({"matchConstraints": constraints.clone(),
        "validations": [{"expression": "true"}]})));
    assert!(!plain.selects_by_namespace_labels);
    constraints["namespaceSelector"] = json!({"matchLabels": {"env": "prod"}});
    let selecting = compile(vpol(json!({"matchConstraints": constraints,
        "validations": [{"expression": "true"}]})));
    assert!(selecting.selects_by_namespace_labels);
}
