//! Controllers that keep the policy cache, webhook configurations and certificates in step with the
//! cluster. Depends on `bylaw-runtime`.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod leader;

pub use leader::{leadership, Leadership, LeadershipSender};
