//! A fake Kubernetes API server for tests: real HTTP/1.1 on 127.0.0.1, in-memory, speaking the
//! REST and watch wire format of kube-apiserver closely enough that `kube::Client`,
//! kube-runtime's watchers and reflectors, and `bylaw serve --kubeconfig` work against it unchanged.
//!
//! ```no_run
//! # async fn demo() {
//! use bylaw_test_support::apiserver::FakeApiServer;
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use kube::api::{Api, PostParams};
//!
//! let server = FakeApiServer::start().await;
//! server.insert(serde_json::json!({
//!     "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "team-a" },
//! }));
//! let api: Api<ConfigMap> = Api::namespaced(server.client(), "team-a");
//! // … run the controller under test with `server.client()` …
//! assert!(server.requests().iter().all(|r| !r.is_write()), "nothing changed, so nothing written");
//! # }
//! ```
//!
//! # What it serves
//! * Discovery (`/api`, `/apis`, `/apis/{group}`, APIResourceLists with subresources, aggregated
//!   discovery v2), `/version`, `/healthz`, `/readyz`, `/livez`.
//! * The built-in types listed in `resources.rs` and every type a CustomResourceDefinition
//!   registers (served versions, scope, names, status and scale subresources).
//! * get, list (label and field selectors, `limit`/`continue`), watch (from a resourceVersion,
//!   synthetic ADDED events, bookmarks, `timeoutSeconds`, selector transitions, 410 `Expired`,
//!   streaming lists with `sendInitialEvents`), create (`generateName`), update (optimistic
//!   concurrency), patch (merge, JSON, strategic merge, server-side apply), delete (preconditions,
//!   finalizers, propagation), deletecollection, `/status` and `/scale`, `dryRun=All`,
//!   metadata-only responses (`as=PartialObjectMetadata[List]`), SubjectAccessReviews.
//!
//! # What a real API server does differently
//! * No schema validation, defaulting or pruning of object bodies (only names, labels and
//!   annotations are validated); no admission webhooks are called.
//! * Objects are stored once per group/resource; reading through another served version only
//!   rewrites `apiVersion` (no conversion).
//! * Paged lists are not snapshots: later pages show the objects after the last key as they are
//!   now, stamped with the first page's resourceVersion. A list with `resourceVersionMatch=Exact`
//!   returns the current state.
//! * Strategic merge patch and server-side apply are approximated (see `patch.rs` and `apply.rs`):
//!   keyed lists are known by field name for built-ins and by `x-kubernetes-list-type` for CRDs;
//!   apply ownership is tracked only among apply managers; `managedFields` is not written.
//! * `metadata.generation` is set on every object (1 on create) and bumped when anything outside
//!   metadata changes — outside status too when the type has a status subresource.
//! * Deletion is synchronous: Background and Foreground propagation both delete dependents
//!   whose owners are all gone right away; Orphan strips the owner reference. A dependent whose
//!   owner never existed is not collected. Pods are removed at once (no kubelet, no grace period).
//!   Deleting a CRD removes its custom resources without waiting for their finalizers.
//! * Namespaces: deleting one marks it Terminating, deletes its contents and removes it once it
//!   is empty and its `metadata.finalizers` are gone (no `spec.finalizers`).
//! * core/v1 Events and events.k8s.io/v1 Events are separate stores.
//! * RBAC is "allow everything" except what [`FakeApiServer::deny`] names; there is no
//!   authentication (any token is accepted).
//! * Watches that fall more than a few thousand events behind are ended (the client resumes from
//!   history); the history keeps the last 20,000 changes.

mod apply;
mod discovery;
mod errors;
mod handlers;
mod lists;
mod objects;
mod patch;
mod paths;
mod resources;
mod selectors;
mod server;
mod store;
mod validation;
mod watch;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use handlers::{lock, Inner};
use objects::{DeleteOptions, Origin, Propagation, Target};
use store::{split_api_version, ObjectRef, Store};

/// The user named in Forbidden messages.
pub(crate) const FAKE_USER: &str = "system:serviceaccount:bylaw-system:bylaw";

/// The default time between BOOKMARK events on watches that allow them.
const DEFAULT_BOOKMARK_INTERVAL: Duration = Duration::from_secs(1);

