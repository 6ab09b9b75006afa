//! The cluster's answers to what policies look up: namespace labels, the requesting user's roles,
//! ConfigMaps and API calls.
//!
//! * Namespace labels come from a Namespace reflector (metadata only).
//! * Roles come from RoleBinding and ClusterRoleBinding reflectors, indexed ([`RoleIndex`]) and
//!   re-indexed shortly after bindings change.
//! * A ConfigMap is fetched on first use and then watched (one watch per referenced ConfigMap,
//!   at most `max_config_maps`; past that, lookups go to the API server each time).
//! * `apiCall.urlPath` goes to the API server with bylaw's credentials, bounded in time and
//!   response size; GET answers are cached briefly. `apiCall.service` goes through
//!   [`ServiceCaller`] and its rules.
//!
//! The engine is synchronous and runs on the blocking pool, so a lookup that needs the network
//! is handed to the async runtime and waited for with a timeout (never by blocking an async
//! worker from inside it). The namespace rules of namespaced policies and the per-review size
//! bound are applied before any lookup reaches this type (`bylaw_runtime::context_scope`).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use bylaw_engine::context::{ApiCall, ContextError, ContextProvider};
use bylaw_runtime::roles::{RoleIndex, UserRoles};
use bylaw_runtime::sources::ContextSource;
use bylaw_runtime::ShutdownSignal;
use futures::{Stream, StreamExt};
use http_body_util::{BodyExt, Limited};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::api::{Api, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, Resource};
use serde_json::Value;
use tokio::sync::{watch, Notify};

use crate::kinds::{KindResolver, ServedKind};
use crate::service_call::ServiceCaller;

/// Limits of the cluster context.
#[derive(Clone, Debug)]
pub struct ClusterContextConfig {
    /// Longest an API or service call (or a first ConfigMap fetch) may take.
    pub call_timeout: Duration,
    /// Largest API or service call response, in bytes.
    pub max_response_bytes: usize,
    /// How long a GET answer of the API server is reused.
    pub api_call_cache_ttl: Duration,
    /// Whether `apiCall.service` calls are made at all.
    pub allow_service_calls: bool,
    /// ConfigMaps watched at most.
    pub max_config_maps: usize,
}

impl Default for ClusterContextConfig {
    fn default() -> Self {
        ClusterContextConfig {
            call_timeout: Duration::from_secs(2),
            max_response_bytes: 2 * 1024 * 1024,
            api_call_cache_ttl: Duration::from_secs(5),
            allow_service_calls: false,
            max_config_maps: 1000,
        }
    }
}

/// GET answers cached at most.
const MAX_CACHED_CALLS: usize = 256;
/// Quiet time before bindings are indexed again.
const ROLES_DEBOUNCE: Duration = Duration::from_millis(100);

/// What is known of one ConfigMap: not yet (`None`), or the object, or that it does not exist,
/// or why it cannot be read.
type ConfigMapState = Option<Result<Option<Arc<Value>>, String>>;

/// The cluster context; see the module documentation.
pub struct ClusterContext {
    handle: tokio::runtime::Handle,
    client: Client,
    config: ClusterContextConfig,
    namespaces: Store<PartialObjectMeta<Namespace>>,
    role_bindings: Store<RoleBinding>,
    cluster_role_bindings: Store<ClusterRoleBinding>,
    roles: Arc<RwLock<Arc<RoleIndex>>>,
    config_maps: Mutex<HashMap<(String, String), watch::Receiver<ConfigMapState>>>,
    api_calls: Mutex<HashMap<String, (Instant, Arc<Value>)>>,
    service: ServiceCaller,
    kinds: Arc<KindResolver>,
    shutdown: ShutdownSignal,
}

impl std::fmt::Debug for ClusterContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterContext").finish_non_exhaustive()
    }
}

