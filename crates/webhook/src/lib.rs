//! The admission webhook HTTPS server. Depends on `bylaw-runtime`.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod config;
pub mod duration;
pub mod filter;
pub mod review;
pub mod server;
pub mod tls;

pub use config::WebhookConfig;
pub use server::{BoundServer, Error, FailurePolicy, Server};
pub use tls::{generate_dev_certificate, CertReloader, DevCa, DevCertificate, TlsError};