/// One request the server answered, for assertions such as "nothing was written".
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// The raw query string (`labelSelector=a%3Db&limit=5`).
    pub query: String,
    pub content_type: Option<String>,
    /// The Accept header (`application/json;as=PartialObjectMetadataList;…` for metadata-only reads).
    pub accept: Option<String>,
    /// get, list, watch, create, update, patch, delete, deletecollection; empty for discovery and
    /// other non-resource paths.
    pub verb: String,
    pub group: String,
    pub version: String,
    /// Plural resource name (`configmaps`); empty for non-resource paths.
    pub resource: String,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// The request body when it was JSON or YAML.
    pub body: Option<Value>,
    /// The HTTP status code of the answer.
    pub status: u16,
}

impl RecordedRequest {
    /// A decoded query parameter (`fieldManager`, `labelSelector`, …).
    pub fn query_param(&self, key: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }

    /// Whether the request asked to change something (create, update, patch, delete).
    pub fn is_write(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "create" | "update" | "patch" | "delete" | "deletecollection"
        )
    }

    /// A server-side apply patch.
    pub fn is_apply(&self) -> bool {
        self.content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("application/apply-patch+yaml"))
    }
}

/// A rule that makes requests fail with 403 Forbidden (see [`FakeApiServer::deny`]).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Denial {
    verb: String,
    group: String,
    /// `pods`, `pods/status` or `*`.
    resource: String,
    namespace: Option<String>,
}

impl Denial {
    /// Parses `resource[/subresource][.group]` (or `resource.group/subresource`).
    fn parse(verb: &str, group_resource: &str, namespace: Option<&str>) -> Self {
        let (resource, group) = match group_resource.split_once('.') {
            Some((resource, group)) => (resource.to_string(), group.to_string()),
            None => (group_resource.to_string(), String::new()),
        };
        let (resource, group) = match group.split_once('/') {
            Some((group, sub)) => (format!("{resource}/{sub}"), group.to_string()),
            None => (resource, group),
        };
        Denial {
            verb: verb.to_string(),
            group,
            resource,
            namespace: namespace.map(str::to_string),
        }
    }

    pub(crate) fn matches(
        &self,
        verb: &str,
        group: &str,
        resource: &str,
        namespace: Option<&str>,
    ) -> bool {
        (self.verb == "*" || self.verb == verb)
            && (self.resource == "*" || (self.resource == resource && self.group == group))
            && self
                .namespace
                .as_deref()
                .is_none_or(|ns| Some(ns) == namespace)
    }
}

/// An in-memory Kubernetes API server on 127.0.0.1 (see the module documentation).
///
/// It serves until dropped. Methods that take `&self` and are not `async` act on the stored state
/// directly, without HTTP, and are meant for arranging and asserting in tests.
pub struct FakeApiServer {
    inner: Arc<Inner>,
    address: SocketAddr,
    serving: tokio::sync::Mutex<Option<server::Serving>>,
}

