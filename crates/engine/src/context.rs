//! The JSON document variables are resolved against (`request.*`, `images.*`,
//! `serviceAccountName`, context entries, …) and the [`ContextProvider`] trait through which
//! anything from outside the engine arrives.

use crate::json::Lookup;
use std::cell::Cell;
use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::request::Request;

/// Why a context entry could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ContextError(pub String);

/// An `apiCall` context entry after variable substitution.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiCall {
    pub url_path: Option<String>,
    pub method: String,
    pub data: Vec<(String, Value)>,
    pub service_url: Option<String>,
    /// `service.caBundle`: PEM certificates that verify the service.
    pub service_ca_bundle: Option<String>,
    /// `service.headers` as (name, value) pairs.
    pub service_headers: Vec<(String, String)>,
}

/// Everything the engine needs from outside: the controller implements it against the API
/// server, the CLI against files. Returning `Ok(None)` means "not available here": the entry is
/// left unset, as Kyverno's CLI does for lookups it cannot perform offline.
/// `Sync` because CEL evaluation hands the provider to the interpreter, whose values must be
/// shareable across threads.
pub trait ContextProvider: Sync {
    /// Values that stand in for a rule's context entries (the CLI's values file).
    fn rule_values(&self, _policy: &str, _rule: &str) -> Option<&Map<String, Value>> {
        None
    }

    /// Per-element values for a rule's foreach (`foreachValues` in a values file).
    fn foreach_values(&self, _policy: &str, _rule: &str) -> Option<&Map<String, Value>> {
        None
    }

    /// A ConfigMap as JSON.
    fn config_map(&self, _namespace: &str, _name: &str) -> Result<Option<Value>, ContextError> {
        Ok(None)
    }

    /// The response of an API server or service call.
    fn api_call(&self, _call: &ApiCall) -> Result<Option<Value>, ContextError> {
        Ok(None)
    }

    /// A global context entry's data.
    fn global_reference(&self, _name: &str) -> Result<Option<Value>, ContextError> {
        Ok(None)
    }

    /// Image metadata from a registry.
    fn image_data(&self, _reference: &str) -> Result<Option<Value>, ContextError> {
        Ok(None)
    }

    /// One object of the cluster (a generate rule's clone source or existing target);
    /// `namespace` is empty for cluster-scoped kinds. `Ok(None)`: it does not exist.
    fn resource(
        &self,
        _api_version: &str,
        _kind: &str,
        _namespace: &str,
        _name: &str,
    ) -> Result<Option<Value>, ContextError> {
        Ok(None)
    }

    /// The objects of one kind in a namespace (a `cloneList` source), optionally narrowed by a
    /// label selector (`matchLabels`/`matchExpressions`). The engine applies the selector again,
    /// so a provider may ignore it.
    fn list_resources(
        &self,
        _api_version: &str,
        _kind: &str,
        _namespace: &str,
        _selector: Option<&Value>,
    ) -> Result<Vec<Value>, ContextError> {
        Ok(Vec::new())
    }
}

/// A provider with nothing to offer: pure offline evaluation.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoContext;

impl ContextProvider for NoContext {}

/// Builds the base context document for a request.
pub fn request_context(request: &Request) -> Value {
    request_context_with(request, true)
}

/// Builds the base context document; `images` (parsing every container image reference) is
/// only computed when `with_images` — policies that never mention `images` skip the cost.
pub fn request_context_with(request: &Request, with_images: bool) -> Value {
    build_request_context(request, with_images, true)
}

/// The context document of a validation that reads the request's object and old object from
/// the request itself: `request.object` and `request.oldObject` are null placeholders, which
/// [`scope_over`] binds to the request's objects. Copying a large object into the document for
/// every request was a tenth of a Pod Security evaluation.
pub fn request_context_without_objects(request: &Request, with_images: bool) -> Value {
    build_request_context(request, with_images, false)
}

thread_local! {
    /// The validation context document this thread last finished with: the next request's
    /// is written over it instead of built anew. Building one is about 11 k instructions,
    /// most of them hashing keys into new maps and allocating strings.
    static SPARE_VALIDATION_DOCUMENT: Cell<Option<Value>> = const { Cell::new(None) };
}

/// A validation context document ([`request_context_without_objects`]) that goes back to
/// its thread when dropped, to be rewritten for the next request of the thread.
#[derive(Debug)]
pub struct ValidationContext {
    document: Value,
}

impl ValidationContext {
    /// The document of `request`: the thread's spare one rewritten when it has the shape
    /// `request` needs, else a new one.
    pub fn of(request: &Request, with_images: bool) -> Self {
        let mut document = SPARE_VALIDATION_DOCUMENT
            .with(Cell::take)
            .unwrap_or(Value::Null);
        if !rewrite_without_objects(&mut document, request, with_images) {
            document = build_request_context(request, with_images, false);
        }
        ValidationContext { document }
    }

