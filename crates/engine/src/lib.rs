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
pub mod compile;
pub mod conditions;
pub mod context;
pub mod engine;
pub mod exceptions;
pub mod generate;
pub mod jmespath;
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
