//! The REST semantics: from a parsed request to a reply.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use hyper::body::Bytes;
use hyper::{HeaderMap, Method};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

use super::apply::{apply, Appliers};
use super::discovery;
use super::errors::{success_status, ApiError};
use super::lists::ListTypes;
use super::objects::{subject, DeleteOptions, Deleted, Origin, Propagation, Target};
use super::patch::{json_patch, merge_patch, strategic_merge_patch};
use super::paths::{route, Query, ResourcePath, Route};
use super::resources::{ResourceType, Storage};
use super::selectors::{FieldSelector, LabelSelector, Selectors};
use super::store::Store;
use super::watch::{present, OpenedWatch, WatchRequest, WatchStart};
use super::{Denial, RecordedRequest};

/// The largest request body accepted, as kube-apiserver's 3 MiB limit.
pub(crate) const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Shared state of one fake API server.
pub(crate) struct Inner {
    pub store: Mutex<Store>,
    pub requests: Mutex<Vec<RecordedRequest>>,
    pub denials: Mutex<Vec<Denial>>,
    pub latency: Mutex<Duration>,
    pub bookmark_interval: Mutex<Duration>,
    /// Bumped by `expire_watches`; every open watch ends when it changes.
    pub expired: watch::Sender<u64>,
    /// `127.0.0.1:PORT`, for `/api`'s serverAddressByClientCIDRs.
    pub address: String,
}

/// Locks a mutex, recovering the data if a panicking test thread poisoned it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) enum Reply {
    Json {
        code: u16,
        body: Value,
        content_type: &'static str,
    },
    Text(u16, &'static str),
    Stream(mpsc::Receiver<Bytes>),
}

impl Reply {
    fn ok(body: Value) -> Self {
        Reply::Json {
            code: 200,
            body,
            content_type: "application/json",
        }
    }
    fn created(body: Value) -> Self {
        Reply::Json {
            code: 201,
            body,
            content_type: "application/json",
        }
    }
    fn error(error: &ApiError) -> Self {
        Reply::Json {
            code: error.code,
            body: error.to_status(),
            content_type: "application/json",
        }
    }
    pub fn code(&self) -> u16 {
        match self {
            Reply::Json { code, .. } | Reply::Text(code, _) => *code,
            Reply::Stream(_) => 200,
        }
    }
}

