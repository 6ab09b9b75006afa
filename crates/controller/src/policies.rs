//! Policies from the API server into the policy cache.
//!
//! One watch per kind (ClusterPolicy and Policy of `kyverno.io/v1`, PolicyException of
//! `kyverno.io/v2` when exceptions are enabled) feeds one applier. The applier compiles each
//! object once when it changes ([`PolicyIndex`]), coalesces bursts (it waits until events stop
//! for `debounce`, at most `max_delay`), and swaps the cache's set whole. The first set is
//! installed only once every kind has been listed completely, so the webhook never serves a
//! partial set; until then it is not ready.
//!
//! When the API server is unreachable, the watches retry with backoff and the last set keeps
//! serving; a watch that resumes lists again, and what the new list no longer contains is
//! removed only once the list is complete.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bylaw_runtime::policy_cache::{Compiled, PolicyCache};
use bylaw_runtime::policy_index::{Applied, ObjectKey, PolicyIndex, PolicyKind};
use bylaw_runtime::{Metrics, ShutdownSignal};
use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::discovery::ApiResource;
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Where PolicyExceptions are honoured (Kyverno's `--exceptionNamespace`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExceptionScope {
    /// PolicyExceptions are not read at all (the default, as in Kyverno).
    Disabled,
    /// Only PolicyExceptions in this namespace count.
    Namespace(String),
    /// PolicyExceptions in every namespace count.
    All,
}

impl ExceptionScope {
    /// Reads a flag value: empty disables, `*` means every namespace.
    pub fn parse(value: &str) -> Self {
        match value.trim() {
            "" => ExceptionScope::Disabled,
            "*" => ExceptionScope::All,
            namespace => ExceptionScope::Namespace(namespace.to_owned()),
        }
    }
}

/// Timing and scope of the policy sync.
#[derive(Clone, Debug)]
pub struct PolicySyncConfig {
    /// Which PolicyExceptions to read.
    pub exceptions: ExceptionScope,
    /// Quiet time that ends a burst of changes.
    pub debounce: Duration,
    /// Longest a change waits for a burst to end.
    pub max_delay: Duration,
}

impl Default for PolicySyncConfig {
    fn default() -> Self {
        PolicySyncConfig {
            exceptions: ExceptionScope::Disabled,
            debounce: Duration::from_millis(100),
            max_delay: Duration::from_millis(400),
        }
    }
}

/// What the sync shares with the status writer: the index and a counter that moves after
/// every applied batch of watch events.
#[derive(Clone, Debug)]
pub struct PolicySync {
    /// Every policy object, compiled.
    pub index: Arc<Mutex<PolicyIndex>>,
    /// Moves after every batch of watch events.
    pub changes: watch::Receiver<u64>,
}

#[derive(Debug)]
enum KindEvent {
    Apply(Value),
    Delete(Value),
    Init(PolicyKind),
    InitApply(Value),
    InitDone(PolicyKind),
}

fn resource_of(kind: PolicyKind) -> ApiResource {
    match kind {
        PolicyKind::ClusterPolicy => ApiResource::erase::<bylaw_api::ClusterPolicy>(&()),
        PolicyKind::Policy => ApiResource::erase::<bylaw_api::Policy>(&()),
        PolicyKind::PolicyException => ApiResource::erase::<bylaw_api::PolicyException>(&()),
        PolicyKind::ValidatingPolicy => ApiResource::erase::<bylaw_api::ValidatingPolicy>(&()),
        PolicyKind::NamespacedValidatingPolicy => {
            ApiResource::erase::<bylaw_api::NamespacedValidatingPolicy>(&())
        }
    }
}

