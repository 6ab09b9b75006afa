//! A bounded channel carrying rule outcomes from admission to background reporting.
//!
//! Admission never waits on reporting: when the channel is full the batch is dropped and counted in
//! `bylaw_policy_results_dropped_total`.

use std::time::SystemTime;

use tokio::sync::mpsc;

use crate::admission::{GroupVersionKind, Operation, Phase, RuleOutcome};
use crate::metrics::Metrics;

/// The resource a batch of outcomes is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceRef {
    /// Group, version and kind.
    pub kind: GroupVersionKind,
    /// Namespace; `None` when cluster-scoped.
    pub namespace: Option<String>,
    /// Name (may be empty on CREATE with `generateName`).
    pub name: String,
    /// `metadata.uid` of the object, when it has one.
    pub uid: Option<String>,
}

/// All rule outcomes of one admission review.
#[derive(Clone, Debug, PartialEq)]
pub struct ReviewOutcomes {
    /// Webhook the review came through.
    pub phase: Phase,
    /// The AdmissionReview uid.
    pub request_uid: String,
    /// The reviewed resource.
    pub resource: ResourceRef,
    /// The operation.
    pub operation: Operation,
    /// True when the request will not be persisted.
    pub dry_run: bool,
    /// Whether the request was admitted.
    pub allowed: bool,
    /// When the review finished.
    pub at: SystemTime,
    /// Every rule outcome.
    pub outcomes: Vec<RuleOutcome>,
}

/// Sending half; cheap to clone.
#[derive(Clone, Debug)]
pub struct ResultsSender {
    tx: mpsc::Sender<ReviewOutcomes>,
    metrics: Metrics,
}

/// Receiving half, for the reporting task.
pub type ResultsReceiver = mpsc::Receiver<ReviewOutcomes>;

/// Creates a results channel holding at most `capacity` batches (at least 1).
pub fn results_channel(capacity: usize, metrics: Metrics) -> (ResultsSender, ResultsReceiver) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (ResultsSender { tx, metrics }, rx)
}

impl ResultsSender {
    /// Queues a batch without waiting. Returns false (and counts the outcomes as dropped) when the
    /// channel is full or the receiver is gone. Empty batches are not sent.
    pub fn send(&self, batch: ReviewOutcomes) -> bool {
        if batch.outcomes.is_empty() {
            return true;
        }
        match self.tx.try_send(batch) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(batch)) => {
                self.metrics
                    .record_results_dropped("full", batch.outcomes.len() as u64);
                false
            }
            Err(mpsc::error::TrySendError::Closed(batch)) => {
                self.metrics
                    .record_results_dropped("closed", batch.outcomes.len() as u64);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::{RuleResult, RuleType};
    use std::time::Duration;

    fn batch(rules: usize) -> ReviewOutcomes {
        ReviewOutcomes {
            phase: Phase::Validate,
            request_uid: "u".into(),
            resource: ResourceRef {
                kind: GroupVersionKind {
                    group: String::new(),
                    version: "v1".into(),
                    kind: "Pod".into(),
                },
                namespace: Some("default".into()),
                name: "p".into(),
                uid: None,
            },
            operation: Operation::Create,
            dry_run: false,
            allowed: true,
            at: SystemTime::UNIX_EPOCH,
            outcomes: (0..rules)
                .map(|i| RuleOutcome {
                    policy: "p".into(),
                    policy_namespace: None,
                    rule: format!("r{i}"),
                    rule_type: RuleType::Validate,
                    result: RuleResult::Pass,
                    message: String::new(),
                    enforce: false,
                    background: true,
                    duration: Duration::ZERO,
                })
                .collect(),
        }
    }

    #[test]
    fn full_channel_drops_and_counts_instead_of_blocking() {
        let metrics = Metrics::new("dev");
        let (tx, mut rx) = results_channel(1, metrics.clone());
        assert!(tx.send(batch(2)));
        assert!(!tx.send(batch(3)));
        let text = metrics.encode_openmetrics().unwrap();
        assert!(
            text.contains("bylaw_policy_results_dropped_total{reason=\"full\"} 3"),
            "{text}"
        );
        assert_eq!(rx.try_recv().unwrap().outcomes.len(), 2);
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn closed_channel_counts_and_empty_batches_are_skipped() {
        let metrics = Metrics::new("dev");
        let (tx, rx) = results_channel(4, metrics.clone());
        drop(rx);
        assert!(tx.send(batch(0)));
        assert!(!tx.send(batch(1)));
        let text = metrics.encode_openmetrics().unwrap();
        assert!(text.contains("bylaw_policy_results_dropped_total{reason=\"closed\"} 1"));
    }
}