/// One request as the handlers see it.
pub(crate) struct Call {
    pub method: Method,
    pub path: String,
    pub query: Query,
    pub raw_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Call {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn content_type(&self) -> Option<String> {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// The media type without parameters (`application/json; charset=utf-8` → `application/json`).
    fn media_type(&self) -> String {
        self.content_type()
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    }

    fn metadata_only(&self) -> bool {
        self.header("accept")
            .split(',')
            .next()
            .is_some_and(|first| first.contains("as=PartialObjectMetadata"))
    }

    fn json_body(&self) -> Result<Value, ApiError> {
        if self.media_type() == "application/apply-patch+yaml" {
            if let Ok(value) = serde_json::from_slice(&self.body) {
                return Ok(value);
            }
            return serde_yaml_ng::from_slice(&self.body)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")));
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding JSON body: {e}")))
    }
}

/// Verb of a resource request, as RBAC names it.
fn verb_of(method: &Method, path: &ResourcePath, query: &Query) -> Option<&'static str> {
    let named = path.name.is_some();
    match *method {
        Method::GET if path.watch_prefix || query.flag("watch") => Some("watch"),
        Method::GET if named => Some("get"),
        Method::GET => Some("list"),
        Method::POST => Some("create"),
        Method::PUT => Some("update"),
        Method::PATCH => Some("patch"),
        Method::DELETE if named => Some("delete"),
        Method::DELETE => Some("deletecollection"),
        _ => None,
    }
}

/// Handles one request and records it.
///
/// The request log stays locked while the request takes effect, so a test that sees the effect
/// (an object patched) also sees the request that made it.
pub(crate) async fn handle(
    inner: &Arc<Inner>,
    call: Call,
    shutdown: watch::Receiver<bool>,
) -> Reply {
    let latency = *lock(&inner.latency);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut requests = lock(&inner.requests);
    let mut record = RecordedRequest {
        method: call.method.to_string(),
        path: call.path.clone(),
        query: call.raw_query.clone(),
        content_type: call.content_type(),
        accept: call
            .headers
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body: if call.body.is_empty() {
            None
        } else {
            call.json_body().ok()
        },
        ..RecordedRequest::default()
    };
    let reply = match route(&call.path) {
        Route::Resource(path) => {
            record.group = path.group.clone();
            record.version = path.version.clone();
            record.resource = path.resource.clone();
            record.subresource = path.subresource.clone();
            record.namespace = path.namespace.clone();
            record.name = path.name.clone();
            record.verb = verb_of(&call.method, &path, &call.query)
                .unwrap_or_default()
                .to_string();
            match resource_request(inner, &call, &path, shutdown) {
                Ok(reply) => reply,
                Err(error) => Reply::error(&error),
            }
        }
        other if call.method == Method::GET => discovery_request(inner, &call, other),
        _ => Reply::error(&ApiError::method_not_allowed()),
    };
    record.status = reply.code();
    requests.push(record);
    reply
}

fn discovery_request(inner: &Inner, call: &Call, route: Route) -> Reply {
    let store = lock(&inner.store);
    let registry = &store.registry;
    let aggregated = discovery::wants_aggregated(call.header("accept"));
    let found = match route {
        Route::Version => Some(discovery::version_info()),
        Route::Health => return Reply::Text(200, "ok"),
        Route::CoreVersions if aggregated => {
            return Reply::Json {
                code: 200,
                body: discovery::aggregated(registry, true),
                content_type: discovery::AGGREGATED_CONTENT_TYPE,
            }
        }
        Route::Groups if aggregated => {
            return Reply::Json {
                code: 200,
                body: discovery::aggregated(registry, false),
                content_type: discovery::AGGREGATED_CONTENT_TYPE,
            }
        }
        Route::CoreVersions => Some(discovery::core_versions(&inner.address)),
        Route::Groups => Some(discovery::group_list(registry)),
        Route::Group(group) => discovery::group(registry, &group),
        Route::Resources { group, version } => discovery::resource_list(registry, &group, &version),
        Route::Resource(_) | Route::Unknown => None,
    };
    match found {
        Some(body) => Reply::ok(body),
        None => Reply::error(&ApiError::unknown_path()),
    }
}

/// A denial set with [`super::FakeApiServer::deny`] that matches (verb, group, resource, namespace).
fn denied(inner: &Inner, verb: &str, group: &str, resource: &str, namespace: Option<&str>) -> bool {
    lock(&inner.denials)
        .iter()
        .any(|d| d.matches(verb, group, resource, namespace))
}

fn forbidden(
    rt: &ResourceType,
    verb: &str,
    resource: &str,
    name: &str,
    namespace: Option<&str>,
) -> ApiError {
    let scope = match namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_string(),
    };
    let what = if name.is_empty() {
        resource.to_string()
    } else {
        format!("{resource} \"{name}\"")
    };
    ApiError::forbidden(
        &subject(rt, name),
        format!(
            "{what} is forbidden: User \"{}\" cannot {verb} resource \"{resource}\" in API group \"{}\" {scope}",
            super::FAKE_USER,
            rt.group
        ),
    )
}

fn resource_request(
    inner: &Arc<Inner>,
    call: &Call,
    path: &ResourcePath,
    shutdown: watch::Receiver<bool>,
) -> Result<Reply, ApiError> {
    let rt = lock(&inner.store)
        .registry
        .by_path(&path.group, &path.version, &path.resource)
        .ok_or_else(ApiError::unknown_path)?;
    if (!rt.namespaced && path.namespace.is_some())
        || (rt.namespaced && path.name.is_some() && path.namespace.is_none())
    {
        return Err(ApiError::unknown_path());
    }
    let verb = verb_of(&call.method, path, &call.query).ok_or_else(ApiError::method_not_allowed)?;
    let subresource = path.subresource.as_deref();
    match subresource {
        None => {
            if !rt.supports(verb) {
                return Err(ApiError::method_not_allowed());
            }
        }
        Some("status") if rt.status => {}
        Some("scale") if rt.scale.is_some() => {}
        Some(_) => return Err(ApiError::unknown_path()),
    }
    if subresource.is_some() && !matches!(verb, "get" | "update" | "patch") {
        return Err(ApiError::method_not_allowed());
    }
    let rbac_resource = match subresource {
        Some(sub) => format!("{}/{sub}", rt.plural),
        None => rt.plural.clone(),
    };
    let namespace = path.namespace.as_deref();
    if denied(inner, verb, &rt.group, &rbac_resource, namespace) {
        return Err(forbidden(
            &rt,
            verb,
            &rbac_resource,
            path.name.as_deref().unwrap_or_default(),
            namespace,
        ));
    }
    if rt.storage == Storage::Review {
        return review(inner, call, &rt, namespace);
    }
    let name = path.name.as_deref().unwrap_or_default();
    match (verb, subresource) {
        ("get", None) => get(inner, call, &rt, namespace, name),
        ("list", None) => list(inner, call, &rt, namespace),
        ("watch", None) => start_watch(inner, call, rt, namespace, shutdown),
        ("create", None) => create(inner, call, &rt, namespace),
        ("update", None) => update(inner, call, &rt, namespace, name, Target::Main),
        ("patch", None) => patch(inner, call, &rt, namespace, name, Target::Main),
        ("delete", None) => delete(inner, call, &rt, namespace, name),
        ("deletecollection", None) => delete_collection(inner, call, &rt, namespace),
        ("get", Some("status")) => get(inner, call, &rt, namespace, name),
        ("update", Some("status")) => update(inner, call, &rt, namespace, name, Target::Status),
        ("patch", Some("status")) => patch(inner, call, &rt, namespace, name, Target::Status),
        (verb, Some("scale")) => scale(inner, call, &rt, namespace, name, verb),
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn ns_key<'a>(rt: &ResourceType, namespace: Option<&'a str>) -> &'a str {
    if rt.namespaced {
        namespace.unwrap_or_default()
    } else {
        ""
    }
}

fn get(
    inner: &Inner,
    call: &Call,
    rt: &ResourceType,
    namespace: Option<&str>,
    name: &str,
) -> Result<Reply, ApiError> {
    let store = lock(&inner.store);
    let stored = store
        .get(&rt.group_resource(), ns_key(rt, namespace), name)
        .ok_or_else(|| ApiError::not_found(&subject(rt, name)))?;
    Ok(Reply::ok(present(&stored.object, rt, call.metadata_only())))
}

fn selectors(call: &Call, rt: &ResourceType) -> Result<Selectors, ApiError> {
    Ok(Selectors {
        labels: LabelSelector::parse(call.query.get("labelSelector").unwrap_or_default())?,
        fields: FieldSelector::parse(call.query.get("fieldSelector").unwrap_or_default(), rt)?,
    })
}

/// Continue tokens carry the list's resourceVersion and the last key returned.
fn encode_continue(rv: u64, namespace: &str, name: &str) -> String {
    let raw = json!({ "rv": rv, "ns": namespace, "name": name }).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_continue(token: &str) -> Result<(u64, String, String), ApiError> {
    let bad = || ApiError::bad_request(format!("invalid continue token \"{token}\""));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let value: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = value.get("rv").and_then(Value::as_u64).ok_or_else(bad)?;
    let ns = value
        .get("ns")
        .and_then(Value::as_str)
        .ok_or_else(bad)?
        .to_string();
    let name = value
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(bad)?
        .to_string();
    Ok((rv, ns, name))
}

fn parse_rv(text: &str) -> Result<u64, ApiError> {
    text.parse()
        .map_err(|_| ApiError::bad_request(format!("invalid resource version \"{text}\"")))
}

fn list(
    inner: &Inner,
    call: &Call,
    rt: &ResourceType,
    namespace: Option<&str>,
) -> Result<Reply, ApiError> {
    let selectors = selectors(call, rt)?;
    let limit = match call.query.get("limit") {
        Some(text) => Some(
            text.parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit \"{text}\"")))?,
        ),
        None => None,
    }
    .filter(|l| *l > 0);
    let store = lock(&inner.store);
    let (list_rv, after) = match call.query.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let (rv, ns, name) = decode_continue(token)?;
            if rv < store.compacted() {
                return Err(ApiError::expired(
                    "The provided continue parameter is too old to display a consistent list result. \
                     You can start a new list without the continue parameter.",
                ));
            }
            (rv, Some((ns, name)))
        }
        None => {
            if let (Some(rv), Some("Exact")) = (
                call.query.get("resourceVersion"),
                call.query.get("resourceVersionMatch"),
            ) {
                if parse_rv(rv)? < store.compacted() {
                    return Err(ApiError::expired(format!(
                        "too old resource version: {rv} ({})",
                        store.compacted()
                    )));
                }
            }
            (store.resource_version(), None)
        }
    };
    let metadata_only = call.metadata_only();
    let mut items = Vec::new();
    let mut last_key = None;
    let mut remaining = 0usize;
    for (key, stored) in store.list(
        &rt.group_resource(),
        if rt.namespaced { namespace } else { None },
    ) {
        if after.as_ref().is_some_and(|after| key <= after) || !selectors.matches(&stored.object) {
            continue;
        }
        if limit.is_some_and(|l| items.len() >= l) {
            remaining += 1;
            continue;
        }
        items.push(present(&stored.object, rt, metadata_only));
        last_key = Some(key.clone());
    }
    let mut metadata = json!({ "resourceVersion": list_rv.to_string() });
    if remaining > 0 {
        if let Some((ns, name)) = last_key {
            metadata["continue"] = json!(encode_continue(list_rv, &ns, &name));
            metadata["remainingItemCount"] = json!(remaining);
        }
    }
    let (kind, api_version) = if metadata_only {
        (
            "PartialObjectMetadataList".to_string(),
            "meta.k8s.io/v1".to_string(),
        )
    } else {
        (rt.list_kind(), rt.api_version())
    };
    Ok(Reply::ok(
        json!({ "kind": kind, "apiVersion": api_version, "metadata": metadata, "items": items }),
    ))
}