/// Drives a reflector stream until shutdown, logging failures once per outage.
async fn drive<S, T, E>(
    what: &'static str,
    stream: S,
    changed: Option<Arc<Notify>>,
    shutdown: ShutdownSignal,
) where
    S: Stream<Item = Result<T, E>>,
    E: std::fmt::Display,
{
    tokio::pin!(stream);
    let stop = shutdown.wait();
    tokio::pin!(stop);
    let mut failing = false;
    loop {
        let next = tokio::select! {
            _ = &mut stop => return,
            next = stream.next() => next,
        };
        match next {
            None => return,
            Some(Err(error)) => {
                if !failing {
                    tracing::warn!(what, %error, "cannot watch; using what was last seen and retrying");
                }
                failing = true;
            }
            Some(Ok(_)) => {
                if failing {
                    tracing::info!(what, "watching again");
                }
                failing = false;
                if let Some(changed) = &changed {
                    changed.notify_one();
                }
            }
        }
    }
}

impl ClusterContext {
    /// Starts the reflectors; call from inside the Tokio runtime that will serve lookups.
    pub fn start(
        client: Client,
        config: ClusterContextConfig,
        shutdown: ShutdownSignal,
    ) -> Arc<Self> {
        let handle = tokio::runtime::Handle::current();
        let strip = |meta: &mut kube::core::ObjectMeta| meta.managed_fields = None;

        let (namespaces, writer) = reflector::store();
        let stream = watcher(
            Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .modify(move |ns: &mut PartialObjectMeta<Namespace>| strip(&mut ns.metadata))
        .reflect(writer);
        tokio::spawn(drive("namespaces", stream, None, shutdown.clone()));

        let bindings_changed = Arc::new(Notify::new());
        let (role_bindings, writer) = reflector::store();
        let stream = watcher(
            Api::<RoleBinding>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .modify(move |rb: &mut RoleBinding| strip(rb.meta_mut()))
        .reflect(writer);
        tokio::spawn(drive(
            "rolebindings",
            stream,
            Some(bindings_changed.clone()),
            shutdown.clone(),
        ));
        let (cluster_role_bindings, writer) = reflector::store();
        let stream = watcher(
            Api::<ClusterRoleBinding>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .modify(move |crb: &mut ClusterRoleBinding| strip(crb.meta_mut()))
        .reflect(writer);
        tokio::spawn(drive(
            "clusterrolebindings",
            stream,
            Some(bindings_changed.clone()),
            shutdown.clone(),
        ));

        let service = ServiceCaller::new(
            config.allow_service_calls,
            config.call_timeout,
            config.max_response_bytes,
        );
        let kinds = Arc::new(KindResolver::new(client.clone()));
        let context = Arc::new(ClusterContext {
            handle,
            client,
            config,
            namespaces,
            role_bindings,
            cluster_role_bindings,
            roles: Arc::new(RwLock::new(Arc::new(RoleIndex::default()))),
            config_maps: Mutex::new(HashMap::new()),
            api_calls: Mutex::new(HashMap::new()),
            service,
            kinds,
            shutdown: shutdown.clone(),
        });
        tokio::spawn(index_roles(
            Arc::downgrade(&context),
            bindings_changed,
            shutdown,
        ));
        context
    }

    /// The discovery catalog lookups resolve kinds with (shared with the generate controller).
    pub fn kinds(&self) -> &Arc<KindResolver> {
        &self.kinds
    }

    /// Waits until namespaces and bindings have been listed once.
    pub async fn ready(&self) {
        // An error means the writer is gone (shutdown): nothing left to wait for.
        let _ = self.namespaces.wait_until_ready().await;
        let _ = self.role_bindings.wait_until_ready().await;
        let _ = self.cluster_role_bindings.wait_until_ready().await;
        self.reindex_roles();
    }

    fn reindex_roles(&self) {
        let role_bindings = self.role_bindings.state();
        let cluster_role_bindings = self.cluster_role_bindings.state();
        let index = RoleIndex::new(
            role_bindings.iter().map(AsRef::as_ref),
            cluster_role_bindings.iter().map(AsRef::as_ref),
        );
        *self.roles.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(index);
    }

    /// Runs `work` on the runtime and waits for it from this (blocking) thread, at most the call
    /// timeout.
    fn wait_for<T, F>(&self, what: String, work: F) -> Result<T, ContextError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, ContextError>> + Send + 'static,
    {
        let timeout = self.config.call_timeout;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let late = what.clone();
        self.handle.spawn(async move {
            let result = tokio::time::timeout(timeout, work)
                .await
                .unwrap_or_else(|_| {
                    Err(ContextError(format!(
                        "{late}: no answer within {timeout:?}"
                    )))
                });
            // The waiter may have given up; nothing to do then.
            let _ = tx.send(result);
        });
        rx.recv_timeout(timeout + Duration::from_millis(200))
            .unwrap_or_else(|_| {
                Err(ContextError(format!(
                    "{what}: no answer within {timeout:?}"
                )))
            })
    }

    /// The watch state of a ConfigMap, starting its watch on first use; `None` when the cache is
    /// full.
    fn config_map_state(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<watch::Receiver<ConfigMapState>> {
        let mut entries = self
            .config_maps
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let key = (namespace.to_owned(), name.to_owned());
        if let Some(state) = entries.get(&key) {
            return Some(state.clone());
        }
        if entries.len() >= self.config.max_config_maps {
            return None;
        }
        let (tx, rx) = watch::channel(None);
        let api = Api::<ConfigMap>::namespaced(self.client.clone(), namespace);
        let selector = format!("metadata.name={name}");
        self.handle
            .spawn(watch_config_map(api, selector, tx, self.shutdown.clone()));
        entries.insert(key, rx.clone());
        Some(rx)
    }

    async fn get_config_map(
        client: Client,
        namespace: String,
        name: String,
    ) -> Result<Option<Value>, ContextError> {
        match Api::<ConfigMap>::namespaced(client, &namespace)
            .get_opt(&name)
            .await
        {
            Ok(found) => Ok(found.map(config_map_value)),
            Err(error) => Err(ContextError(format!(
                "cannot read configmap {namespace}/{name}: {error}"
            ))),
        }
    }

    fn api_server_call(&self, path: &str, call: &ApiCall) -> Result<Option<Value>, ContextError> {
        let method = call.method.to_ascii_uppercase();
        let cache_key = (method == "GET").then(|| path.to_owned());
        if let Some(key) = &cache_key {
            let cached = self
                .api_calls
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(key)
                .filter(|(at, _)| at.elapsed() < self.config.api_call_cache_ttl)
                .map(|(_, value)| Arc::clone(value));
            if let Some(value) = cached {
                return Ok(Some(value.as_ref().clone()));
            }
        }
        let request = build_request(path, &method, &call.data)?;
        let client = self.client.clone();
        let max = self.config.max_response_bytes;
        let described = format!("failed to {method} resource with raw url: {path}");
        let value = self.wait_for(described.clone(), async move {
            let response = client
                .send(request)
                .await
                .map_err(|e| ContextError(format!("{described}: {e}")))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), max)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        ContextError(format!(
                            "{described}: the response is larger than {max} bytes"
                        ))
                    } else {
                        ContextError(format!("{described}: {e}"))
                    }
                })?
                .to_bytes();
            if !status.is_success() {
                let message = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
                    .unwrap_or_else(|| status.to_string());
                return Err(ContextError(format!("{described}: {message}")));
            }
            serde_json::from_slice::<Value>(&body)
                .map_err(|e| ContextError(format!("{described}: the response is not JSON: {e}")))
        })?;
        if let Some(key) = cache_key {
            let mut calls = self
                .api_calls
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let ttl = self.config.api_call_cache_ttl;
            calls.retain(|_, (at, _)| at.elapsed() < ttl);
            if calls.len() < MAX_CACHED_CALLS {
                calls.insert(key, (Instant::now(), Arc::new(value.clone())));
            }
        }
        Ok(Some(value))
    }
}