    /// The document, to evaluate with; rules that write into it leave it as they found it.
    pub fn document_mut(&mut self) -> &mut Value {
        &mut self.document
    }
}

impl Drop for ValidationContext {
    fn drop(&mut self) {
        let document = std::mem::take(&mut self.document);
        SPARE_VALIDATION_DOCUMENT.with(|spare| spare.set(Some(document)));
    }
}

/// The keys of a document without objects, in the order [`build_request_context`] writes them.
const TOP_KEYS: [&str; 4] = [
    "request",
    "serviceAccountName",
    "serviceAccountNamespace",
    "images",
];
const REQUEST_KEYS: [&str; 12] = [
    "operation",
    "object",
    "oldObject",
    "userInfo",
    "roles",
    "clusterRoles",
    "kind",
    "requestKind",
    "name",
    "namespace",
    "subResource",
    "requestSubResource",
];
const KIND_KEYS: [&str; 3] = ["group", "version", "kind"];

/// Writes `request`'s context over `document` when its keys, at the top and under `request`,
/// are exactly those [`build_request_context`] (without objects) writes for `request`; false,
/// leaving it in any state, when they are not. Every value is replaced (strings keep their
/// buffers), so nothing of an earlier request stays, and the result equals a built document,
/// key order included.
fn rewrite_without_objects(document: &mut Value, request: &Request, with_images: bool) -> bool {
    let Value::Object(top) = document else {
        return false;
    };
    let top_keys = if with_images { 4 } else { 3 };
    if !same_keys(top, TOP_KEYS.iter().take(top_keys).copied()) {
        return false;
    }
    let subresource = !request.subresource.is_empty();
    let mut top_values = top.values_mut();
    let Some(Value::Object(req)) = top_values.next() else {
        return false;
    };
    let dry_run_key = std::iter::once("dryRun");
    let request_keys = REQUEST_KEYS.iter().take(if subresource { 12 } else { 10 });
    if !same_keys(req, request_keys.copied().chain(dry_run_key)) {
        return false;
    }
    let user = &request.user;
    let object_kind = object_kind(request);
    let kind = object_kind.as_ref().unwrap_or(&request.kind);
    let mut values = req.values_mut();
    let mut next = || values.next().ok_or(());
    let rewritten = (|| -> Result<(), ()> {
        set_string(next()?, request.operation.as_str());
        *next()? = Value::Null;
        *next()? = Value::Null;
        *next()? = user_info(user);
        set_strings(next()?, &user.roles);
        set_strings(next()?, &user.cluster_roles);
        set_kind(next()?, kind);
        set_kind(next()?, kind);
        set_string(next()?, request.name());
        set_string(next()?, request.namespace());
        if subresource {
            set_string(next()?, &request.subresource);
            set_string(next()?, &request.subresource);
        }
        *next()? = Value::Bool(request.dry_run);
        Ok(())
    })();
    if rewritten.is_err() {
        return false;
    }
    let (sa_namespace, sa_name) = service_account(&user.username);
    let (Some(name_slot), Some(namespace_slot)) = (top_values.next(), top_values.next()) else {
        return false;
    };
    set_string(name_slot, &sa_name);
    set_string(namespace_slot, &sa_namespace);
    if with_images {
        let Some(images) = top_values.next() else {
            return false;
        };
        *images = images_of(request.resource());
    }
    true
}

fn same_keys<'k>(map: &Map<String, Value>, keys: impl Iterator<Item = &'k str> + Clone) -> bool {
    map.len() == keys.clone().count() && map.keys().zip(keys).all(|(have, want)| have == want)
}

fn set_string(slot: &mut Value, text: &str) {
    match slot {
        Value::String(existing) => {
            existing.clear();
            existing.push_str(text);
        }
        other => *other = Value::String(text.to_owned()),
    }
}

fn set_strings(slot: &mut Value, items: &[String]) {
    match slot {
        Value::Array(existing) if existing.len() == items.len() => {
            for (value, item) in existing.iter_mut().zip(items) {
                set_string(value, item);
            }
        }
        other => *other = string_array(items),
    }
}

fn set_kind(slot: &mut Value, kind: &crate::request::GroupVersionKind) {
    match slot {
        Value::Object(map) if same_keys(map, KIND_KEYS.iter().copied()) => {
            let mut values = map.values_mut();
            for text in [&kind.group, &kind.version, &kind.kind] {
                if let Some(value) = values.next() {
                    set_string(value, text);
                }
            }
        }
        other => *other = kind_value(kind),
    }
}