fn start_watch(
    inner: &Arc<Inner>,
    call: &Call,
    rt: Arc<ResourceType>,
    namespace: Option<&str>,
    shutdown: watch::Receiver<bool>,
) -> Result<Reply, ApiError> {
    let selectors = selectors(call, &rt)?;
    let start = match call.query.get("resourceVersion") {
        None | Some("") | Some("0") => WatchStart::Current,
        Some(rv) => WatchStart::After(parse_rv(rv)?),
    };
    // timeoutSeconds=0 (or none) leaves the watch open until the client or the server ends it.
    let timeout = match call.query.get("timeoutSeconds") {
        Some(text) => {
            let seconds: u64 = text
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds \"{text}\"")))?;
            (seconds > 0).then(|| Duration::from_secs(seconds))
        }
        None => None,
    };
    let send_initial_events = call.query.flag("sendInitialEvents");
    if send_initial_events && call.query.get("resourceVersionMatch") != Some("NotOlderThan") {
        return Err(ApiError::unprocessable(
            "sendInitialEvents: Forbidden: sendInitialEvents is allowed only with resourceVersionMatch set to NotOlderThan",
        ));
    }
    let request = WatchRequest {
        rt: rt.clone(),
        namespace: if rt.namespaced {
            namespace.map(str::to_string)
        } else {
            None
        },
        selectors,
        start,
        send_initial_events,
        bookmarks: call.query.flag("allowWatchBookmarks"),
        timeout,
        metadata_only: call.metadata_only(),
    };
    let opened = OpenedWatch::open(&lock(&inner.store), request);
    let (tx, rx) = mpsc::channel(256);
    let expired = inner.expired.subscribe();
    let interval = *lock(&inner.bookmark_interval);
    tokio::spawn(opened.run(tx, shutdown, expired, interval));
    Ok(Reply::Stream(rx))
}