/// A request to the API server for `apiCall.urlPath`: GET, or POST with `data` as a JSON object.
fn build_request(
    path: &str,
    method: &str,
    data: &[(String, Value)],
) -> Result<http::Request<kube::client::Body>, ContextError> {
    let (method, body) = match method {
        "GET" => (http::Method::GET, Vec::new()),
        "POST" => {
            let object: serde_json::Map<String, Value> = data.iter().cloned().collect();
            let body = serde_json::to_vec(&object)
                .map_err(|e| ContextError(format!("apiCall.data: {e}")))?;
            (http::Method::POST, body)
        }
        other => {
            return Err(ContextError(format!(
                "apiCall.method {other} is not supported (GET or POST)"
            )))
        }
    };
    http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::ACCEPT, "application/json")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(kube::client::Body::from(body))
        .map_err(|e| ContextError(format!("apiCall.urlPath {path:?}: {e}")))
}

/// A ConfigMap as policies see it, without managedFields.
fn config_map_value(mut config_map: ConfigMap) -> Value {
    config_map.metadata.managed_fields = None;
    let mut value = serde_json::to_value(config_map).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.entry("apiVersion")
            .or_insert_with(|| Value::String("v1".into()));
        map.entry("kind")
            .or_insert_with(|| Value::String("ConfigMap".into()));
    }
    value
}

