//! CEL: the environment (the `cel` crate's interpreter with Kubernetes' and Kyverno's
//! libraries), expressions compiled once ([`Program`]), and the evaluation of CEL rules —
//! `validate.cel` in ClusterPolicy/Policy, `policies.kyverno.io` ValidatingPolicy and
//! NamespacedValidatingPolicy, and `admissionregistration.k8s.io` ValidatingAdmissionPolicy.
//!
//! Everything from outside the engine (`resource.Get`, image metadata, parameters, namespace
//! objects) arrives through the [`crate::context::ContextProvider`]; outbound HTTP stays off.

pub mod convert;
pub mod host;
pub mod kinds;
pub mod library;
pub mod matching;
pub mod policy;
pub mod program;
pub mod rule;

use std::sync::{Arc, OnceLock};

use cel::Env;

pub use program::{Program, Scope};

/// The shared environment: built once, used by every compilation and evaluation.
pub fn env() -> &'static Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Env::stdlib();
        // A failure here is a programming error in the library declarations; the unit tests
        // exercise every library, so it cannot reach a release.
        if let Err(e) = library::register(&mut env) {
            debug_assert!(false, "CEL library registration failed: {e}");
        }
        Arc::new(env)
    })
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod policy_tests;
