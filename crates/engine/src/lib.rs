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