/// Follows one ConfigMap and publishes what is known of it.
async fn watch_config_map(
    api: Api<ConfigMap>,
    selector: String,
    state: watch::Sender<ConfigMapState>,
    shutdown: ShutdownSignal,
) {
    let stream = watcher(api, watcher::Config::default().fields(&selector)).default_backoff();
    tokio::pin!(stream);
    let stop = shutdown.wait();
    tokio::pin!(stop);
    let mut listing: Option<Arc<Value>> = None;
    loop {
        let next = tokio::select! {
            _ = &mut stop => return,
            next = stream.next() => next,
        };
        match next {
            None => return,
            Some(Err(error)) => {
                // Before the first answer, lookups must not wait for one that will not come.
                if state.borrow().is_none() {
                    state.send_replace(Some(Err(error.to_string())));
                }
            }
            Some(Ok(watcher::Event::Init)) => listing = None,
            Some(Ok(watcher::Event::InitApply(cm))) => {
                listing = Some(Arc::new(config_map_value(cm)))
            }
            Some(Ok(watcher::Event::InitDone)) => {
                state.send_replace(Some(Ok(listing.take())));
            }
            Some(Ok(watcher::Event::Apply(cm))) => {
                state.send_replace(Some(Ok(Some(Arc::new(config_map_value(cm))))));
            }
            Some(Ok(watcher::Event::Delete(_))) => {
                state.send_replace(Some(Ok(None)));
            }
        }
        if state.is_closed() {
            return;
        }
    }
}

/// Re-indexes roles shortly after bindings change.
async fn index_roles(
    context: std::sync::Weak<ClusterContext>,
    changed: Arc<Notify>,
    shutdown: ShutdownSignal,
) {
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            () = changed.notified() => {}
        }
        tokio::time::sleep(ROLES_DEBOUNCE).await;
        let Some(context) = context.upgrade() else {
            return;
        };
        context.reindex_roles();
    }
}

impl ContextProvider for ClusterContext {
    fn config_map(&self, namespace: &str, name: &str) -> Result<Option<Value>, ContextError> {
        let not_found = || ContextError(format!("configmap {namespace}/{name} not found"));
        let Some(mut state) = self.config_map_state(namespace, name) else {
            // Too many ConfigMaps watched: ask the API server each time.
            let found = self.wait_for(
                format!("cannot read configmap {namespace}/{name}"),
                Self::get_config_map(self.client.clone(), namespace.to_owned(), name.to_owned()),
            )?;
            return found.map(Some).ok_or_else(not_found);
        };
        let known = state.borrow().clone();
        let known = match known {
            Some(known) => known,
            None => self.wait_for(
                format!("cannot read configmap {namespace}/{name}"),
                async move {
                    match state.wait_for(Option::is_some).await {
                        Ok(known) => Ok(known.clone().unwrap_or(Ok(None))),
                        Err(_) => Err(ContextError("shutting down".to_owned())),
                    }
                },
            )?,
        };
        match known {
            Ok(Some(config_map)) => Ok(Some(config_map.as_ref().clone())),
            // Kyverno fails the rule when a referenced ConfigMap does not exist.
            Ok(None) => Err(not_found()),
            Err(reason) => Err(ContextError(format!(
                "cannot read configmap {namespace}/{name}: {reason}"
            ))),
        }
    }

