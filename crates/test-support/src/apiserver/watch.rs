//! Watch streams: newline-delimited JSON events (`{"type":…,"object":…}`) over a chunked response.

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Bytes;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc, watch};

use super::errors::ApiError;
use super::resources::ResourceType;
use super::selectors::Selectors;
use super::store::{Change, EventType, Store};

/// Where a watch starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WatchStart {
    /// `resourceVersion` unset or "0": synthetic ADDED events for the current state, then changes.
    Current,
    /// Changes after this resourceVersion.
    After(u64),
}

pub(crate) struct WatchRequest {
    pub rt: Arc<ResourceType>,
    pub namespace: Option<String>,
    pub selectors: Selectors,
    pub start: WatchStart,
    /// Streaming list: initial ADDED events, then a BOOKMARK annotated `k8s.io/initial-events-end`.
    pub send_initial_events: bool,
    pub bookmarks: bool,
    pub timeout: Option<Duration>,
    pub metadata_only: bool,
}

/// Renders a stored object for a client: in the version it asked for, or as metadata only.
pub(crate) fn present(object: &Value, rt: &ResourceType, metadata_only: bool) -> Value {
    if metadata_only {
        return json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
        });
    }
    let mut presented = object.clone();
    if let Some(fields) = presented.as_object_mut() {
        fields.insert("apiVersion".to_string(), json!(rt.api_version()));
        fields.insert("kind".to_string(), json!(rt.kind));
    }
    presented
}

fn line(event_type: &str, object: &Value) -> Bytes {
    let mut bytes =
        serde_json::to_vec(&json!({ "type": event_type, "object": object })).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

impl WatchRequest {
    /// What a change looks like to this watch, as the real server's filtered watch shows it: an
    /// object that starts matching the selectors is ADDED, one that stops matching is DELETED.
    fn translate(&self, change: &Change) -> Option<Bytes> {
        let in_scope = self
            .namespace
            .as_ref()
            .is_none_or(|ns| *ns == change.namespace);
        if change.resource != self.rt.group_resource() || !in_scope {
            return None;
        }
        let now = self.selectors.matches(&change.object);
        let event = match (change.event, change.previous.as_deref()) {
            (EventType::Modified, Some(previous)) => {
                match (self.selectors.matches(previous), now) {
                    (true, true) => EventType::Modified,
                    (false, true) => EventType::Added,
                    (true, false) => EventType::Deleted,
                    (false, false) => return None,
                }
            }
            (event, _) if now => event,
            _ => return None,
        };
        Some(line(
            event.as_str(),
            &present(&change.object, &self.rt, self.metadata_only),
        ))
    }

    fn bookmark(&self, rv: u64, initial_events_end: bool) -> Bytes {
        let (kind, api_version) = if self.metadata_only {
            (
                "PartialObjectMetadata".to_string(),
                "meta.k8s.io/v1".to_string(),
            )
        } else {
            (self.rt.kind.clone(), self.rt.api_version())
        };
        let mut metadata = json!({ "resourceVersion": rv.to_string() });
        if initial_events_end {
            metadata["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
        }
        line(
            "BOOKMARK",
            &json!({ "kind": kind, "apiVersion": api_version, "metadata": metadata }),
        )
    }
}

/// A watch opened under the store lock: what to send first, and the live feed after it.
pub(crate) struct OpenedWatch {
    pub request: WatchRequest,
    initial: Vec<Bytes>,
    changes: Option<broadcast::Receiver<Arc<Change>>>,
    last_rv: u64,
}

impl OpenedWatch {
    /// Reads the starting state and subscribes in one step (the caller holds the store lock), so
    /// no change falls between them.
    pub fn open(store: &Store, request: WatchRequest) -> Self {
        let mut initial = Vec::new();
        let current = store.resource_version();
        let last_rv = match request.start {
            WatchStart::After(rv) if !request.send_initial_events => {
                match store.changes_since(rv) {
                    Some(changes) => {
                        initial.extend(changes.iter().filter_map(|c| request.translate(c)));
                        current
                    }
                    None => {
                        let gone = ApiError::expired(format!(
                            "too old resource version: {rv} ({})",
                            store.compacted()
                        ));
                        initial.push(line("ERROR", &gone.to_status()));
                        return OpenedWatch {
                            request,
                            initial,
                            changes: None,
                            last_rv: rv,
                        };
                    }
                }
            }
            _ => {
                let namespace = if request.rt.namespaced {
                    request.namespace.as_deref()
                } else {
                    None
                };
                for (_, stored) in store.list(&request.rt.group_resource(), namespace) {
                    if request.selectors.matches(&stored.object) {
                        initial.push(line(
                            "ADDED",
                            &present(&stored.object, &request.rt, request.metadata_only),
                        ));
                    }
                }
                if request.send_initial_events {
                    initial.push(request.bookmark(current, true));
                }
                current
            }
        };
        OpenedWatch {
            changes: Some(store.subscribe()),
            request,
            initial,
            last_rv,
        }
    }

    /// Feeds the response body until the client goes, the timeout passes, the server stops or
    /// [`super::FakeApiServer::expire_watches`] ends every watch.
    pub async fn run(
        self,
        out: mpsc::Sender<Bytes>,
        mut shutdown: watch::Receiver<bool>,
        mut expired: watch::Receiver<u64>,
        bookmark_interval: Duration,
    ) {
        let OpenedWatch {
            request,
            initial,
            changes,
            mut last_rv,
        } = self;
        for bytes in initial {
            if out.send(bytes).await.is_err() {
                return;
            }
        }
        let Some(mut changes) = changes else { return };
        let deadline = request.timeout.map(|t| tokio::time::Instant::now() + t);
        let mut ticker = tokio::time::interval(bookmark_interval);
        ticker.tick().await;
        expired.mark_unchanged();
        loop {
            let timeout = async {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                // Stopping and expiry win over pending changes: a client whose watch was expired
                // must not get more events on it.
                biased;
                () = super::server::stopped(&mut shutdown) => return,
                _ = expired.changed() => return,
                () = out.closed() => return,
                received = changes.recv() => match received {
                    Ok(change) => {
                        last_rv = change.rv;
                        if let Some(bytes) = request.translate(&change) {
                            if out.send(bytes).await.is_err() {
                                return;
                            }
                        }
                    }
                    // Fell behind the fan-out, or the store is gone: end the stream; the client
                    // resumes from its last resourceVersion (served from history).
                    Err(_) => return,
                },
                _ = ticker.tick(), if request.bookmarks => {
                    if out.send(request.bookmark(last_rv, false)).await.is_err() {
                        return;
                    }
                }
                () = timeout => {
                    if request.bookmarks {
                        let _ = out.send(request.bookmark(last_rv, false)).await;
                    }
                    return;
                }
            }
        }
    }
}