fn create(
    inner: &Inner,
    call: &Call,
    rt: &ResourceType,
    namespace: Option<&str>,
) -> Result<Reply, ApiError> {
    if rt.namespaced && namespace.is_none() {
        return Err(ApiError::unknown_path());
    }
    let body = call.json_body()?;
    let mut store = lock(&inner.store);
    let created = store.create(
        rt,
        namespace,
        body,
        Origin::Api,
        Appliers::new(),
        call.query.dry_run(),
    )?;
    Ok(Reply::created(present(&created, rt, call.metadata_only())))
}

fn update(
    inner: &Inner,
    call: &Call,
    rt: &ResourceType,
    namespace: Option<&str>,
    name: &str,
    target: Target,
) -> Result<Reply, ApiError> {
    let body = call.json_body()?;
    let mut store = lock(&inner.store);
    let updated = store.update(
        rt,
        namespace,
        name,
        body,
        target,
        None,
        call.query.dry_run(),
    )?;
    Ok(Reply::ok(present(&updated, rt, call.metadata_only())))
}

/// Applies a merge, JSON or strategic merge patch to `current`.
fn patch_value(call: &Call, rt: &ResourceType, current: &mut Value) -> Result<(), ApiError> {
    let body = call.json_body()?;
    match call.media_type().as_str() {
        "application/merge-patch+json" => merge_patch(current, &body),
        "application/json-patch+json" => {
            json_patch(current, &body).map_err(ApiError::unprocessable)?
        }
        "application/strategic-merge-patch+json" => {
            if rt.crd.is_some() {
                return Err(unsupported_patch());
            }
            strategic_merge_patch(current, &body, &ListTypes::for_resource(rt));
        }
        _ => return Err(unsupported_patch()),
    }
    Ok(())
}