/// What [`request_context_without_objects`] leaves out: `object` and `oldObject`, as they are
/// bound over the document's `request` map.
pub fn request_objects(request: &Request) -> [(&'static str, &Value); 2] {
    static NULL: Value = Value::Null;
    [
        ("object", &request.object),
        ("oldObject", request.old_object.as_ref().unwrap_or(&NULL)),
    ]
}

/// The context `doc` as searches see it: with the request's objects bound over its `request`
/// map when `objects` is given — each only while its placeholder is still null, so a rule that
/// writes under `request.object` reads what it wrote.
pub fn scope_over<'a>(
    doc: &'a Value,
    objects: Option<&'a [(&'static str, &'a Value); 2]>,
) -> crate::jmespath::Scope<'a> {
    let scope = crate::jmespath::Scope::from(doc);
    let Some(objects) = objects else {
        return scope;
    };
    let request = doc.field("request");
    let placeholder = |name: &str| {
        request
            .and_then(|r| r.field(name))
            .is_some_and(Value::is_null)
    };
    let bound: &[(&str, &Value)] = match (placeholder("object"), placeholder("oldObject")) {
        (true, true) => objects,
        (true, false) => objects.get(..1).unwrap_or(&[]),
        (false, true) => objects.get(1..).unwrap_or(&[]),
        (false, false) => &[],
    };
    scope.with_request(bound)
}

