//! Policy sets and requests shared by the `evaluate` benchmark and the `profile_evaluate`
//! example (which runs a fixed number of evaluations under callgrind).

use std::path::{Path, PathBuf};

use bylaw_engine::cel::policy::compile_validating_policy;
use bylaw_engine::compile::compile_policy;
use bylaw_engine::context::NoContext;
use bylaw_engine::engine::PolicySet;
use bylaw_engine::request::Request;
use serde_json::{json, Value};

/// The allocator the `bylaw` binary ships with, so the figures are those of the product: the
/// engine allocates many small JSON nodes, and glibc's allocator cost a third to a half of its
/// instructions.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn corpus() -> PathBuf {
    std::env::var_os("BYLAW_CONFORMANCE_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../../shared/conformance/kyverno-policies")
        })
}

/// Every ClusterPolicy document directly in the policy folders below `dir` (not the tests).
fn policies_below(dir: &Path, out: &mut Vec<Value>) {
    documents_below(dir, "ClusterPolicy", out);
}

/// Every document of `kind` in the policy folders below `dir` (not the tests).
fn documents_below(dir: &Path, kind: &str, out: &mut Vec<Value>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            if path.file_name().and_then(|n| n.to_str()) != Some(".kyverno-test") {
                documents_below(&path, kind, out);
            }
        } else if path.extension().and_then(|e| e.to_str()) == Some("yaml") {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for doc in serde_yaml_ng::Deserializer::from_str(&text) {
                let Ok(value) = serde::Deserialize::deserialize(doc) else {
                    continue;
                };
                let value: Value = value;
                if value.get("kind").and_then(Value::as_str) == Some(kind) {
                    out.push(value);
                }
            }
        }
    }
}

pub fn pod_security_set() -> PolicySet {
    let mut docs = Vec::new();
    for sub in [
        "pod-security/baseline",
        "pod-security/restricted",
        "pod-security/subrule",
    ] {
        policies_below(&corpus().join(sub), &mut docs);
    }
    assert!(
        !docs.is_empty(),
        "no policies found below {}",
        corpus().display()
    );
    let policies = docs
        .iter()
        .map(|d| compile_policy(d).unwrap_or_else(|e| panic!("{e}")))
        .collect::<Vec<_>>();
    eprintln!("benchmarking {} policies", policies.len());
    PolicySet::new(policies, Vec::new())
}

/// The library's CEL versions of the Pod Security policies: `validate.cel` ClusterPolicies
/// (`pod-security-cel`) or `policies.kyverno.io` ValidatingPolicies (`pod-security-vpol`).
pub fn pod_security_cel_set(dir: &str, kind: &str) -> PolicySet {
    let mut docs = Vec::new();
    for level in ["baseline", "restricted"] {
        documents_below(&corpus().join(dir).join(level), kind, &mut docs);
    }
    assert!(!docs.is_empty(), "no {kind} found below {dir}");
    let policies = docs
        .iter()
        .map(|d| {
            let compiled = if kind == "ValidatingPolicy" {
                compile_validating_policy(d)
            } else {
                compile_policy(d)
            };
            compiled.unwrap_or_else(|e| panic!("{e}"))
        })
        .collect::<Vec<_>>();
    eprintln!("benchmarking {} {kind} documents of {dir}", policies.len());
    PolicySet::new(policies, Vec::new())
}

/// Fails the benchmark when a rule errors: the case must measure full evaluation.
pub fn assert_no_errors(set: &PolicySet, request: &Request) {
    for response in set.validate(request, &NoContext) {
        for rule in &response.rules {
            assert_ne!(
                rule.status.as_str(),
                "error",
                "{}/{}: {}",
                response.policy,
                rule.name,
                rule.message
            );
        }
    }
}

fn container(name: &str, image: &str) -> Value {
    json!({
        "name": name,
        "image": image,
        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "env": [{"name": "MODE", "value": "production"}],
        "volumeMounts": [{"name": "cache", "mountPath": "/cache"}],
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "runAsNonRoot": true,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}
        }
    })
}

fn pod_spec() -> Value {
    json!({
        "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            container("web", "registry.example.com/shop/web:2.4.1"),
            container("sidecar", "registry.example.com/mesh/proxy:1.20"),
            container("metrics", "registry.example.com/obs/exporter:0.9"),
        ],
        "volumes": [{"name": "cache", "emptyDir": {}}]
    })
}

/// Every ClusterPolicy of the library with a mutate rule that applies to Pods, for the mutation
/// benchmark.
pub fn pod_mutation_set() -> PolicySet {
    let mut docs = Vec::new();
    policies_below(&corpus(), &mut docs);
    let policies = docs
        .iter()
        .filter(|d| {
            let text = d.to_string();
            text.contains("\"mutate\"") && text.contains("\"Pod\"")
        })
        .filter_map(|d| compile_policy(d).ok())
        .filter(|p| p.has_mutate())
        .collect::<Vec<_>>();
    eprintln!("benchmarking {} mutate policies", policies.len());
    PolicySet::new(policies, Vec::new())
}

/// The hardened three-container Pod every case evaluates.
pub fn pod() -> Request {
    Request::create(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-7d9f", "namespace": "shop", "labels": {"app": "web"}},
        "spec": pod_spec(),
    }))
}

/// A Deployment with the same Pod template (autogen rules).
pub fn deployment() -> Request {
    Request::create(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod_spec()}},
    }))
}