/// Starts the watches and the applier; they run until `shutdown`.
pub fn start_policy_sync(
    client: Client,
    cache: Arc<PolicyCache>,
    config: PolicySyncConfig,
    shutdown: ShutdownSignal,
) -> PolicySync {
    let index = Arc::new(Mutex::new(PolicyIndex::new()));
    let (changes_tx, changes) = watch::channel(0u64);
    let (tx, rx) = mpsc::channel(1024);
    let mut kinds = BTreeSet::new();
    for kind in PolicyKind::ALL {
        let resource = resource_of(kind);
        let api: Api<DynamicObject> = match (kind, &config.exceptions) {
            (PolicyKind::PolicyException, ExceptionScope::Disabled) => continue,
            (PolicyKind::PolicyException, ExceptionScope::Namespace(ns)) => {
                Api::namespaced_with(client.clone(), ns, &resource)
            }
            _ => Api::all_with(client.clone(), &resource),
        };
        kinds.insert(kind);
        tokio::spawn(watch_kind(
            api,
            kind,
            resource,
            tx.clone(),
            shutdown.clone(),
        ));
    }
    drop(tx);
    tokio::spawn(apply_events(
        rx,
        Arc::clone(&index),
        cache,
        changes_tx,
        kinds,
        config,
        shutdown,
    ));
    PolicySync { index, changes }
}

/// Follows one kind, with kube-runtime's backoff between failed attempts.
async fn watch_kind(
    api: Api<DynamicObject>,
    kind: PolicyKind,
    resource: ApiResource,
    tx: mpsc::Sender<KindEvent>,
    shutdown: ShutdownSignal,
) {
    let stream = watcher(api, watcher::Config::default()).default_backoff();
    tokio::pin!(stream);
    let stop = shutdown.wait();
    tokio::pin!(stop);
    let mut failing = false;
    let mut reported_absent = false;
    loop {
        let next = tokio::select! {
            _ = &mut stop => return,
            next = stream.next() => next,
        };
        let event = match next {
            None => return,
            Some(Err(error)) => {
                // The `policies.kyverno.io` CRDs are optional: a cluster without them has no
                // such policies, so readiness must not wait for them. The watch keeps retrying
                // and picks them up once the CRDs are installed.
                if kind.is_cel_policy() && !reported_absent && is_not_found(&error) {
                    reported_absent = true;
                    tracing::info!(
                        kind = kind.as_str(),
                        "no CRD for this policy kind; treating it as empty until it is installed"
                    );
                    for event in [KindEvent::Init(kind), KindEvent::InitDone(kind)] {
                        if tx.send(event).await.is_err() {
                            return;
                        }
                    }
                    continue;
                }
                // Logged once per outage, then quietly retried with backoff.
                if !failing {
                    tracing::warn!(kind = kind.as_str(), %error, "cannot watch policies; serving the last good set and retrying (are the CRDs installed? `bylaw crds | kubectl apply -f -`)");
                }
                failing = true;
                continue;
            }
            Some(Ok(event)) => event,
        };
        if failing {
            tracing::info!(kind = kind.as_str(), "watching policies again");
            failing = false;
        }
        let to_value = |object: DynamicObject| {
            let mut value = serde_json::to_value(object).unwrap_or(Value::Null);
            // List items may come without their type.
            if let Value::Object(map) = &mut value {
                map.entry("apiVersion")
                    .or_insert_with(|| Value::String(resource.api_version.clone()));
                map.entry("kind")
                    .or_insert_with(|| Value::String(kind.as_str().to_owned()));
            }
            value
        };
        let event = match event {
            watcher::Event::Apply(object) => KindEvent::Apply(to_value(object)),
            watcher::Event::Delete(object) => KindEvent::Delete(to_value(object)),
            watcher::Event::Init => KindEvent::Init(kind),
            watcher::Event::InitApply(object) => KindEvent::InitApply(to_value(object)),
            watcher::Event::InitDone => KindEvent::InitDone(kind),
        };
        if tx.send(event).await.is_err() {
            return;
        }
    }
}

/// Whether the watch failed because the API server does not serve the resource (no CRD).
fn is_not_found(error: &watcher::Error) -> bool {
    match error {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status)) => status.code == 404,
        _ => false,
    }
}

