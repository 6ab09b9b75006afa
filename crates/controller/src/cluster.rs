//! The in-cluster controllers of `bylaw serve`, started in one place.
//!
//! [`Cluster::run`] waits until the cluster context has listed namespaces and role bindings (so
//! the first policies never meet an empty context), then starts the policy sync, the status
//! writer and the event writer, and turns admission outcomes into events. Controllers that do
//! singleton work take the [`Leadership`] handle and act only while it says so; controllers
//! added later (webhook registration, certificates, the Lease elector, reports) start here too.

use std::sync::Arc;
use std::time::Duration;

use bylaw_runtime::results::ResultsReceiver;
use bylaw_runtime::{Metrics, PolicyCache, ShutdownSignal};
use kube::Client;

use crate::context::ClusterContext;
use crate::events::{event_recorder, record_violations, write_events, EventLimits, EventRecorder};
use crate::generate::{GenerateConfig, GenerateController};
use crate::leader::Leadership;
use crate::policies::{start_policy_sync, PolicySync, PolicySyncConfig};
use crate::reports::{ReportOptions, ReportWriter, Reports, Scanner};
use crate::status::StatusWriter;

/// Events waiting for the writer at most.
const EVENT_QUEUE: usize = 1024;
/// Admission result batches waiting for events or reports at most.
const RESULTS_QUEUE: usize = 4096;

/// Hands each batch of admission results to the event and report consumers.
async fn fan_out(
    mut outcomes: ResultsReceiver,
    events: tokio::sync::mpsc::Sender<bylaw_runtime::ReviewOutcomes>,
    reports: Option<tokio::sync::mpsc::Sender<bylaw_runtime::ReviewOutcomes>>,
    metrics: Metrics,
) {
    while let Some(batch) = outcomes.recv().await {
        if let Some(reports) = &reports {
            if let Err(tokio::sync::mpsc::error::TrySendError::Full(batch)) =
                reports.try_send(batch.clone())
            {
                metrics.record_results_dropped("full", batch.outcomes.len() as u64);
            }
        }
        if let Err(tokio::sync::mpsc::error::TrySendError::Full(batch)) = events.try_send(batch) {
            metrics.record_results_dropped("full", batch.outcomes.len() as u64);
        }
    }
}

/// What every in-cluster controller shares.
#[derive(Clone)]
pub struct Cluster {
    /// The API server client.
    pub client: Client,
    /// bylaw's own namespace.
    pub namespace: String,
    /// The policies admission serves.
    pub cache: Arc<PolicyCache>,
    /// The metrics registry.
    pub metrics: Metrics,
    /// Whether this replica does the singleton work now.
    pub leadership: Leadership,
    /// Stops everything.
    pub shutdown: ShutdownSignal,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// Settings of the in-cluster controllers.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Which policies are read and how changes are coalesced.
    pub policies: PolicySyncConfig,
    /// Raise PolicyViolation events for Audit failures too (Enforce denials always raise them).
    pub audit_events: bool,
    /// Rate limit and bounds of events.
    pub event_limits: EventLimits,
    /// How often event series are written.
    pub event_flush: Duration,
    /// How often policies' evaluation cost is sampled for their status.
    pub cost_interval: Duration,
    /// This replica's name in events (the Pod name).
    pub instance: String,
    /// Generate and mutate-existing rules in the cluster.
    pub generate: GenerateConfig,
    /// Background scanning and PolicyReports.
    pub reports: ReportOptions,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            policies: PolicySyncConfig::default(),
            audit_events: true,
            event_limits: EventLimits::default(),
            event_flush: Duration::from_secs(30),
            cost_interval: Duration::from_secs(60),
            instance: "bylaw".to_owned(),
            generate: GenerateConfig::default(),
            reports: ReportOptions::default(),
        }
    }
}

/// Handles to what [`Cluster::run`] started.
#[derive(Clone, Debug)]
pub struct Running {
    /// The compiled policy objects and their change counter.
    pub policies: PolicySync,
    /// Queues Kubernetes events.
    pub events: EventRecorder,
    /// The report books, when reports are enabled.
    pub reports: Option<Reports>,
}

impl Cluster {
    /// Starts the in-cluster controllers; returns once they run (after the context is listed).
    pub async fn run(
        self,
        context: Arc<ClusterContext>,
        options: ClusterOptions,
        outcomes: ResultsReceiver,
    ) -> Running {
        let ClusterOptions {
            policies,
            audit_events,
            event_limits,
            event_flush,
            cost_interval,
            instance,
            generate,
            reports,
        } = options;
        let (events, queue) = event_recorder(EVENT_QUEUE, &self.metrics);
        tokio::spawn(write_events(
            self.client.clone(),
            queue,
            event_limits,
            instance,
            event_flush,
            self.shutdown.clone(),
        ));
        // Every admission result goes both to events and to reports; neither waits on the
        // other, and a full queue drops (and counts) rather than slowing admission.
        let (events_tx, events_rx) = tokio::sync::mpsc::channel(RESULTS_QUEUE);
        let (reports_tx, reports_rx) = tokio::sync::mpsc::channel(RESULTS_QUEUE);
        tokio::spawn(fan_out(
            outcomes,
            events_tx,
            reports.enabled.then_some(reports_tx),
            self.metrics.clone(),
        ));
        tokio::spawn(record_violations(events_rx, events.clone(), audit_events));

        let ready = context.ready();
        tokio::pin!(ready);
        loop {
            tokio::select! {
                () = &mut ready => break,
                () = tokio::time::sleep(Duration::from_secs(30)) => {
                    tracing::warn!("still waiting to list namespaces and role bindings; not ready until then (check bylaw's RBAC)");
                }
            }
        }

        let sync = start_policy_sync(
            self.client.clone(),
            Arc::clone(&self.cache),
            policies,
            self.shutdown.clone(),
        );
        let writer = StatusWriter::new(
            self.client.clone(),
            Arc::clone(&sync.index),
            sync.changes.clone(),
            self.leadership.clone(),
            self.metrics.clone(),
            events.clone(),
        )
        .with_cost_interval(cost_interval);
        tokio::spawn(writer.run(self.shutdown.clone()));
        GenerateController {
            client: self.client.clone(),
            context: Arc::clone(&context),
            cache: Arc::clone(&self.cache),
            index: Arc::clone(&sync.index),
            changes: sync.changes.clone(),
            leadership: self.leadership.clone(),
            metrics: self.metrics.clone(),
            events: events.clone(),
            config: generate,
        }
        .start(self.shutdown.clone());
        let reports = reports.enabled.then(|| {
            let books = Reports::new(&self.metrics);
            let flush = reports.flush_interval;
            tokio::spawn(
                Scanner {
                    client: self.client.clone(),
                    cache: Arc::clone(&self.cache),
                    context: Arc::clone(&context) as Arc<dyn bylaw_runtime::sources::ContextSource>,
                    reports: books.clone(),
                    options: reports,
                    shutdown: self.shutdown.clone(),
                }
                .run(reports_rx),
            );
            for (book, leadership) in [
                (Arc::clone(&books.book), Some(self.leadership.clone())),
                (Arc::clone(&books.admission_book), None),
            ] {
                tokio::spawn(
                    ReportWriter {
                        client: self.client.clone(),
                        reports: books.clone(),
                        book,
                        leadership,
                        flush_interval: flush,
                        shutdown: self.shutdown.clone(),
                    }
                    .run(),
                );
            }
            books
        });
        Running {
            policies: sync,
            events,
            reports,
        }
    }
}
