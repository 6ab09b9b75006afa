//! Controllers that keep the policy cache, policy status, events, webhook configurations and
//! certificates in step with the cluster. Depends on `bylaw-runtime` (and the engine and api
//! crates for compiled policies and CRD types).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod certs;
pub mod cluster;
pub mod context;
pub mod events;
pub mod generate;
pub mod kinds;
pub mod leader;
pub mod lease;
pub mod policies;
pub mod reports;
pub mod service_call;
pub mod status;
pub mod webhooks;

pub use cluster::{Cluster, ClusterOptions, Running};
pub use context::{ClusterContext, ClusterContextConfig};
pub use leader::{leadership, Leadership, LeadershipSender};