/// Copies the request's objects over the placeholders of a document from
/// [`request_context_without_objects`] that are still there, making it a full document.
pub fn fill_placeholders(doc: &mut Value, objects: &[(&'static str, &Value); 2]) {
    let Some(Value::Object(request)) = doc.get_mut("request") else {
        return;
    };
    for (name, value) in objects {
        if let Some(slot) = request.get_mut(*name).filter(|slot| slot.is_null()) {
            *slot = (*value).clone();
        }
    }
}

fn build_request_context(request: &Request, with_images: bool, with_objects: bool) -> Value {
    // Sized for what is inserted below, so that no table grows while it is filled.
    let mut req = Map::with_capacity(14);
    req.insert(
        "operation".into(),
        Value::String(request.operation.as_str().to_owned()),
    );
    if with_objects {
        req.insert("object".into(), request.object.clone());
        req.insert(
            "oldObject".into(),
            request.old_object.clone().unwrap_or(Value::Null),
        );
    } else {
        // Placeholders keep the keys where a full document has them.
        req.insert("object".into(), Value::Null);
        req.insert("oldObject".into(), Value::Null);
    }
    let user = &request.user;
    req.insert("userInfo".into(), user_info(user));
    req.insert("roles".into(), string_array(&user.roles));
    req.insert("clusterRoles".into(), string_array(&user.cluster_roles));
    let object_kind = object_kind(request);
    let kind = kind_value(object_kind.as_ref().unwrap_or(&request.kind));
    req.insert("kind".into(), kind.clone());
    req.insert("requestKind".into(), kind);
    req.insert("name".into(), Value::String(request.name().to_owned()));
    req.insert(
        "namespace".into(),
        Value::String(request.namespace().to_owned()),
    );
    if !request.subresource.is_empty() {
        req.insert(
            "subResource".into(),
            Value::String(request.subresource.clone()),
        );
        req.insert(
            "requestSubResource".into(),
            Value::String(request.subresource.clone()),
        );
    }
    req.insert("dryRun".into(), Value::Bool(request.dry_run));

    let mut doc = Map::with_capacity(4);
    doc.insert("request".into(), Value::Object(req));
    let (sa_namespace, sa_name) = service_account(&user.username);
    doc.insert("serviceAccountName".into(), Value::String(sa_name));
    doc.insert(
        "serviceAccountNamespace".into(),
        Value::String(sa_namespace),
    );
    if with_images {
        doc.insert("images".into(), images_of(request.resource()));
    }
    Value::Object(doc)
}

fn user_info(user: &crate::request::UserInfo) -> Value {
    let mut user_info = Map::with_capacity(3);
    if !user.username.is_empty() {
        user_info.insert("username".into(), Value::String(user.username.clone()));
    }
    if !user.uid.is_empty() {
        user_info.insert("uid".into(), Value::String(user.uid.clone()));
    }
    if !user.groups.is_empty() {
        user_info.insert("groups".into(), string_array(&user.groups));
    }
    Value::Object(user_info)
}

/// As the API server fills an AdmissionRequest: `kind` is the kind of the object sent, which
/// for a subresource is its own (PodExecOptions for pods/exec, autoscaling/v1 Scale for
/// deployments/scale); matching uses the resource's kind (`request.kind` of the engine).
/// `None` when that is the request's kind.
fn object_kind(request: &Request) -> Option<crate::request::GroupVersionKind> {
    if request.subresource.is_empty() {
        return None;
    }
    Some(crate::request::GroupVersionKind::of(request.resource())).filter(|k| !k.kind.is_empty())
}

fn kind_value(kind: &crate::request::GroupVersionKind) -> Value {
    Value::Object(Map::from_iter([
        ("group".to_owned(), Value::String(kind.group.clone())),
        ("version".to_owned(), Value::String(kind.version.clone())),
        ("kind".to_owned(), Value::String(kind.kind.clone())),
    ]))
}

fn string_array(items: &[String]) -> Value {
    Value::Array(items.iter().cloned().map(Value::String).collect())
}

/// `system:serviceaccount:<ns>:<name>` → (ns, name); anything else → empty strings.
fn service_account(username: &str) -> (String, String) {
    match username
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
    {
        Some((ns, name)) => (ns.to_owned(), name.to_owned()),
        None => (String::new(), String::new()),
    }
}

/// `images.containers.<name>`, `images.initContainers.<name>`, `images.ephemeralContainers.<name>`
/// for a Pod or a pod template of a controller, as Kyverno's default image extractors see them.
pub fn images_of(resource: &Value) -> Value {
    let spec = match resource.field("kind").and_then(Value::as_str) {
        Some("Pod") => resource.field("spec"),
        Some("CronJob") => resource.pointer("/spec/jobTemplate/spec/template/spec"),
        _ => resource.pointer("/spec/template/spec"),
    };
    let mut images = Map::new();
    if let Some(spec) = spec {
        for list in ["containers", "initContainers", "ephemeralContainers"] {
            let Some(containers) = spec.get(list).and_then(Value::as_array) else {
                continue;
            };
            let mut by_name = Map::new();
            for container in containers {
                let (Some(name), Some(image)) = (
                    container.field("name").and_then(Value::as_str),
                    container.field("image").and_then(Value::as_str),
                ) else {
                    continue;
                };
                if let Some(info) = image_info(image) {
                    by_name.insert(name.to_owned(), info);
                }
            }
            if !by_name.is_empty() {
                images.insert(list.to_owned(), Value::Object(by_name));
            }
        }
    }
    Value::Object(images)
}

/// Splits an image reference the way Kyverno's context reports it: default registry
/// `docker.io`, default tag `latest` (unless a digest is given); the path is kept as written
/// (`busybox`, not `library/busybox`), which policies that rebuild references rely on.
pub fn image_info(image: &str) -> Option<Value> {
    if image.is_empty() || image.chars().any(char::is_whitespace) {
        return None;
    }
    let (first, _) = image.split_once('/').unwrap_or((image, ""));
    let has_registry = image.contains('/')
        && (first.contains(['.', ':']) || first == "localhost" || first.to_lowercase() != first);
    let full = if has_registry {
        image.to_owned()
    } else {
        format!("docker.io/{image}")
    };
    let (registry, rest) = full.split_once('/')?;
    let (rest, digest) = match rest.split_once('@') {
        Some((r, d)) => (r, d.to_owned()),
        None => (rest, String::new()),
    };
    // A tag follows the last colon after the last slash.
    let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (path, tag) = match rest.get(last_slash..).and_then(|tail| tail.rfind(':')) {
        Some(i) => {
            let split = last_slash + i;
            (
                rest.get(..split).unwrap_or(rest).to_owned(),
                rest.get(split + 1..).unwrap_or("").to_owned(),
            )
        }
        None => (rest.to_owned(), String::new()),
    };
    if path.is_empty() {
        return None;
    }
    let tag = if tag.is_empty() && digest.is_empty() {
        "latest".to_owned()
    } else {
        tag
    };
    let name = path.rsplit('/').next().unwrap_or(&path).to_owned();
    let reference_with_tag = format!("{registry}/{path}:{tag}");
    let reference = if digest.is_empty() {
        format!("{registry}/{path}:{tag}")
    } else {
        format!("{registry}/{path}@{digest}")
    };
    let mut info = Map::new();
    info.insert("registry".into(), Value::String(registry.to_owned()));
    info.insert("name".into(), Value::String(name));
    info.insert("path".into(), Value::String(path));
    if !tag.is_empty() {
        info.insert("tag".into(), Value::String(tag));
    }
    if !digest.is_empty() {
        info.insert("digest".into(), Value::String(digest));
    }
    info.insert("reference".into(), Value::String(reference));
    info.insert("referenceWithTag".into(), Value::String(reference_with_tag));
    Some(Value::Object(info))
}

/// Sets a variable given as a dotted path (`request.operation`, `a.b.c`), creating objects on
/// the way, as values files and `--set` address the context. A part in double quotes may
/// contain dots (`metadata.annotations."example.com/team"`), as Kyverno splits such keys.
pub fn add_variable(doc: &mut Value, dotted: &str, value: Value) {
    if dotted.contains('"') {
        let parts = variable_path(dotted);
        set_path(doc, parts.iter().map(String::as_str), value);
    } else {
        set_path(doc, dotted.split('.'), value);
    }
}

fn set_path<'a>(doc: &mut Value, parts: impl Iterator<Item = &'a str>, value: Value) {
    let mut parts = parts.peekable();
    let mut current = doc;
    while let Some(part) = parts.next() {
        if !current.is_object() {
            *current = Value::Object(Map::new());
        }
        let Value::Object(map) = current else {
            return;
        };
        if parts.peek().is_none() {
            map.insert(part.to_owned(), value);
            return;
        }
        current = map
            .entry(part.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

/// The top-level context key a variable key sets (`request` for `request.object.x`).
pub fn variable_root(dotted: &str) -> std::borrow::Cow<'_, str> {
    if dotted.contains('"') {
        std::borrow::Cow::Owned(variable_path(dotted).into_iter().next().unwrap_or_default())
    } else {
        std::borrow::Cow::Borrowed(dotted.split('.').next().unwrap_or(dotted))
    }
}

/// Splits a variable key at the dots outside double quotes, as Kyverno reads keys (a CSV record
/// with `.` as separator): a part that starts with `"` runs to the closing quote, `""` inside it
/// is one quote. Unlike Go's CSV reader it never fails: a stray quote is kept as written.
pub fn variable_path(dotted: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut chars = dotted.chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                if c == '"' {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        part.push('"');
                    } else {
                        break;
                    }
                } else {
                    part.push(c);
                }
            }
        }
        while let Some(&c) = chars.peek() {
            if c == '.' {
                break;
            }
            part.push(c);
            chars.next();
        }
        parts.push(part);
        if chars.next().is_none() {
            return parts;
        }
    }
}