/// Applies watch events in batches and installs the result.
async fn apply_events(
    mut rx: mpsc::Receiver<KindEvent>,
    index: Arc<Mutex<PolicyIndex>>,
    cache: Arc<PolicyCache>,
    changes: watch::Sender<u64>,
    kinds: BTreeSet<PolicyKind>,
    config: PolicySyncConfig,
    shutdown: ShutdownSignal,
) {
    let stop = shutdown.wait();
    tokio::pin!(stop);
    let mut listed: BTreeSet<PolicyKind> = BTreeSet::new();
    let mut pending_install = false;
    loop {
        let first = tokio::select! {
            _ = &mut stop => return,
            event = rx.recv() => match event {
                Some(event) => event,
                None => return,
            },
        };
        let mut batch = vec![first];
        let started = Instant::now();
        loop {
            let left = config.max_delay.saturating_sub(started.elapsed());
            if left.is_zero() {
                break;
            }
            match tokio::time::timeout(config.debounce.min(left), rx.recv()).await {
                Ok(Some(event)) => batch.push(event),
                Ok(None) | Err(_) => break,
            }
        }
        let applied = {
            let index = Arc::clone(&index);
            let metrics = cache.metrics().clone();
            tokio::task::spawn_blocking(move || apply_batch(&index, batch, &metrics)).await
        };
        let Ok((changed, done)) = applied else {
            tracing::error!("applying policy changes failed");
            continue;
        };
        listed.extend(done);
        pending_install |= changed;
        if pending_install && listed.is_superset(&kinds) {
            let index = Arc::clone(&index);
            let cache = Arc::clone(&cache);
            let installed = tokio::task::spawn_blocking(move || {
                let (set, rejected) = index.lock().unwrap_or_else(PoisonError::into_inner).build();
                cache.install(set, Vec::new(), rejected)
            })
            .await;
            match installed {
                Ok(summary) => {
                    pending_install = false;
                    tracing::info!(
                        policies = summary.policies,
                        exceptions = summary.exceptions,
                        created = summary.created,
                        updated = summary.updated,
                        deleted = summary.deleted,
                        not_loaded = summary.rejected.len(),
                        "policies installed"
                    );
                }
                Err(error) => tracing::error!(%error, "installing policies failed"),
            }
        }
        changes.send_modify(|count| *count += 1);
    }
}

/// Applies a batch to the index: whether the served set may have changed, and the kinds whose
/// full list completed.
fn apply_batch(
    index: &Mutex<PolicyIndex>,
    batch: Vec<KindEvent>,
    metrics: &Metrics,
) -> (bool, Vec<PolicyKind>) {
    let mut index = index.lock().unwrap_or_else(PoisonError::into_inner);
    let mut changed = false;
    let mut done = Vec::new();
    for event in batch {
        match event {
            KindEvent::Apply(value) | KindEvent::InitApply(value) => {
                if index.apply(&value) == Applied::Compiled {
                    changed = true;
                    report_compiled(&index, &value, metrics);
                }
            }
            KindEvent::Delete(value) => {
                if let Some(key) = ObjectKey::of(&value) {
                    changed |= index.delete(&key);
                }
            }
            KindEvent::Init(kind) => index.begin_relist(kind),
            KindEvent::InitDone(kind) => {
                let removed = index.finish_relist(kind);
                if removed > 0 {
                    tracing::info!(
                        kind = kind.as_str(),
                        removed,
                        "policies gone while not watching"
                    );
                }
                // Install after every complete list, even an empty one: it may be the first.
                changed = true;
                done.push(kind);
            }
        }
    }
    (changed, done)
}

/// Logs a newly compiled object that will not be served (once per change, not per install).
fn report_compiled(index: &PolicyIndex, value: &Value, metrics: &Metrics) {
    let Some(key) = ObjectKey::of(value) else {
        return;
    };
    match index.get(&key).map(|object| &object.outcome) {
        Some(Err(error)) => {
            metrics.record_load_error(error.rejection.label());
            tracing::error!(policy = %key, reason = error.rejection.label(), message = %error.message, "policy not loaded; the others are served");
        }
        Some(Ok(Compiled::Policy(_) | Compiled::Exception(_))) => {
            tracing::debug!(policy = %key, "policy compiled");
        }
        Some(Ok(Compiled::Other)) | None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exception_scope_reads_kyvernos_flag_values() {
        assert_eq!(ExceptionScope::parse(""), ExceptionScope::Disabled);
        assert_eq!(ExceptionScope::parse("*"), ExceptionScope::All);
        assert_eq!(
            ExceptionScope::parse("policy-exceptions"),
            ExceptionScope::Namespace("policy-exceptions".into())
        );
    }
}
