//! Checks rendered Kubernetes manifests (e.g. `helm template` output) against the schemas the
//! project has: each built-in kind is decoded into its k8s-openapi type and encoded again, and
//! anything that does not survive the round trip (an unknown or misspelt field, a wrong type) is
//! reported with its path; ClusterPolicies are decoded into bylaw's types and compiled by the
//! engine; the prometheus-operator kinds the chart renders are checked against the fields of
//! their API that the chart uses. `make helm-lint` runs it.
//!
//! Usage: `cargo run -p bylaw-cli --example check_manifests -- FILE...`; exits 1 on a problem.

use std::process::ExitCode;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

fn main() -> ExitCode {
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() {
        eprintln!("usage: check_manifests FILE...");
        return ExitCode::from(2);
    }
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in &files {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) => {
                problems.push(format!("{file}: {e}"));
                continue;
            }
        };
        match check_stream(&text, file) {
            Ok(count) => checked += count,
            Err(found) => problems.extend(found),
        }
    }
    for problem in &problems {
        eprintln!("{problem}");
    }
    println!(
        "check_manifests: {checked} documents in {} files, {} problems",
        files.len(),
        problems.len()
    );
    if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Checks every document of a YAML stream; returns how many, or every problem found.
fn check_stream(text: &str, source: &str) -> Result<usize, Vec<String>> {
    let documents = bylaw_api::parse_documents(text, source).map_err(|e| vec![e.to_string()])?;
    let mut problems = Vec::new();
    for document in &documents {
        let kind = document["kind"].as_str().unwrap_or("<no kind>");
        let name = document["metadata"]["name"].as_str().unwrap_or("<no name>");
        if let Err(problem) = check_document(document) {
            problems.push(format!("{source}: {kind}/{name}: {problem}"));
        }
    }
    if problems.is_empty() {
        Ok(documents.len())
    } else {
        Err(problems)
    }
}

fn check_document(doc: &Value) -> Result<(), String> {
    let api_version = doc["apiVersion"].as_str().unwrap_or_default();
    let kind = doc["kind"].as_str().unwrap_or_default();
    match (api_version, kind) {
        ("v1", "ServiceAccount") => round_trip::<ServiceAccount>(doc),
        ("v1", "Service") => round_trip::<Service>(doc),
        ("v1", "ConfigMap") => round_trip::<ConfigMap>(doc),
        ("v1", "Secret") => round_trip::<Secret>(doc),
        ("v1", "Namespace") => round_trip::<Namespace>(doc),
        ("apps/v1", "Deployment") => round_trip::<Deployment>(doc),
        ("batch/v1", "Job") => round_trip::<Job>(doc),
        ("policy/v1", "PodDisruptionBudget") => round_trip::<PodDisruptionBudget>(doc),
        ("networking.k8s.io/v1", "NetworkPolicy") => round_trip::<NetworkPolicy>(doc),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => round_trip::<ClusterRole>(doc),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            round_trip::<ClusterRoleBinding>(doc)
        }
        ("rbac.authorization.k8s.io/v1", "Role") => round_trip::<Role>(doc),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => round_trip::<RoleBinding>(doc),
        ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration") => {
            round_trip::<ValidatingWebhookConfiguration>(doc)
        }
        ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration") => {
            round_trip::<MutatingWebhookConfiguration>(doc)
        }
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => {
            round_trip::<CustomResourceDefinition>(doc)?;
            let name = doc["metadata"]["name"].as_str().unwrap_or_default();
            let known = bylaw_api::all_crds()
                .iter()
                .any(|crd| crd.metadata.name.as_deref() == Some(name));
            if known {
                Ok(())
            } else {
                Err("not one of bylaw's CRDs".to_owned())
            }
        }
        ("kyverno.io/v1", "ClusterPolicy") => {
            typed_round_trip::<bylaw_api::ClusterPolicy>(doc)?;
            bylaw_engine::compile::compile_policy(doc)
                .map(drop)
                .map_err(|e| format!("does not compile: {e}"))
        }
        ("kyverno.io/v1", "Policy") => {
            typed_round_trip::<bylaw_api::Policy>(doc)?;
            bylaw_engine::compile::compile_policy(doc)
                .map(drop)
                .map_err(|e| format!("does not compile: {e}"))
        }
        ("monitoring.coreos.com/v1", "ServiceMonitor") => round_trip::<ServiceMonitor>(doc),
        ("monitoring.coreos.com/v1", "PrometheusRule") => {
            round_trip::<PrometheusRule>(doc)?;
            let rule: PrometheusRule =
                serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?;
            if rule.spec.groups.iter().all(|g| !g.rules.is_empty()) {
                Ok(())
            } else {
                Err("a rule group without rules".to_owned())
            }
        }
        _ => Err(format!(
            "no schema for {api_version} {kind}: add it to check_manifests"
        )),
    }
}

/// Decodes into `T` (with the error path), encodes again and compares with the input.
fn round_trip<T: DeserializeOwned + Serialize>(doc: &Value) -> Result<(), String> {
    let typed: T = bylaw_api::from_value(doc.clone()).map_err(|e| e.to_string())?;
    let again = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    match first_difference(doc, &again, "") {
        None => Ok(()),
        Some(path) => Err(format!(
            "{path}: unknown field or wrong type (lost or changed when decoded)"
        )),
    }
}

/// bylaw's policy types keep free-form parts (patterns) as JSON and may fill defaults; what
/// matters is that every field of the input is kept.
fn typed_round_trip<T: DeserializeOwned + Serialize>(doc: &Value) -> Result<(), String> {
    let typed: T = bylaw_api::from_value(doc.clone()).map_err(|e| e.to_string())?;
    let again = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    match first_missing(doc, &again, "") {
        None => Ok(()),
        Some(path) => Err(format!("{path}: unknown field (lost when decoded)")),
    }
}