impl FakeApiServer {
    /// Binds 127.0.0.1 on a free port and starts serving. Must be called inside a tokio runtime.
    ///
    /// # Panics
    /// When no local port can be bound.
    pub async fn start() -> FakeApiServer {
        let listener = server::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .unwrap_or_else(|e| panic!("FakeApiServer: cannot bind 127.0.0.1: {e}"));
        let address = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("FakeApiServer: no local address: {e}"));
        let (expired, _) = tokio::sync::watch::channel(0);
        let inner = Arc::new(Inner {
            store: Mutex::new(Store::new()),
            requests: Mutex::new(Vec::new()),
            denials: Mutex::new(Vec::new()),
            latency: Mutex::new(Duration::ZERO),
            bookmark_interval: Mutex::new(DEFAULT_BOOKMARK_INTERVAL),
            expired,
            address: address.to_string(),
        });
        // The namespaces a cluster starts with, older than anything a test creates (as in a real
        // cluster): a policy applied in the test's first second must still find them existing.
        for namespace in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let ns = serde_json::json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": { "name": namespace, "creationTimestamp": "2020-01-01T00:00:00Z" }
            });
            let mut store = lock(&inner.store);
            if let Some(rt) = store.registry.by_kind("", "v1", "Namespace") {
                let _ = store.create(&rt, None, ns, Origin::Seed, apply::Appliers::new(), false);
            }
        }
        let serving = server::serve(listener, inner.clone());
        FakeApiServer {
            inner,
            address,
            serving: tokio::sync::Mutex::new(Some(serving)),
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// A client for this server with default namespace `default`.
    ///
    /// # Panics
    /// Outside a tokio runtime (kube's client spawns its buffer task).
    pub fn client(&self) -> kube::Client {
        let url = self
            .url()
            .parse()
            .unwrap_or_else(|e| panic!("FakeApiServer: bad url: {e}"));
        let mut config = kube::Config::new(url);
        config.default_namespace = "default".to_string();
        kube::Client::try_from(config)
            .unwrap_or_else(|e| panic!("FakeApiServer: cannot build a client: {e}"))
    }

    /// A kubeconfig pointing at this server (context `fake`, namespace `default`, a dummy token).
    pub fn kubeconfig_yaml(&self) -> String {
        format!(
            "apiVersion: v1\n\
             kind: Config\n\
             clusters:\n\
             - name: fake\n  cluster:\n    server: {url}\n\
             contexts:\n\
             - name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\n\
             current-context: fake\n\
             users:\n\
             - name: fake\n  user:\n    token: fake-token\n",
            url = self.url()
        )
    }

    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml())
    }

    fn resource_type(store: &Store, api_version: &str, kind: &str) -> Arc<resources::ResourceType> {
        let (group, version) = split_api_version(api_version);
        store
            .registry
            .by_kind(group, version, kind)
            .unwrap_or_else(|| {
                panic!("FakeApiServer: {api_version} {kind} is not served (install its CRD first)")
            })
    }

    /// Creates an object as a client would, except that `.status` is kept and a missing namespace
    /// is created. Fills uid, resourceVersion, creationTimestamp (unless the object gives one, to
    /// seed objects older than others) and generation, and returns the stored object. Watches
    /// see it.
    ///
    /// # Panics
    /// When the kind is not served or the create fails (already exists, invalid name, …).
    pub fn insert(&self, object: Value) -> Value {
        let mut store = lock(&self.inner.store);
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let kind = object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let rt = Self::resource_type(&store, &api_version, &kind);
        let namespace = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_string);
        let namespace = if rt.namespaced {
            Some(namespace.unwrap_or_else(|| "default".to_string()))
        } else {
            None
        };
        store
            .create(
                &rt,
                namespace.as_deref(),
                object,
                Origin::Seed,
                apply::Appliers::new(),
                false,
            )
            .unwrap_or_else(|e| panic!("FakeApiServer::insert: {}", e.message))
    }

    /// Creates the object, or replaces the stored one (keeping its uid and creationTimestamp,
    /// `.status` included, without a resourceVersion check). Returns the stored object.
    ///
    /// # Panics
    /// When the kind is not served or the write is invalid.
    pub fn upsert(&self, object: Value) -> Value {
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let kind = object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let mut store = lock(&self.inner.store);
        let rt = Self::resource_type(&store, &api_version, &kind);
        let namespace = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_string);
        let namespace = if rt.namespaced {
            Some(namespace.unwrap_or_else(|| "default".to_string()))
        } else {
            None
        };
        let exists = store
            .get(
                &rt.group_resource(),
                namespace.as_deref().unwrap_or_default(),
                &name,
            )
            .is_some();
        if !exists {
            drop(store);
            return self.insert(object);
        }
        let mut object = object;
        if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.remove("resourceVersion");
        }
        let status = object.get("status").cloned();
        let updated = store
            .update(
                &rt,
                namespace.as_deref(),
                &name,
                object.clone(),
                Target::Main,
                None,
                false,
            )
            .unwrap_or_else(|e| panic!("FakeApiServer::upsert: {}", e.message));
        if !rt.status {
            return updated;
        }
        let mut with_status = updated;
        match status {
            Some(status) => with_status["status"] = status,
            None => {
                if let Some(fields) = with_status.as_object_mut() {
                    fields.remove("status");
                }
            }
        }
        store
            .update(
                &rt,
                namespace.as_deref(),
                &name,
                with_status,
                Target::Status,
                None,
                false,
            )
            .unwrap_or_else(|e| panic!("FakeApiServer::upsert: {}", e.message))
    }

    /// The stored object, as served in `api_version`.
    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let store = lock(&self.inner.store);
        let (group, version) = split_api_version(api_version);
        let rt = store.registry.by_kind(group, version, kind)?;
        let stored = store.get(
            &rt.group_resource(),
            if rt.namespaced {
                namespace.unwrap_or("default")
            } else {
                ""
            },
            name,
        )?;
        Some(watch::present(&stored.object, &rt, false))
    }

    /// Stored objects of a kind (in one namespace, or all with `None`), in namespace/name order.
    pub fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        let store = lock(&self.inner.store);
        let (group, version) = split_api_version(api_version);
        let Some(rt) = store.registry.by_kind(group, version, kind) else {
            return Vec::new();
        };
        let namespace = if rt.namespaced { namespace } else { None };
        store
            .list(&rt.group_resource(), namespace)
            .map(|(_, stored)| watch::present(&stored.object, &rt, false))
            .collect()
    }

    /// Deletes an object as a DELETE request would (finalizers hold it with a deletionTimestamp;
    /// dependents are garbage-collected). Returns whether it existed.
    pub fn remove(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> bool {
        let mut store = lock(&self.inner.store);
        let (group, version) = split_api_version(api_version);
        let Some(rt) = store.registry.by_kind(group, version, kind) else {
            return false;
        };
        let namespace = if rt.namespaced {
            Some(namespace.unwrap_or("default"))
        } else {
            None
        };
        store
            .delete(&rt, namespace, name, &DeleteOptions::default())
            .is_ok()
    }

    /// Creates or updates CustomResourceDefinitions (JSON), like `kubectl apply` of CRDs; their
    /// kinds are served at once.
    ///
    /// # Panics
    /// When a CRD is invalid.
    pub fn install_crds(&self, crds: impl IntoIterator<Item = Value>) {
        for mut crd in crds {
            if crd.get("apiVersion").is_none() {
                crd["apiVersion"] = Value::String("apiextensions.k8s.io/v1".to_string());
            }
            if crd.get("kind").is_none() {
                crd["kind"] = Value::String("CustomResourceDefinition".to_string());
            }
            self.upsert(crd);
        }
    }

    /// Every request answered so far, oldest first. A request is logged when it is answered,
    /// just after its change became visible in the store: a test that has seen the change must
    /// poll for the request rather than read the log once.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.inner.requests).clone()
    }

    pub fn clear_requests(&self) {
        lock(&self.inner.requests).clear();
    }

    /// The current resourceVersion of the store (the last one handed out).
    pub fn resource_version(&self) -> u64 {
        lock(&self.inner.store).resource_version()
    }

    /// Stops listening and drops every open connection and watch: clients see "connection
    /// refused" until [`FakeApiServer::restart`]. The data is kept.
    pub async fn stop(&self) {
        let serving = self.serving.lock().await.take();
        if let Some(serving) = serving {
            serving.stop().await;
        }
    }

    /// Listens again on the same port with the same data (no-op when serving).
    ///
    /// # Panics
    /// When the port cannot be bound again.
    pub async fn restart(&self) {
        let mut serving = self.serving.lock().await;
        if serving.is_some() {
            return;
        }
        let listener = server::bind(self.address).unwrap_or_else(|e| {
            panic!(
                "FakeApiServer: cannot listen on {} again: {e}",
                self.address
            )
        });
        *serving = Some(server::serve(listener, self.inner.clone()));
    }

    /// Ends every open watch and forgets the change history, as an etcd compaction does: a watch
    /// or continue token from any resourceVersion handed out so far now gets 410 Gone (`Expired`),
    /// which makes kube-runtime's watcher list again.
    pub fn expire_watches(&self) {
        lock(&self.inner.store).compact();
        self.inner.expired.send_modify(|epoch| *epoch += 1);
    }

    /// Makes requests matching `verb` (`get`, `list`, `watch`, `create`, `update`, `patch`,
    /// `delete`, `deletecollection` or `*`) on `group_resource` (`configmaps`, `deployments.apps`,
    /// `clusterpolicies.kyverno.io`, `pods/status`, `deployments.apps/status`, or `*`) in
    /// `namespace` (`None`: every namespace and cluster-wide requests) fail with 403 Forbidden, as
    /// missing RBAC would. SubjectAccessReviews for them answer `allowed: false`.
    pub fn deny(&self, verb: &str, group_resource: &str, namespace: Option<&str>) {
        lock(&self.inner.denials).push(Denial::parse(verb, group_resource, namespace));
    }

    /// Forgets every [`FakeApiServer::deny`].
    pub fn allow_all(&self) {
        lock(&self.inner.denials).clear();
    }

    /// Delays every response by `latency`.
    pub fn set_latency(&self, latency: Duration) {
        *lock(&self.inner.latency) = latency;
    }

    /// Time between BOOKMARK events on watches that allow them (default one second). Affects
    /// watches opened afterwards.
    pub fn set_bookmark_interval(&self, interval: Duration) {
        *lock(&self.inner.bookmark_interval) = interval;
    }

    /// Runs garbage collection for objects whose owners are all gone (the real collector also
    /// removes dependents whose owner never existed; the fake only does so when asked).
    pub fn collect_garbage(&self) {
        let mut store = lock(&self.inner.store);
        let orphans: Vec<ObjectRef> = store.dangling_dependents();
        for orphan in orphans {
            store.delete_ref(&orphan, Propagation::Background);
        }
    }
}
