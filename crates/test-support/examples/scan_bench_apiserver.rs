//! The fake API server loaded for `make bench-scan`: bylaw's CRDs, the policies of a
//! directory, and N Pods in M namespaces (every other one violating baseline and restricted).
//! Writes a kubeconfig, prints `ready`, then waits until one report per Pod has settled and
//! prints what the reports cost: count, total and largest serialized size, report writes.
//!
//! Usage: scan_bench_apiserver KUBECONFIG POLICY_DIR PODS NAMESPACES

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bylaw_test_support::apiserver::FakeApiServer;
use serde_json::{json, Value};

fn policies(dir: &Path, out: &mut Vec<Value>) -> anyhow::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "tests") {
                policies(&path, out)?;
            }
        } else if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path)?;
            for doc in serde_yaml_ng::Deserializer::from_str(&text) {
                let value: Value = serde::Deserialize::deserialize(doc)?;
                if value["kind"] == "ClusterPolicy" {
                    out.push(value);
                }
            }
        }
    }
    Ok(())
}

fn pod(namespace: &str, index: usize) -> Value {
    let violating = index % 2 == 1;
    let security = if violating {
        json!({"privileged": true})
    } else {
        json!({
            "allowPrivilegeEscalation": false,
            "runAsNonRoot": true,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}
        })
    };
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": format!("web-{index}"),
            "namespace": namespace,
            "labels": {"app": "web", "pod-template-hash": "5d8f7c9b4"},
        },
        "spec": {
            "containers": [
                {"name": "app", "image": format!("registry.example.com/shop/web:1.{index}"),
                 "ports": [{"containerPort": 8080}],
                 "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                 "securityContext": security},
                {"name": "sidecar", "image": "registry.example.com/mesh/proxy:2.1",
                 "securityContext": {"allowPrivilegeEscalation": false, "runAsNonRoot": true,
                                     "capabilities": {"drop": ["ALL"]},
                                     "seccompProfile": {"type": "RuntimeDefault"}}}
            ],
            "volumes": [{"name": "config", "configMap": {"name": "web"}}]
        },
        "status": {"phase": "Running"}
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, kubeconfig, policy_dir, pods, namespaces] = args.as_slice() else {
        anyhow::bail!("usage: scan_bench_apiserver KUBECONFIG POLICY_DIR PODS NAMESPACES");
    };
    let pods: usize = pods.parse()?;
    let namespaces: usize = namespaces.parse::<usize>()?.max(1);
    let server = FakeApiServer::start().await;
    server.install_crds(
        bylaw_api::all_crds()
            .iter()
            .map(|crd| serde_json::to_value(crd).unwrap_or(Value::Null)),
    );
    server.insert(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bylaw-system"}}),
    );
    for n in 0..namespaces {
        server.insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("ns-{n}")}}));
    }
    for i in 0..pods {
        server.insert(pod(&format!("ns-{}", i % namespaces), i));
    }
    let mut loaded = Vec::new();
    policies(Path::new(policy_dir), &mut loaded)?;
    for policy in &loaded {
        server.insert(policy.clone());
    }
    server.write_kubeconfig(Path::new(kubeconfig))?;
    server.clear_requests();
    println!(
        "ready: {} policies, {pods} Pods in {namespaces} namespaces",
        loaded.len()
    );

    let started = Instant::now();
    let mut last = (0usize, Instant::now());
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let count = server
            .list("wgpolicyk8s.io/v1alpha2", "PolicyReport", None)
            .len();
        if count != last.0 {
            last = (count, Instant::now());
        } else if count >= pods && last.1.elapsed() > Duration::from_secs(3) {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            anyhow::bail!("only {count} of {pods} reports after 10 minutes");
        }
    }
    let reports = server.list("wgpolicyk8s.io/v1alpha2", "PolicyReport", None);
    let sizes: Vec<usize> = reports
        .iter()
        .map(|r| serde_json::to_vec(r).map(|b| b.len()).unwrap_or(0))
        .collect();
    let writes = server
        .requests()
        .iter()
        .filter(|r| r.is_write() && r.path.contains("policyreports"))
        .count();
    let results: usize = reports
        .iter()
        .map(|r| r["results"].as_array().map_or(0, Vec::len))
        .sum();
    let (fail, pass): (i64, i64) = reports.iter().fold((0, 0), |(f, p), r| {
        (
            f + r["summary"]["fail"].as_i64().unwrap_or(0),
            p + r["summary"]["pass"].as_i64().unwrap_or(0),
        )
    });
    println!(
        "reports {} results {results} (pass {pass}, fail {fail}) total_bytes {} max_bytes {} writes {writes} settled_after_s {:.1}",
        reports.len(),
        sizes.iter().sum::<usize>(),
        sizes.iter().max().copied().unwrap_or(0),
        last.1.duration_since(started).as_secs_f64(),
    );
    let (chunks, chunk_bytes, chunk_max) = per_namespace_chunks(&reports, 1000);
    println!(
        "alternative layout, same results in per-namespace reports of at most 1000 results: reports {chunks} total_bytes {chunk_bytes} max_bytes {chunk_max}"
    );
    // Stay up until the script has read bylaw's figures and stops both.
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

/// The same results laid out as Kyverno's older per-namespace reports: every result names its
/// resource, at most `chunk` results per object. Returns (objects, total bytes, largest).
fn per_namespace_chunks(reports: &[Value], chunk: usize) -> (usize, usize, usize) {
    let mut by_namespace: std::collections::BTreeMap<String, Vec<Value>> =
        std::collections::BTreeMap::new();
    for report in reports {
        let namespace = report["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let scope = &report["scope"];
        for result in report["results"].as_array().into_iter().flatten() {
            let mut result = result.clone();
            result["resources"] = json!([scope]);
            by_namespace
                .entry(namespace.clone())
                .or_default()
                .push(result);
        }
    }
    let (mut count, mut total, mut largest) = (0, 0, 0);
    for (namespace, results) in by_namespace {
        for (i, part) in results.chunks(chunk).enumerate() {
            let object = json!({
                "apiVersion": "wgpolicyk8s.io/v1alpha2",
                "kind": "PolicyReport",
                "metadata": {"name": format!("bylaw-{namespace}-{i}"), "namespace": namespace,
                             "labels": {"app.kubernetes.io/managed-by": "bylaw"}},
                "summary": {"pass": 0, "fail": 0, "warn": 0, "error": 0, "skip": 0},
                "results": part,
            });
            let bytes = serde_json::to_vec(&object).map(|b| b.len()).unwrap_or(0);
            count += 1;
            total += bytes;
            largest = largest.max(bytes);
        }
    }
    (count, total, largest)
}