/// Loads `context` entries into `ctx` in order; each may use the ones before it. Entries a values
/// file already supplied are not looked up again; `variable` entries are always computed (they
/// may build on supplied values). What the provider cannot offer stays unset.
pub fn load_entries(
    entries: &[Value],
    ctx: &mut Value,
    provider: &dyn ContextProvider,
) -> Result<(), String> {
    load_entries_over(entries, ctx, None, provider)
}

/// [`load_entries`] into a document whose request objects are bound over it (see
/// [`scope_over`]).
pub fn load_entries_over(
    entries: &[Value],
    ctx: &mut Value,
    objects: Option<&[(&'static str, &Value); 2]>,
    provider: &dyn ContextProvider,
) -> Result<(), String> {
    let mut variable_bytes = 0usize;
    for entry in entries {
        crate::deadline::check_after_work()?;
        let Some(name) = entry.field("name").and_then(Value::as_str) else {
            continue;
        };
        let present = |k: &str| entry.get(k).filter(|v| !v.is_null());
        if let Some(variable) = present("variable") {
            if let Some(value) = load_variable(name, variable, scope_over(ctx, objects))? {
                // Variables built from variables can double in size at each entry; bound what
                // one rule's entries may compute together.
                variable_bytes = variable_bytes.saturating_add(approximate_size(&value));
                if variable_bytes > MAX_VARIABLE_BYTES {
                    return Err(format!(
                        "context variable {name}: the rule's variables hold more than \
                         {MAX_VARIABLE_BYTES} bytes"
                    ));
                }
                add_variable(ctx, name, value);
            }
            continue;
        }
        if ctx.get(name).is_some() {
            continue;
        }
        let substitute = |v: &Value, ctx: &Value| {
            crate::variables::substitute_all(v, scope_over(ctx, objects)).map_err(|e| e.to_string())
        };
        let loaded = if let Some(cm) = present("configMap") {
            let cm = substitute(cm, ctx)?;
            let field = |k: &str| cm.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            provider
                .config_map(&field("namespace"), &field("name"))
                .map_err(|e| e.to_string())?
        } else if let Some(call) = present("apiCall") {
            let call = substitute(call, ctx)?;
            let text = |k: &str| call.get(k).and_then(Value::as_str).map(str::to_owned);
            let api_call = ApiCall {
                url_path: text("urlPath"),
                method: text("method").unwrap_or_else(|| "GET".to_owned()),
                data: call
                    .field("data")
                    .and_then(Value::as_array)
                    .map(|items| {
                        items
                            .iter()
                            .filter_map(|d| {
                                Some((
                                    d.field("key")?.as_str()?.to_owned(),
                                    d.field("value")?.clone(),
                                ))
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                service_url: call
                    .pointer("/service/url")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                service_ca_bundle: call
                    .pointer("/service/caBundle")
                    .and_then(Value::as_str)
                    .filter(|b| !b.is_empty())
                    .map(str::to_owned),
                service_headers: call
                    .pointer("/service/headers")
                    .and_then(Value::as_array)
                    .map(|headers| {
                        headers
                            .iter()
                            .filter_map(|h| {
                                Some((
                                    h.field("key")?.as_str()?.to_owned(),
                                    h.field("value")?.as_str()?.to_owned(),
                                ))
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            };
            match provider.api_call(&api_call) {
                Ok(Some(data)) => Some(apply_jmespath(&call, data)?),
                Ok(None) => None,
                // Kyverno answers a failed call with the entry's `default` when there is one.
                Err(error) => match call.field("default").filter(|d| !d.is_null()) {
                    Some(default) => Some(default.clone()),
                    None => return Err(error.to_string()),
                },
            }
        } else if let Some(global) = present("globalReference") {
            let global = substitute(global, ctx)?;
            let gname = global.field("name").and_then(Value::as_str).unwrap_or("");
            match provider
                .global_reference(gname)
                .map_err(|e| e.to_string())?
            {
                Some(data) => Some(apply_jmespath(&global, data)?),
                None => None,
            }
        } else if let Some(registry) = present("imageRegistry") {
            let registry = substitute(registry, ctx)?;
            let reference = registry
                .field("reference")
                .and_then(Value::as_str)
                .unwrap_or("");
            match provider.image_data(reference).map_err(|e| e.to_string())? {
                Some(data) => Some(apply_jmespath(&registry, data)?),
                None => None,
            }
        } else {
            None
        };
        if let Some(value) = loaded {
            add_variable(ctx, name, value);
        }
    }
    Ok(())
}

/// Most bytes (as JSON, roughly) the `variable` entries of one rule may compute together:
/// room for several copies of the largest object the API server accepts (3 MiB).
pub const MAX_VARIABLE_BYTES: usize = 16 << 20;

/// The size of a value written as JSON, roughly (no escapes, no separators beyond one byte),
/// without writing it.
pub fn approximate_size(value: &Value) -> usize {
    let mut total = 0usize;
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        total = total.saturating_add(match v {
            Value::Null | Value::Bool(_) => 5,
            Value::Number(_) => 8,
            Value::String(s) => s.len() + 2,
            Value::Array(items) => {
                stack.extend(items.iter());
                items.len() + 2
            }
            Value::Object(map) => {
                stack.extend(map.values());
                map.keys().map(|k| k.len() + 4).sum::<usize>() + 2
            }
        });
    }
    total
}

/// A `variable` entry: a literal `value` (with variables substituted), optionally queried by
/// `jmesPath`, falling back to `default` when the result is null or the query fails.
fn load_variable(
    name: &str,
    variable: &Value,
    ctx: crate::jmespath::Scope<'_>,
) -> Result<Option<Value>, String> {
    use crate::{jmespath, variables};
    let default = variable.field("default").filter(|v| !v.is_null());
    let jmes_path = variable.field("jmesPath").and_then(Value::as_str);
    let value = variable.field("value").filter(|v| !v.is_null());
    let result = match (value, jmes_path) {
        (Some(value), path) => {
            let value = variables::substitute_all(value, ctx).map_err(|e| e.to_string())?;
            match path {
                Some(p) => {
                    let p = substitute_text(p, ctx)?;
                    jmespath::compile(&p).and_then(|e| e.search(&value)).ok()
                }
                None => Some(value),
            }
        }
        (None, Some(p)) => {
            let p = substitute_text(p, ctx)?;
            let expr = jmespath::compile(&p).map_err(|e| e.to_string())?;
            expr.search_with_env(ctx, &jmespath::SystemEnv).ok()
        }
        (None, None) => None,
    };
    match result {
        Some(Value::Null) | None => match default {
            Some(d) => Ok(Some(
                variables::substitute_all(d, ctx).map_err(|e| e.to_string())?,
            )),
            None if jmes_path.is_some() && value.is_none() => Err(format!(
                "failed to evaluate context variable {name}: the query returned no value and no default is set"
            )),
            None => Ok(result),
        },
        Some(v) => Ok(Some(v)),
    }
}

/// Applies an entry's optional `jmesPath` to data a provider returned; `default` when the
/// result is null or the query fails.
fn apply_jmespath(entry: &Value, data: Value) -> Result<Value, String> {
    match entry
        .field("jmesPath")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
    {
        Some(path) => {
            let expr = crate::jmespath::compile(path).map_err(|e| e.to_string())?;
            match expr.search(&data) {
                Ok(Value::Null) | Err(_) => match entry.field("default") {
                    Some(d) if !d.is_null() => Ok(d.clone()),
                    _ => Ok(Value::Null),
                },
                Ok(v) => Ok(v),
            }
        }
        None => Ok(data),
    }
}

/// Substitutes `{{ }}` in a string that must stay a string (list expressions, JMESPath
/// queries, messages).
pub fn substitute_text<'a>(
    text: &str,
    ctx: impl Into<crate::jmespath::Scope<'a>>,
) -> Result<String, String> {
    if !crate::variables::has_open_braces(text) {
        return Ok(text.to_owned());
    }
    match crate::variables::substitute_str(text, ctx) {
        Ok(Value::String(s)) => Ok(s),
        Ok(other) => Ok(other.to_string()),
        Err(e) => Err(format!("variable substitution failed: {e}")),
    }
}

/// Namespace labels as a context-friendly map.
pub fn labels_value(labels: &BTreeMap<String, String>) -> Value {
    Value::Object(
        labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Requests whose documents differ in every way a document can: user, roles, kind,
    /// subresource (which adds keys and changes `kind`), name, namespace, dry run, images.
    fn varied_requests() -> Vec<Request> {
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "team-a"},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}});
        let mut update = Request::create(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "api", "namespace": "team-b"}}));
        update.operation = crate::request::Operation::Update;
        update.old_object = Some(json!({"kind": "Deployment"}));
        update.dry_run = true;
        update.user = crate::request::UserInfo {
            username: "system:serviceaccount:kube-system:replicaset-controller".into(),
            uid: "42".into(),
            groups: vec![
                "system:serviceaccounts".into(),
                "system:authenticated".into(),
            ],
            roles: vec!["team-b:editor".into()],
            cluster_roles: vec!["view".into(), "edit".into()],
        };
        let mut scale = Request::create(json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": {"name": "api", "namespace": "team-b"}}));
        scale.kind = crate::request::GroupVersionKind {
            group: "apps".into(),
            version: "v1".into(),
            kind: "Deployment".into(),
        };
        scale.subresource = "scale".into();
        scale.user.username = "alice".into();
        scale.user.roles = vec!["team-b:admin".into()];
        let mut namespace = Request::create(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "team-c"}}));
        namespace.operation = crate::request::Operation::Delete;
        namespace.user.groups = vec!["admins".into()];
        vec![Request::create(pod), update, scale, namespace]
    }

    /// A document as text, so that key order counts too.
    fn text(document: &Value) -> String {
        serde_json::to_string(document).unwrap()
    }

    #[test]
    fn a_rewritten_document_is_the_one_built_for_the_request() {
        let requests = varied_requests();
        for with_images in [false, true] {
            for earlier in &requests {
                for request in &requests {
                    let mut document = build_request_context(earlier, with_images, false);
                    let built = build_request_context(request, with_images, false);
                    let rewritten = rewrite_without_objects(&mut document, request, with_images);
                    let same_shape =
                        earlier.subresource.is_empty() == request.subresource.is_empty();
                    assert_eq!(
                        rewritten,
                        same_shape,
                        "{} then {}",
                        earlier.name(),
                        request.name()
                    );
                    if rewritten {
                        assert_eq!(text(&document), text(&built));
                    }
                }
            }
        }
    }

    #[test]
    fn each_request_of_a_thread_gets_its_own_document_whatever_came_before() {
        for with_images in [false, true, false] {
            for request in varied_requests()
                .iter()
                .chain(varied_requests().iter().rev())
            {
                let context = ValidationContext::of(request, with_images);
                let built = build_request_context(request, with_images, false);
                assert_eq!(text(&context.document), text(&built), "{}", request.name());
            }
        }
    }

    #[test]
    fn what_an_evaluation_left_in_the_document_does_not_reach_the_next_request() {
        let requests = varied_requests();
        let [pod, update, ..] = requests.as_slice() else {
            panic!("varied_requests has four requests");
        };
        let mut context = ValidationContext::of(pod, false);
        let document = context.document_mut();
        document["leftover"] = json!("from the pod");
        document["request"]["operation"] = json!({"not": "a string"});
        drop(context);
        let context = ValidationContext::of(update, false);
        assert_eq!(
            text(&context.document),
            text(&build_request_context(update, false, false))
        );
        drop(context);

        let mut context = ValidationContext::of(pod, false);
        let document = context.document_mut();
        document["request"]["leftover"] = json!(1);
        document["request"]["userInfo"]["extra"] = json!({"scopes": ["x"]});
        document["request"]["kind"]["extra"] = json!(true);
        drop(context);
        let context = ValidationContext::of(update, false);
        assert_eq!(
            text(&context.document),
            text(&build_request_context(update, false, false))
        );
    }

    #[test]
    fn image_references_split_like_kyverno() {
        let nginx = image_info("nginx").unwrap();
        assert_eq!(nginx["registry"], "docker.io");
        assert_eq!(nginx["path"], "nginx");
        assert_eq!(nginx["name"], "nginx");
        assert_eq!(nginx["tag"], "latest");
        assert_eq!(nginx["reference"], "docker.io/nginx:latest");
        assert_eq!(nginx["referenceWithTag"], "docker.io/nginx:latest");

        let ghcr = image_info("ghcr.io/org/app:1.2@sha256:abc").unwrap();
        assert_eq!(ghcr["registry"], "ghcr.io");
        assert_eq!(ghcr["path"], "org/app");
        assert_eq!(ghcr["tag"], "1.2");
        assert_eq!(ghcr["digest"], "sha256:abc");

        let local = image_info("localhost:5000/app").unwrap();
        assert_eq!(local["registry"], "localhost:5000");
        assert_eq!(local["tag"], "latest");

        let hub = image_info("bitnami/redis:7").unwrap();
        assert_eq!(hub["registry"], "docker.io");
        assert_eq!(hub["path"], "bitnami/redis");
    }

    #[test]
    fn images_are_found_in_pods_and_templates() {
        let deploy = json!({"kind": "Deployment", "spec": {"template": {"spec": {
            "containers": [{"name": "web", "image": "nginx:1.25"}],
            "initContainers": [{"name": "init", "image": "busybox"}]}}}});
        let images = images_of(&deploy);
        assert_eq!(images["containers"]["web"]["tag"], "1.25");
        assert_eq!(images["initContainers"]["init"]["name"], "busybox");
    }

    #[test]
    fn variable_keys_split_at_dots_outside_quotes() {
        assert_eq!(variable_path("a.b.c"), ["a", "b", "c"]);
        assert_eq!(
            variable_path(r#"request.object.metadata.annotations."example.com/team""#),
            [
                "request",
                "object",
                "metadata",
                "annotations",
                "example.com/team"
            ]
        );
        assert_eq!(variable_path(r#""a.b"."c""d".e"#), ["a.b", r#"c"d"#, "e"]);
        assert_eq!(variable_path("a..b"), ["a", "", "b"]);
        let mut doc = json!({"request": {"object": {"metadata": {"annotations": {"x": "1"}}}}});
        add_variable(
            &mut doc,
            r#"request.object.metadata.annotations."example.com/team""#,
            json!("payments"),
        );
        assert_eq!(
            doc["request"]["object"]["metadata"]["annotations"],
            json!({"x": "1", "example.com/team": "payments"})
        );
    }

    #[test]
    fn dotted_variables_nest() {
        let mut doc = json!({"request": {"object": {"a": 1}}});
        add_variable(&mut doc, "request.operation", json!("UPDATE"));
        add_variable(&mut doc, "team.name", json!("x"));
        assert_eq!(doc["request"]["operation"], "UPDATE");
        assert_eq!(doc["request"]["object"]["a"], 1);
        assert_eq!(doc["team"]["name"], "x");
    }

    #[test]
    fn service_account_is_split_from_username() {
        let mut req = Request::create(json!({"kind": "Pod", "metadata": {"name": "p"}}));
        req.user.username = "system:serviceaccount:ops:deployer".into();
        let doc = request_context(&req);
        assert_eq!(doc["serviceAccountName"], "deployer");
        assert_eq!(doc["serviceAccountNamespace"], "ops");
        assert_eq!(doc["request"]["operation"], "CREATE");
    }

    /// Answers every call with `result` and remembers what it was asked.
    struct Calls {
        result: Result<Option<Value>, ContextError>,
        seen: std::sync::Mutex<Vec<ApiCall>>,
    }

    impl ContextProvider for Calls {
        fn api_call(&self, call: &ApiCall) -> Result<Option<Value>, ContextError> {
            self.seen.lock().expect("unpoisoned").push(call.clone());
            self.result.clone()
        }
    }

    #[test]
    fn api_calls_carry_the_service_settings_and_fall_back_to_default_on_error() {
        let entries = [json!({"name": "allowed", "apiCall": {
            "method": "POST",
            "data": [{"key": "image", "value": "{{ request.object.image }}"}],
            "service": {
                "url": "https://checker.security:8443/check",
                "caBundle": "-----BEGIN CERTIFICATE-----",
                "headers": [{"key": "X-Team", "value": "payments"}]
            },
            "jmesPath": "allowed",
            "default": false
        }})];
        let failing = Calls {
            result: Err(ContextError("connection refused".into())),
            seen: Default::default(),
        };
        let mut ctx = json!({"request": {"object": {"image": "nginx"}}});
        load_entries(&entries, &mut ctx, &failing).unwrap();
        assert_eq!(ctx["allowed"], json!(false));
        let call = failing.seen.lock().expect("unpoisoned")[0].clone();
        assert_eq!(call.method, "POST");
        assert_eq!(call.data, [("image".to_owned(), json!("nginx"))]);
        assert_eq!(
            call.service_url.as_deref(),
            Some("https://checker.security:8443/check")
        );
        assert_eq!(
            call.service_ca_bundle.as_deref(),
            Some("-----BEGIN CERTIFICATE-----")
        );
        assert_eq!(
            call.service_headers,
            [("X-Team".to_owned(), "payments".to_owned())]
        );

        let answering = Calls {
            result: Ok(Some(json!({"allowed": true}))),
            seen: Default::default(),
        };
        let mut ctx = json!({"request": {"object": {"image": "nginx"}}});
        load_entries(&entries, &mut ctx, &answering).unwrap();
        assert_eq!(ctx["allowed"], json!(true));

        // Without a default the failure is the rule's error.
        let mut no_default = entries[0].clone();
        no_default["apiCall"]
            .as_object_mut()
            .unwrap()
            .remove("default");
        let mut ctx = json!({"request": {"object": {"image": "nginx"}}});
        let error = load_entries(&[no_default], &mut ctx, &failing).unwrap_err();
        assert_eq!(error, "connection refused");
    }
}
