//! Shared server plumbing: argument groups, tracing, metrics, the Kubernetes client, shutdown and the
//! policy cache. Depends on the engine and api crates; the webhook, controller and reports crates
//! build on it.
//!
//! The admission contract ([`admission::AdmissionEvaluator`] and its data types) is
//! engine-agnostic, so the webhook server does not depend on the engine; the engine adapter
//! ([`evaluator::PolicyEvaluator`]) implements it over the [`policy_cache::PolicyCache`], fed by a
//! [`sources::PolicySource`] and asking a [`sources::ContextSource`] for namespace labels and
//! other context.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

/// Go- and Kubernetes-compatible pieces the server crates share with the engine, so that each
/// exists once: Go durations, Kyverno's wildcards, kind selectors.
pub mod gocompat {
    pub use bylaw_engine::matching::KindSelector;
    pub use bylaw_engine::quantity::{format_duration, parse_duration};
    pub use bylaw_engine::wildcard::wildcard_match;
}

pub mod admission;
pub mod context_scope;
pub mod evaluator;
pub mod files;
pub mod logging;
pub mod metrics;
pub mod policy_cache;
pub mod policy_index;
pub mod results;
pub mod roles;
pub mod shutdown;
pub mod sources;

pub use admission::{
    decoding_reviews, AdmissionEvaluator, EvalError, GroupVersionKind, GroupVersionResource,
    InlineEvaluation, Operation, Phase, ReviewRequest, RuleOutcome, RuleResult, RuleType, UserInfo,
    Verdict,
};
pub use evaluator::PolicyEvaluator;
pub use logging::{init_tracing, LogArgs, LogFormat, LogHandle};
pub use metrics::Metrics;
pub use policy_cache::{PolicyCache, ReloadOutcome};
pub use results::{results_channel, ResultsReceiver, ResultsSender, ReviewOutcomes};
pub use roles::{RoleIndex, UserRoles};
pub use shutdown::{os_termination_signal, Shutdown, ShutdownSignal};
pub use sources::{
    ContextSource, EmptyContext, FileContextSource, FilePolicySource, PolicyDocument, PolicySource,
};

/// Errors of the runtime plumbing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The log filter does not parse.
    #[error("invalid log filter {filter:?}: {reason}")]
    InvalidLogFilter {
        /// The filter as given.
        filter: String,
        /// Parser message.
        reason: String,
    },
    /// The global subscriber could not be installed or reloaded.
    #[error("cannot initialise tracing: {0}")]
    TracingInit(String),
    /// Writing the metrics exposition failed.
    #[error("cannot encode metrics")]
    MetricsEncoding,
}

/// Result with the runtime [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
