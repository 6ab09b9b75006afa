//! A bounded queue carrying rule outcomes from admission to background reporting.
//!
//! Admission never waits on reporting: when the queue is full the batch is dropped and counted in
//! `bylaw_policy_results_dropped_total`. Nor does it wake the reporting task for every review:
//! the receiver, once woken, lingers a moment so that the outcomes of a burst are taken in
//! together. Behind an API server this took bylaw from 3.2 to 2.0–2.6 context switches per
//! review (docs/performance.md, round 5).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;

use crate::admission::{GroupVersionKind, Operation, Phase, RuleOutcome};
use crate::metrics::Metrics;

/// How long the receiver waits, once outcomes arrive, for more to join them.
const LINGER: Duration = Duration::from_millis(20);

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

/// What both halves share.
#[derive(Debug)]
struct Shared {
    queue: Mutex<VecDeque<ReviewOutcomes>>,
    capacity: usize,
    /// Wakes the receiver when the queue stops being empty or the last sender goes.
    ready: Notify,
    senders: AtomicUsize,
    receiver_gone: AtomicBool,
}

impl Shared {
    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<ReviewOutcomes>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Sending half; cheap to clone.
#[derive(Debug)]
pub struct ResultsSender {
    shared: Arc<Shared>,
    metrics: Metrics,
}

/// Receiving half, for the reporting task.
#[derive(Debug)]
pub struct ResultsReceiver {
    shared: Arc<Shared>,
}

/// Creates a results queue holding at most `capacity` batches (at least 1).
pub fn results_channel(capacity: usize, metrics: Metrics) -> (ResultsSender, ResultsReceiver) {
    let shared = Arc::new(Shared {
        queue: Mutex::new(VecDeque::new()),
        capacity: capacity.max(1),
        ready: Notify::new(),
        senders: AtomicUsize::new(1),
        receiver_gone: AtomicBool::new(false),
    });
    (
        ResultsSender {
            shared: Arc::clone(&shared),
            metrics,
        },
        ResultsReceiver { shared },
    )
}

impl ResultsSender {
    /// Queues a batch without waiting. Returns false (and counts the outcomes as dropped) when the
    /// queue is full or the receiver is gone. Empty batches are not sent.
    pub fn send(&self, batch: ReviewOutcomes) -> bool {
        if batch.outcomes.is_empty() {
            return true;
        }
        if self.shared.receiver_gone.load(Ordering::Acquire) {
            self.metrics
                .record_results_dropped("closed", batch.outcomes.len() as u64);
            return false;
        }
        let mut queue = self.shared.queue();
        if queue.len() >= self.shared.capacity {
            drop(queue);
            self.metrics
                .record_results_dropped("full", batch.outcomes.len() as u64);
            return false;
        }
        queue.push_back(batch);
        let first = queue.len() == 1;
        drop(queue);
        // Outcomes already waiting mean the receiver has been woken and will take this too.
        if first {
            self.shared.ready.notify_one();
        }
        true
    }
}

impl Clone for ResultsSender {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::AcqRel);
        ResultsSender {
            shared: Arc::clone(&self.shared),
            metrics: self.metrics.clone(),
        }
    }
}

impl Drop for ResultsSender {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.ready.notify_one();
        }
    }
}

impl ResultsReceiver {
    /// The next batch; `None` once every sender is gone and the queue is empty. Cancel-safe: a
    /// batch is only taken off the queue when it is returned.
    pub async fn recv(&mut self) -> Option<ReviewOutcomes> {
        loop {
            if let Some(batch) = self.try_recv() {
                return Some(batch);
            }
            if self.shared.senders.load(Ordering::Acquire) == 0 {
                // A last batch may have come in just before the last sender went.
                return self.try_recv();
            }
            self.shared.ready.notified().await;
            tokio::time::sleep(LINGER).await;
        }
    }

    /// The next batch if one is waiting.
    pub fn try_recv(&mut self) -> Option<ReviewOutcomes> {
        self.shared.queue().pop_front()
    }
}

impl Drop for ResultsReceiver {
    fn drop(&mut self) {
        self.shared.receiver_gone.store(true, Ordering::Release);
        self.shared.queue().clear();
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
                    rule: format!("r{i}").into(),
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
        assert_eq!(rx.try_recv().map(|b| b.outcomes.len()), Some(2));
        assert!(rx.try_recv().is_none());
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

    // Paused time: sleeps and timeouts advance only when every task waits, so the timings
    // below cannot race a slow machine.
    #[tokio::test(start_paused = true)]
    async fn a_waiting_receiver_is_woken_by_a_batch_and_ends_after_the_last_sender() {
        let metrics = Metrics::new("dev");
        let (tx, mut rx) = results_channel(8, metrics);
        let second = tx.clone();
        // Both senders stay while the receiver waits: only the batch can wake it.
        let sending = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            assert!(tx.send(batch(1)));
            tx
        });
        let first = tokio::time::timeout(Duration::from_secs(1), rx.recv())
            .await
            .expect("a batch wakes the waiting receiver");
        assert_eq!(first.map(|b| b.outcomes.len()), Some(1));
        let tx = sending.await.unwrap();
        // A burst from both senders; the last batch goes in just before the last sender leaves.
        assert!(second.send(batch(2)));
        assert!(tx.send(batch(3)));
        drop(tx);
        assert!(second.send(batch(4)));
        drop(second);
        let mut sizes = Vec::new();
        while let Some(batch) = tokio::time::timeout(Duration::from_secs(1), rx.recv())
            .await
            .expect("the receiver ends once every sender is gone")
        {
            sizes.push(batch.outcomes.len());
        }
        assert_eq!(sizes, [2, 3, 4]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_receive_cut_short_loses_nothing() {
        let metrics = Metrics::new("dev");
        let (tx, mut rx) = results_channel(8, metrics);
        {
            let mut receiving = Box::pin(rx.recv());
            let wait = LINGER / 4;
            assert!(tokio::time::timeout(wait, &mut receiving).await.is_err());
            assert!(tx.send(batch(5)));
            // Woken by the batch, it lingers for more: cut short there.
            assert!(tokio::time::timeout(wait, &mut receiving).await.is_err());
        }
        assert_eq!(rx.try_recv().map(|b| b.outcomes.len()), Some(5));
        assert!(rx.try_recv().is_none());
    }
}
