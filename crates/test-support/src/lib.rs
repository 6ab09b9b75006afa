//! Dev-only helpers for bylaw's tests: object builders, AdmissionReview builders and a fake API server.

pub mod apiserver;
