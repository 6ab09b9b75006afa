//! The policy engine: compiles Kyverno-style policies once and evaluates them many times against
//! resources. Pure and synchronous — no tokio, no Kubernetes client, no network; anything from
//! outside (namespace labels, ConfigMaps, API calls) arrives through a context provider trait.
//!
//! May depend on `bylaw-api` and plain data crates only.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod autogen;
pub mod cel;
pub mod compile;
pub mod conditions;
pub mod context;
pub mod deadline;
pub mod engine;
pub mod exceptions;
pub mod generate;
pub mod jmespath;
pub mod json;
pub mod managed_fields;
pub mod matching;
pub mod mutate;
pub mod pattern;
pub mod podsecurity;
pub mod quantity;
pub mod request;
pub mod response;
pub mod validate;
pub mod variables;
pub mod wildcard;

/// Where tests find Kyverno's policy library: `BYLAW_CONFORMANCE_CORPUS` (as the CLI's ratchet
/// reads it), else `BYLAW_CONFORMANCE_DIR/kyverno-policies`, else `../shared` beside the
/// repository. CI always has it, so its absence is a failure, not a skip.
#[cfg(test)]
pub(crate) fn conformance_corpus() -> std::path::PathBuf {
    let root = std::env::var_os("BYLAW_CONFORMANCE_CORPUS")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("BYLAW_CONFORMANCE_DIR")
                .map(|d| std::path::PathBuf::from(d).join("kyverno-policies"))
        })
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../../shared/conformance/kyverno-policies")
        });
    assert!(root.is_dir(), "no conformance corpus at {}", root.display());
    root
}

/// The files under `dir` (recursively, in name order) that `keep` accepts: test walks over
/// the policy library.
#[cfg(test)]
pub(crate) fn library_files(
    dir: &std::path::Path,
    keep: &dyn Fn(&std::path::Path) -> bool,
) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if keep(&path) {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The non-null YAML documents of a library file, as JSON.
#[cfg(test)]
pub(crate) fn yaml_documents(path: &std::path::Path) -> Vec<serde_json::Value> {
    use serde::Deserialize;
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .filter_map(|d| serde_json::Value::deserialize(d).ok())
        .filter(|v| !v.is_null())
        .collect()
}