fn unsupported_patch() -> ApiError {
    ApiError::unsupported_media_type(
        "the body of the request was in an unknown format - accepted media types include: \
         application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
    )
}

fn patch(
    inner: &Inner,
    call: &Call,
    rt: &ResourceType,
    namespace: Option<&str>,
    name: &str,
    target: Target,
) -> Result<Reply, ApiError> {
    if call.media_type() == "application/apply-patch+yaml" {
        return server_side_apply(inner, call, rt, namespace, name, target);
    }
    let mut store = lock(&inner.store);
    let stored = store
        .get(&rt.group_resource(), ns_key(rt, namespace), name)
        .ok_or_else(|| ApiError::not_found(&subject(rt, name)))?;
    let mut patched = present(&stored.object, rt, false);
    patch_value(call, rt, &mut patched)?;
    let updated = store.update(
        rt,
        namespace,
        name,
        patched,
        target,
        None,
        call.query.dry_run(),
    )?;
    Ok(Reply::ok(present(&updated, rt, call.metadata_only())))
}

/// Metadata fields an apply configuration may not set (they are the server's).
const SERVER_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

fn server_side_apply(
    inner: &Inner,
    call: &Call,
    rt: &ResourceType,
    namespace: Option<&str>,
    name: &str,
    target: Target,
) -> Result<Reply, ApiError> {
    let manager = call
        .query
        .get("fieldManager")
        .filter(|m| !m.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            )
        })?
        .to_string();
    let force = call.query.flag("force");
    let mut config = call.json_body()?;
    if !config.is_object() {
        return Err(ApiError::bad_request(
            "the apply configuration must be an object",
        ));
    }
    if config.get("apiVersion").and_then(Value::as_str) != Some(rt.api_version().as_str())
        || config.get("kind").and_then(Value::as_str) != Some(rt.kind.as_str())
    {
        return Err(ApiError::bad_request(format!(
            "the apply configuration must set apiVersion \"{}\" and kind \"{}\"",
            rt.api_version(),
            rt.kind
        )));
    }
    let config_name = config
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if config_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({config_name}) does not match the name on the URL ({name})"
        )));
    }
    let precondition_rv = config
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|rv| !rv.is_empty())
        .map(str::to_string);
    if let Some(metadata) = config.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in SERVER_METADATA {
            metadata.remove(*field);
        }
        if rt.namespaced {
            if let Some(ns) = namespace {
                metadata.insert("namespace".to_string(), json!(ns));
            }
        }
    }
    let subresource = match target {
        Target::Main => {
            if rt.status {
                if let Some(fields) = config.as_object_mut() {
                    fields.remove("status");
                }
            }
            ""
        }
        Target::Status => {
            let scoped: serde_json::Map<String, Value> = config
                .as_object()
                .map(|fields| {
                    fields
                        .iter()
                        .filter(|(k, _)| {
                            matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status")
                        })
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            config = Value::Object(scoped);
            "status"
        }
    };
    let types = ListTypes::for_resource(rt);
    let dry_run = call.query.dry_run();
    let mut store = lock(&inner.store);
    let current = store
        .get(&rt.group_resource(), ns_key(rt, namespace), name)
        .cloned();
    let Some(current) = current else {
        if target == Target::Status {
            return Err(ApiError::not_found(&subject(rt, name)));
        }
        let (object, appliers) = apply(
            &json!({}),
            &config,
            &Appliers::new(),
            &manager,
            subresource,
            force,
            &types,
        )
        .map_err(|conflicts| ApiError::apply_conflicts(&subject(rt, name), &conflicts))?;
        let created = store.create(rt, namespace, object, Origin::Api, appliers, dry_run)?;
        return Ok(Reply::created(present(&created, rt, call.metadata_only())));
    };
    if let Some(rv) = precondition_rv {
        if current
            .object
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            != Some(rv.as_str())
        {
            return Err(ApiError::stale(&subject(rt, name)));
        }
    }
    let live = present(&current.object, rt, false);
    let (object, appliers) = apply(
        &live,
        &config,
        &current.appliers,
        &manager,
        subresource,
        force,
        &types,
    )
    .map_err(|conflicts| ApiError::apply_conflicts(&subject(rt, name), &conflicts))?;
    let updated = store.update(rt, namespace, name, object, target, Some(appliers), dry_run)?;
    Ok(Reply::ok(present(&updated, rt, call.metadata_only())))
}

fn delete_options(call: &Call) -> Result<DeleteOptions, ApiError> {
    let body = if call.body.is_empty() {
        json!({})
    } else {
        call.json_body()?
    };
    let propagation = body
        .get("propagationPolicy")
        .and_then(Value::as_str)
        .or_else(|| call.query.get("propagationPolicy"))
        .or_else(|| {
            body.get("orphanDependents")
                .and_then(Value::as_bool)
                .filter(|o| *o)
                .map(|_| "Orphan")
        });
    let propagation = match propagation {
        None | Some("Background") => Propagation::Background,
        Some("Foreground") => Propagation::Foreground,
        Some("Orphan") => Propagation::Orphan,
        Some(other) => {
            return Err(ApiError::unprocessable(format!(
                "propagationPolicy: Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
            )))
        }
    };
    let dry_run = call.query.dry_run()
        || body
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|d| d.iter().any(|v| v == "All"));
    Ok(DeleteOptions {
        propagation,
        precondition_uid: body
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string),
        precondition_rv: body
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string),
        dry_run,
    })
}

