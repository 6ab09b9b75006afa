//! PolicyReports for bylaw: rule outcomes as report results, one report per resource, and the
//! background evaluation of existing resources. Pure: the controller crate lists, watches and
//! writes. Depends on `bylaw-runtime` (and the engine and api crates).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod book;
pub mod results;
pub mod scan;

pub use book::{ReportBook, ReportChange, ResourceIdentity, Source};
pub use results::{PolicyFacts, PolicyKey, ResultFilter};
pub use scan::{scan_object, ScanPolicies};