/// The first path where `want` and `got` differ; `null` and absent are the same.
fn first_difference(want: &Value, got: &Value, path: &str) -> Option<String> {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (key, value) in w {
                let inner = format!("{path}.{key}");
                match g.get(key) {
                    Some(other) => {
                        if let Some(p) = first_difference(value, other, &inner) {
                            return Some(p);
                        }
                    }
                    None if value.is_null() => {}
                    None => return Some(inner),
                }
            }
            g.iter()
                .find(|(key, value)| !value.is_null() && !w.contains_key(*key))
                .map(|(key, _)| format!("{path}.{key}"))
        }
        (Value::Array(w), Value::Array(g)) => {
            if w.len() != g.len() {
                return Some(path.to_owned());
            }
            w.iter()
                .zip(g)
                .enumerate()
                .find_map(|(i, (a, b))| first_difference(a, b, &format!("{path}[{i}]")))
        }
        (Value::Number(w), Value::Number(g)) if w.as_f64() == g.as_f64() => None,
        _ if want == got => None,
        _ => Some(path.to_owned()),
    }
}

/// The first path of `want` that `got` lacks.
fn first_missing(want: &Value, got: &Value, path: &str) -> Option<String> {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => w.iter().find_map(|(key, value)| {
            let inner = format!("{path}.{key}");
            match g.get(key) {
                Some(other) => first_missing(value, other, &inner),
                None if value.is_null() => None,
                None => Some(inner),
            }
        }),
        (Value::Array(w), Value::Array(g)) => {
            w.iter().enumerate().find_map(|(i, a)| match g.get(i) {
                Some(b) => first_missing(a, b, &format!("{path}[{i}]")),
                None => Some(format!("{path}[{i}]")),
            })
        }
        _ => None,
    }
}

// The prometheus-operator kinds, limited to the fields of monitoring.coreos.com/v1 the chart
// renders; anything else is refused so a typo cannot slip through.

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ServiceMonitor {
    api_version: String,
    kind: String,
    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    spec: ServiceMonitorSpec,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ServiceMonitorSpec {
    selector: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace_selector: Option<NamespaceSelector>,
    endpoints: Vec<Endpoint>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NamespaceSelector {
    match_names: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Endpoint {
    port: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    scheme: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    interval: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_config: Option<TlsConfig>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TlsConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    ca: Option<SecretOrConfigMap>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    insecure_skip_verify: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SecretOrConfigMap {
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<k8s_openapi::api::core::v1::SecretKeySelector>,
    #[serde(skip_serializing_if = "Option::is_none")]
    config_map: Option<k8s_openapi::api::core::v1::ConfigMapKeySelector>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PrometheusRule {
    api_version: String,
    kind: String,
    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    spec: PrometheusRuleSpec,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PrometheusRuleSpec {
    groups: Vec<RuleGroup>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleGroup {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    interval: Option<String>,
    rules: Vec<AlertRule>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertRule {
    #[serde(skip_serializing_if = "Option::is_none")]
    alert: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<String>,
    expr: String,
    #[serde(rename = "for", skip_serializing_if = "Option::is_none")]
    for_: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    labels: Option<std::collections::BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<std::collections::BTreeMap<String, String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports: [{name: https, port: 443, targetPort: https}]\n";

    #[test]
    fn a_valid_manifest_passes() {
        assert_eq!(check_stream(SERVICE, "s.yaml"), Ok(1));
    }

    #[test]
    fn an_unknown_or_misplaced_field_is_named() {
        let typo = SERVICE.replace("targetPort", "targetport");
        assert_eq!(
            check_stream(&typo, "s.yaml"),
            Err(vec!["s.yaml: Service/s: .spec.ports[0].targetport: unknown field or wrong type (lost or changed when decoded)".to_owned()])
        );
        let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec:\n      containers: [{name: c, image: i, securityContext: {readOnlyRootFileSystem: true}}]\n";
        let problems = check_stream(deployment, "d.yaml").unwrap_err();
        assert!(
            problems[0].contains("readOnlyRootFileSystem"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_wrong_type_is_an_error() {
        let wrong = SERVICE.replace("port: 443", "port: https");
        let problems = check_stream(&wrong, "s.yaml").unwrap_err();
        assert!(problems[0].contains("spec.ports[0].port"), "{problems:?}");
    }

    #[test]
    fn unknown_kinds_and_invalid_policies_fail() {
        let unknown = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n";
        assert!(check_stream(unknown, "w.yaml").unwrap_err()[0].contains("no schema"));
        let policy = "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: p}\nspec:\n  rules:\n    - name: r\n      match: {any: [{resources: {kinds: [Pod]}}]}\n      validate: {deny: {conditions: {any: [{key: a, operator: Sometimes, value: b}]}}}\n";
        let problems = check_stream(policy, "p.yaml").unwrap_err();
        assert!(problems[0].contains("does not compile"), "{problems:?}");
    }

    #[test]
    fn service_monitor_fields_are_checked() {
        let monitor = "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: m}\nspec:\n  selector: {matchLabels: {a: b}}\n  endpoints: [{port: https, scheme: https, tlsConfig: {insecureSkipVerify: true}}]\n";
        assert_eq!(check_stream(monitor, "m.yaml"), Ok(1));
        let typo = monitor.replace("endpoints", "endpoint");
        assert!(check_stream(&typo, "m.yaml").is_err());
    }
}