    fn resource(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Value>, ContextError> {
        self.wait_for(
            format!("cannot read {kind} {namespace}/{name}"),
            get_resource(
                self.client.clone(),
                Arc::clone(&self.kinds),
                api_version.to_owned(),
                kind.to_owned(),
                namespace.to_owned(),
                name.to_owned(),
            ),
        )
    }

    fn list_resources(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        selector: Option<&Value>,
    ) -> Result<Vec<Value>, ContextError> {
        self.wait_for(
            format!("cannot list {kind} in {namespace:?}"),
            list_resources(
                self.client.clone(),
                Arc::clone(&self.kinds),
                api_version.to_owned(),
                kind.to_owned(),
                namespace.to_owned(),
                match_labels_query(selector),
            ),
        )
    }

    fn api_call(&self, call: &ApiCall) -> Result<Option<Value>, ContextError> {
        if let Some(path) = call.url_path.as_deref().filter(|p| !p.is_empty()) {
            return self.api_server_call(path, call);
        }
        let service = self.service.clone();
        let call = call.clone();
        let url = call.service_url.clone().unwrap_or_default();
        self.wait_for(format!("apiCall.service {url}"), async move {
            service.call(&call).await.map(Some)
        })
    }
}

/// One object of any kind through the API server; `None` when it or its kind does not exist.
async fn get_resource(
    client: Client,
    kinds: Arc<KindResolver>,
    api_version: String,
    kind: String,
    namespace: String,
    name: String,
) -> Result<Option<Value>, ContextError> {
    let failed = |e: &dyn std::fmt::Display| {
        ContextError(format!(
            "cannot read {kind} {namespace}/{name} ({api_version}): {e}"
        ))
    };
    let Some(served) = kinds
        .resolve(&api_version, &kind)
        .await
        .map_err(|e| failed(&e))?
    else {
        return Ok(None);
    };
    match served.api(&client, &namespace).get_opt(&name).await {
        Ok(found) => Ok(found.map(|object| dynamic_value(object, &served))),
        Err(error) => Err(failed(&error)),
    }
}

/// Every object of a kind in a namespace, narrowed by `matchLabels` (the engine applies the
/// whole selector again).
async fn list_resources(
    client: Client,
    kinds: Arc<KindResolver>,
    api_version: String,
    kind: String,
    namespace: String,
    labels: Option<String>,
) -> Result<Vec<Value>, ContextError> {
    let failed = |e: &dyn std::fmt::Display| {
        ContextError(format!("cannot list {kind} in {namespace:?}: {e}"))
    };
    let Some(served) = kinds
        .resolve(&api_version, &kind)
        .await
        .map_err(|e| failed(&e))?
    else {
        return Ok(Vec::new());
    };
    let mut params = kube::api::ListParams::default();
    if let Some(labels) = &labels {
        params = params.labels(labels);
    }
    let list = served
        .api(&client, &namespace)
        .list(&params)
        .await
        .map_err(|e| failed(&e))?;
    Ok(list
        .items
        .into_iter()
        .map(|object| dynamic_value(object, &served))
        .collect())
}

/// `matchLabels` of a label selector as a `k=v,…` query; `None` when it has none.
fn match_labels_query(selector: Option<&Value>) -> Option<String> {
    let labels = selector?.get("matchLabels")?.as_object()?;
    let pairs: Vec<String> = labels
        .iter()
        .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}")))
        .collect();
    (!pairs.is_empty()).then(|| pairs.join(","))
}

/// An object as policies see it: typed (list items come without `apiVersion`/`kind`), without
/// managedFields.
pub fn dynamic_value(mut object: DynamicObject, served: &ServedKind) -> Value {
    object.metadata.managed_fields = None;
    let mut value = serde_json::to_value(object).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert(
            "apiVersion".into(),
            Value::String(served.resource.api_version.clone()),
        );
        map.insert("kind".into(), Value::String(served.resource.kind.clone()));
    }
    value
}

impl ContextSource for ClusterContext {
    fn namespace_labels(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
        let object = self.namespaces.get(&ObjectRef::new(namespace))?;
        Some(object.metadata.labels.clone().unwrap_or_default())
    }

    fn user_roles(&self, username: &str, groups: &[String], namespace: Option<&str>) -> UserRoles {
        self.roles
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .roles_of(username, groups, namespace)
    }
}