fn delete(
    inner: &Inner,
    call: &Call,
    rt: &ResourceType,
    namespace: Option<&str>,
    name: &str,
) -> Result<Reply, ApiError> {
    let options = delete_options(call)?;
    let mut store = lock(&inner.store);
    match store.delete(rt, namespace, name, &options)? {
        Deleted::Gone(object) => {
            let uid = object
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or_default();
            Ok(Reply::ok(success_status(&subject(rt, name), uid)))
        }
        Deleted::Pending(object) => Ok(Reply::ok(present(&object, rt, call.metadata_only()))),
    }
}

fn delete_collection(
    inner: &Inner,
    call: &Call,
    rt: &ResourceType,
    namespace: Option<&str>,
) -> Result<Reply, ApiError> {
    let selectors = selectors(call, rt)?;
    let options = delete_options(call)?;
    let mut store = lock(&inner.store);
    let names: Vec<(String, String)> = store
        .list(
            &rt.group_resource(),
            if rt.namespaced { namespace } else { None },
        )
        .filter(|(_, stored)| selectors.matches(&stored.object))
        .map(|(key, _)| key.clone())
        .collect();
    let mut items = Vec::new();
    for (ns, name) in names {
        let ns = if ns.is_empty() {
            None
        } else {
            Some(ns.as_str())
        };
        match store.delete(rt, ns, &name, &options) {
            Ok(Deleted::Gone(object) | Deleted::Pending(object)) => {
                items.push(present(&object, rt, false))
            }
            // Deleted meanwhile by a cascade of an earlier item.
            Err(error) if error.code == 404 => {}
            Err(error) => return Err(error),
        }
    }
    let rv = store.resource_version().to_string();
    Ok(Reply::ok(
        json!({ "kind": rt.list_kind(), "apiVersion": rt.api_version(), "metadata": { "resourceVersion": rv }, "items": items }),
    ))
}

/// JSON pointer for a `.spec.replicas`-style path.
fn pointer(path: &str) -> String {
    format!("/{}", path.trim_start_matches('.').replace('.', "/"))
}

fn label_selector_string(object: &Value) -> String {
    object
        .pointer("/spec/selector/matchLabels")
        .or_else(|| object.pointer("/spec/selector"))
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn scale_of(rt: &ResourceType, object: &Value) -> Value {
    let paths = rt
        .scale
        .clone()
        .unwrap_or_else(|| super::resources::ScalePaths {
            spec_replicas: ".spec.replicas".to_string(),
            status_replicas: ".status.replicas".to_string(),
            label_selector: None,
        });
    let selector = match &paths.label_selector {
        Some(path) => object
            .pointer(&pointer(path))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        None => label_selector_string(object),
    };
    let metadata = object.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let mut scale_metadata = json!({});
    for field in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(value) = metadata.get(field) {
            scale_metadata[field] = value.clone();
        }
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": scale_metadata,
        "spec": { "replicas": object.pointer(&pointer(&paths.spec_replicas)).cloned().unwrap_or(json!(0)) },
        "status": {
            "replicas": object.pointer(&pointer(&paths.status_replicas)).cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    })
}

fn set_at(object: &mut Value, pointer_path: &str, value: Value) {
    let mut current = object;
    let segments: Vec<&str> = pointer_path.trim_start_matches('/').split('/').collect();
    let Some((last, parents)) = segments.split_last() else {
        return;
    };
    for segment in parents {
        if !current.get(*segment).is_some_and(Value::is_object) {
            if let Some(fields) = current.as_object_mut() {
                fields.insert(segment.to_string(), json!({}));
            }
        }
        match current.get_mut(*segment) {
            Some(next) => current = next,
            None => return,
        }
    }
    if let Some(fields) = current.as_object_mut() {
        fields.insert(last.to_string(), value);
    }
}

fn scale(
    inner: &Inner,
    call: &Call,
    rt: &ResourceType,
    namespace: Option<&str>,
    name: &str,
    verb: &str,
) -> Result<Reply, ApiError> {
    let mut store = lock(&inner.store);
    let stored = store
        .get(&rt.group_resource(), ns_key(rt, namespace), name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(&subject(rt, name)))?;
    let current = scale_of(rt, &stored.object);
    let desired = match verb {
        "get" => return Ok(Reply::ok(current)),
        "update" => call.json_body()?,
        _ => {
            let mut patched = current.clone();
            let builtin_scale = ResourceType {
                crd: None,
                schema: None,
                ..rt.clone()
            };
            patch_value(call, &builtin_scale, &mut patched)?;
            patched
        }
    };
    if let Some(rv) = desired
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|rv| !rv.is_empty())
    {
        if stored
            .object
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            != Some(rv)
        {
            return Err(ApiError::stale(&subject(rt, name)));
        }
    }
    let replicas = desired
        .pointer("/spec/replicas")
        .cloned()
        .unwrap_or(json!(0));
    let spec_path = rt
        .scale
        .as_ref()
        .map(|s| s.spec_replicas.clone())
        .unwrap_or_else(|| ".spec.replicas".to_string());
    let mut object = present(&stored.object, rt, false);
    set_at(&mut object, &pointer(&spec_path), replicas);
    let updated = store.update(
        rt,
        namespace,
        name,
        object,
        Target::Main,
        None,
        call.query.dry_run(),
    )?;
    Ok(Reply::ok(scale_of(rt, &updated)))
}

/// SubjectAccessReview and friends: allowed unless a [`Denial`] matches the asked attributes.
fn review(
    inner: &Inner,
    call: &Call,
    rt: &ResourceType,
    namespace: Option<&str>,
) -> Result<Reply, ApiError> {
    if call.method != Method::POST {
        return Err(ApiError::method_not_allowed());
    }
    let mut review = call.json_body()?;
    if !review.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    let attributes = review.pointer("/spec/resourceAttributes").cloned();
    let allowed = match attributes {
        Some(attrs) => {
            let text = |key: &str| {
                attrs
                    .get(key)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let resource = match text("subresource").as_str() {
                "" => text("resource"),
                sub => format!("{}/{sub}", text("resource")),
            };
            let ns = if rt.namespaced {
                namespace.map(str::to_string)
            } else {
                Some(text("namespace")).filter(|n| !n.is_empty())
            };
            !denied(
                inner,
                &text("verb"),
                &text("group"),
                &resource,
                ns.as_deref(),
            )
        }
        None => true,
    };
    review["apiVersion"] = json!(rt.api_version());
    review["kind"] = json!(rt.kind);
    review["status"] = if allowed {
        json!({ "allowed": true, "reason": "allowed by the fake API server" })
    } else {
        json!({ "allowed": false, "reason": "denied by FakeApiServer::deny" })
    };
    Ok(Reply::created(review))
}
