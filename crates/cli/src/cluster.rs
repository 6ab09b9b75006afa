//! The pretend cluster a suite describes, as Kyverno's CLI builds it: the objects `configMap`
//! and `apiCall` context entries read (only when the Test names `clusterResources`, as in
//! Kyverno), mocked API call responses (`apiCallResponses`) and global context entries
//! (`globalContextEntries`). Generate rules see their own objects (the trigger and clone
//! sources), as in Kyverno's CLI.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use bylaw_engine::context::{ApiCall, ContextError, ContextProvider};
use bylaw_engine::generate::{ObjectStore, ResourceRef};
use serde_json::{json, Map, Value};

use crate::load::{get_ci, read_documents, Values};

/// What context entries can read besides values files.
#[derive(Debug, Default)]
pub struct ClusterData {
    /// The Test names `clusterResources`: `configMap` and `apiCall` (`urlPath`) entries read the
    /// objects below. Without it, Kyverno's CLI leaves such entries unloaded.
    pub enabled: bool,
    /// Every object of the suite: its resources and the cluster resources.
    pub objects: ObjectStore,
    /// `apiCallResponses`.
    pub api_mocks: Vec<ApiMock>,
    /// `globalContextEntries`, by name: the entry's data, or why it has none.
    pub global_entries: BTreeMap<String, Result<Value, String>>,
}

/// One `apiCallResponses` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiMock {
    /// `url` or `urlPath`, as written.
    pub url: String,
    /// Upper-case method, or `None` for any.
    pub method: Option<String>,
    pub status: u64,
    pub body: Value,
}

impl ClusterData {
    /// Reads `clusterResources` files (each a `cli.kyverno.io` ClusterResource: `spec.resources`
    /// inline, `spec.crds` files relative to the test); returns the objects, CRDs included.
    pub fn read_cluster_resources(files: &[std::path::PathBuf], base: &Path) -> Result<Vec<Value>> {
        let mut objects = Vec::new();
        for file in files {
            for doc in read_documents(file)? {
                let kind = doc.value.get("kind").and_then(Value::as_str).unwrap_or("");
                if kind != "ClusterResource" {
                    anyhow::bail!(
                        "{}: clusterResources files hold cli.kyverno.io ClusterResource documents, not {kind:?}",
                        file.display()
                    );
                }
                let spec = get_ci(&doc.value, "spec");
                for resource in spec
                    .and_then(|s| get_ci(s, "resources"))
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    objects.push(resource.clone());
                }
                for crd in bylaw_engine::matching::string_list(spec.and_then(|s| get_ci(s, "crds")))
                {
                    objects.extend(
                        read_documents(&base.join(crd))?
                            .into_iter()
                            .map(|d| d.value),
                    );
                }
            }
        }
        Ok(objects)
    }

    /// Parses and checks `apiCallResponses` as Kyverno's CLI does.
    pub fn parse_api_mocks(entries: &Value) -> Result<Vec<ApiMock>> {
        let mut mocks: Vec<ApiMock> = Vec::new();
        for (i, entry) in entries.as_array().into_iter().flatten().enumerate() {
            let text = |key: &str| {
                get_ci(entry, key)
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .unwrap_or("")
                    .to_owned()
            };
            let (url, path) = (text("url"), text("urlPath"));
            let url = match (url.is_empty(), path.is_empty()) {
                (true, true) => {
                    anyhow::bail!("apiCallResponses[{i}]: either url or urlPath is required")
                }
                (false, false) => {
                    anyhow::bail!("apiCallResponses[{i}]: url and urlPath are mutually exclusive")
                }
                (false, true) => {
                    if !(url.starts_with("https://") || url.starts_with("http://")) {
                        anyhow::bail!(
                            "apiCallResponses[{i}]: url {url:?} must be an absolute https/http URL"
                        );
                    }
                    url
                }
                (true, false) => {
                    if !path.starts_with('/') {
                        anyhow::bail!("apiCallResponses[{i}]: urlPath {path:?} must be an absolute path starting with '/'");
                    }
                    path
                }
            };
            let method = text("method").to_ascii_uppercase();
            if !matches!(method.as_str(), "" | "GET" | "POST") {
                anyhow::bail!("apiCallResponses[{i}]: method must be GET or POST");
            }
            let response = get_ci(entry, "response");
            let body = response
                .and_then(|r| get_ci(r, "body"))
                .cloned()
                .unwrap_or(Value::Null);
            if !body.is_object() {
                anyhow::bail!("apiCallResponses[{i}] {url:?}: response.body must be a JSON object");
            }
            let status = response
                .and_then(|r| get_ci(r, "statusCode"))
                .and_then(Value::as_u64)
                .unwrap_or(0);
            if status != 0 && !(100..=599).contains(&status) {
                anyhow::bail!("apiCallResponses[{i}] {url:?}: statusCode {status} must be between 100 and 599");
            }
            let method = (!method.is_empty()).then_some(method);
            if mocks.iter().any(|m| m.url == url && m.method == method) {
                anyhow::bail!("apiCallResponses: duplicate entry for {url:?}");
            }
            mocks.push(ApiMock {
                url,
                method,
                status: if status == 0 { 200 } else { status },
                body,
            });
        }
        Ok(mocks)
    }

    /// Parses `globalContextEntries`: each entry's data (`data`, inline `resources` or
    /// `resourceFiles` relative to the test), narrowed by `fieldPath` and `projections`.
    pub fn parse_global_entries(
        entries: &Value,
        base: &Path,
    ) -> Result<BTreeMap<String, Result<Value, String>>> {
        let mut out = BTreeMap::new();
        for entry in entries.as_array().into_iter().flatten() {
            let name = get_ci(entry, "name")
                .and_then(Value::as_str)
                .map(str::trim)
                .unwrap_or("");
            if name.is_empty() {
                anyhow::bail!("globalContextEntries: name is required");
            }
            if out.contains_key(name) {
                anyhow::bail!("globalContextEntries: duplicate name {name:?}");
            }
            let data = get_ci(entry, "data").filter(|d| !d.is_null());
            let resources = get_ci(entry, "resources");
            let files = get_ci(entry, "resourceFiles");
            let sources = [data.is_some(), resources.is_some(), files.is_some()];
            match sources.iter().filter(|s| **s).count() {
                0 => anyhow::bail!(
                    "globalContextEntries entry {name:?}: one of data, resources, or resourceFiles is required"
                ),
                1 => {}
                _ => anyhow::bail!(
                    "globalContextEntries entry {name:?}: data, resources, and resourceFiles are mutually exclusive"
                ),
            }
            let root = if let Some(data) = data {
                if !data.is_object() {
                    anyhow::bail!(
                        "globalContextEntries entry {name:?}: data must be a JSON object"
                    );
                }
                data.clone()
            } else if let Some(resources) = resources {
                resources.clone()
            } else {
                let mut list = Vec::new();
                for file in bylaw_engine::matching::string_list(files) {
                    if Path::new(&file).is_absolute() || file.split('/').any(|p| p == "..") {
                        anyhow::bail!(
                            "globalContextEntries entry {name:?}: resource file {file:?} must stay in the test directory"
                        );
                    }
                    list.extend(
                        read_documents(&base.join(&file))?
                            .into_iter()
                            .map(|d| d.value),
                    );
                }
                Value::Array(list)
            };
            out.insert(name.to_owned(), project(entry, root));
        }
        Ok(out)
    }

    fn config_map(&self, namespace: &str, name: &str) -> Result<Option<Value>, ContextError> {
        if !self.enabled {
            return Ok(None);
        }
        // A ClusterPolicy's entry without a namespace reads `default`, as in Kyverno.
        let namespace = if namespace.is_empty() {
            "default"
        } else {
            namespace
        };
        let found = self
            .objects
            .get("v1", "ConfigMap", namespace, name)
            .ok_or_else(|| {
                ContextError(format!(
                    "failed to get configmap {namespace}/{name} : configmaps \"{name}\" not found"
                ))
            })?;
        Ok(Some(json!({
            "data": found.get("data").cloned().unwrap_or(Value::Null),
            "metadata": found.get("metadata").cloned().unwrap_or(Value::Null),
        })))
    }

    fn api_call(&self, call: &ApiCall) -> Result<Option<Value>, ContextError> {
        let url = call
            .service_url
            .as_deref()
            .or(call.url_path.as_deref())
            .unwrap_or("");
        let method = call.method.to_ascii_uppercase();
        let mock = self
            .api_mocks
            .iter()
            .find(|m| m.url == url && m.method.as_deref() == Some(method.as_str()))
            .or_else(|| {
                self.api_mocks
                    .iter()
                    .find(|m| m.url == url && m.method.is_none())
            });
        if let Some(mock) = mock.filter(|_| !url.is_empty()) {
            if !(200..300).contains(&mock.status) {
                return Err(ContextError(format!(
                    "HTTP {} from apiCall mock for {url} (a non-2xx answer is a failure)",
                    mock.status
                )));
            }
            return Ok(Some(mock.body.clone()));
        }
        if !self.enabled {
            return Ok(None);
        }
        match (&call.service_url, &call.url_path) {
            (Some(service), _) => Err(ContextError(format!(
                "bylaw does not call services offline ({service}); mock the answer with apiCallResponses"
            ))),
            (None, Some(path)) => self.raw_path(path, &method).map(Some),
            (None, None) => Ok(None),
        }
    }

    /// A GET of a Kubernetes API path against the suite's objects, as Kyverno's fake client
    /// answers it: a named object, or a list of a resource (in a namespace).
    fn raw_path(&self, path: &str, method: &str) -> Result<Value, ContextError> {
        if method != "GET" {
            return Err(ContextError(format!(
                "method {method} not supported for fake client"
            )));
        }
        let path = path.split('?').next().unwrap_or(path);
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let (group, rest) = match parts.as_slice() {
            ["api", rest @ ..] => ("", rest),
            ["apis", group, rest @ ..] => (*group, rest),
            _ => return Err(ContextError(format!("failed to parse path: {path}"))),
        };
        let (version, namespace, resource, name) = match rest {
            [version, "namespaces", namespace, resource, name, ..] => {
                (*version, *namespace, *resource, *name)
            }
            [version, "namespaces", namespace, resource] => (*version, *namespace, *resource, ""),
            [version, resource, name, ..] => (*version, "", *resource, *name),
            [version, resource] => (*version, "", *resource, ""),
            _ => return Err(ContextError(format!("failed to parse path: {path}"))),
        };
        let api_version = if group.is_empty() {
            version.to_owned()
        } else {
            format!("{group}/{version}")
        };
        let of_resource: Vec<&Value> = self
            .objects
            .0
            .iter()
            .filter(|o| {
                let id = ResourceRef::of(o);
                id.api_version == api_version && plural_of(&id.kind) == resource
            })
            .collect();
        let kind = of_resource
            .first()
            .map(|o| ResourceRef::of(o).kind)
            .unwrap_or_else(|| kind_of(resource));
        if !name.is_empty() {
            return of_resource
                .iter()
                .find(|o| {
                    let id = ResourceRef::of(o);
                    id.name == name && id.namespace == namespace
                })
                .map(|o| (*o).clone())
                .ok_or_else(|| {
                    ContextError(format!(
                        "failed to get resource {api_version}/{kind}/{name}: {resource} \"{name}\" not found"
                    ))
                });
        }
        if of_resource.is_empty() {
            return Err(ContextError(format!(
                "failed to list resources {api_version}/{kind} in namespace {namespace:?}: the server could not find the requested resource"
            )));
        }
        let mut items: Vec<Value> = of_resource
            .into_iter()
            .filter(|o| namespace.is_empty() || ResourceRef::of(o).namespace == namespace)
            .cloned()
            .collect();
        items.sort_by_key(|o| {
            let id = ResourceRef::of(o);
            (id.namespace, id.name)
        });
        Ok(json!({
            "apiVersion": api_version,
            "kind": format!("{kind}List"),
            "metadata": {"resourceVersion": ""},
            "items": items,
        }))
    }

    fn global_reference(&self, name: &str) -> Result<Option<Value>, ContextError> {
        if self.global_entries.is_empty() {
            return Ok(None);
        }
        let (entry, projection) = name.split_once('.').unwrap_or((name, ""));
        let value = match self.global_entries.get(entry) {
            Some(Ok(value)) => value,
            Some(Err(e)) => return Err(ContextError(e.clone())),
            None => return Err(ContextError(format!("failed to fetch entry key={entry}"))),
        };
        if projection.is_empty() {
            return Ok(Some(value.clone()));
        }
        match value {
            Value::Object(map) => map.get(projection).cloned().map(Some).ok_or_else(|| {
                ContextError(format!(
                    "global context mock: projection {projection:?} not found"
                ))
            }),
            _ => Err(ContextError(format!(
                "global context mock: projection {projection:?} requested but value is not an object"
            ))),
        }
    }
}

/// A global context entry's root after its `fieldPath` and `projections`.
fn project(entry: &Value, root: Value) -> Result<Value, String> {
    let search = |path: &str, data: &Value| {
        bylaw_engine::jmespath::compile(path)
            .and_then(|e| e.search(data))
            .map_err(|e| e.to_string())
    };
    let root = match get_ci(entry, "fieldPath").and_then(Value::as_str) {
        Some(path) if !path.is_empty() => search(path, &root)?,
        _ => root,
    };
    let Some(projections) = get_ci(entry, "projections").and_then(Value::as_array) else {
        return Ok(root);
    };
    let mut out = Map::new();
    for projection in projections {
        let name = get_ci(projection, "name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let path = get_ci(projection, "path")
            .and_then(Value::as_str)
            .unwrap_or("");
        if name.is_empty() || path.is_empty() {
            return Err("global context projections need a name and a path".to_owned());
        }
        out.insert(name.to_owned(), search(path, &root)?);
    }
    Ok(Value::Object(out))
}

/// Kubernetes' guess of a kind's resource name (`Pod` → `pods`, `Policy` → `policies`).
fn plural_of(kind: &str) -> String {
    let singular = kind.to_ascii_lowercase();
    if singular.ends_with("endpoints") {
        return singular;
    }
    match singular.chars().last() {
        Some('s') => format!("{singular}es"),
        Some('y') => format!("{}ies", singular.trim_end_matches('y')),
        _ => format!("{singular}s"),
    }
}

/// Kyverno's fake client's guess of the kind of a resource name it does not know.
fn kind_of(resource: &str) -> String {
    let singular = if let Some(stem) = resource.strip_suffix("ies") {
        format!("{stem}y")
    } else if let Some(stem) = resource.strip_suffix("es") {
        stem.to_owned()
    } else {
        resource.strip_suffix('s').unwrap_or(resource).to_owned()
    };
    let mut chars = singular.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => singular,
    }
}

/// The context provider of one resource's evaluation: values files, the suite's pretend
/// cluster, and the objects generate rules see.
pub(crate) struct Cluster<'a> {
    pub values: &'a Values,
    pub data: &'a ClusterData,
    /// What generate rules see: the resource and the clone sources.
    pub objects: ObjectStore,
}

impl ContextProvider for Cluster<'_> {
    fn rule_values(&self, policy: &str, rule: &str) -> Option<&Map<String, Value>> {
        self.values.rule_values(policy, rule)
    }

    fn foreach_values(&self, policy: &str, rule: &str) -> Option<&Map<String, Value>> {
        self.values.foreach_values(policy, rule)
    }

    fn config_map(&self, namespace: &str, name: &str) -> Result<Option<Value>, ContextError> {
        self.data.config_map(namespace, name)
    }

    fn api_call(&self, call: &ApiCall) -> Result<Option<Value>, ContextError> {
        self.data.api_call(call)
    }

    fn global_reference(&self, name: &str) -> Result<Option<Value>, ContextError> {
        self.data.global_reference(name)
    }

    fn resource(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Value>, ContextError> {
        // The suite's own objects first, then those of its context and parameter files.
        match self.objects.resource(api_version, kind, namespace, name)? {
            Some(found) => Ok(Some(found)),
            None => self.values.resource(api_version, kind, namespace, name),
        }
    }

    fn list_resources(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        selector: Option<&Value>,
    ) -> Result<Vec<Value>, ContextError> {
        let mut found = self
            .objects
            .list_resources(api_version, kind, namespace, selector)?;
        found.extend(
            self.values
                .list_resources(api_version, kind, namespace, selector)?,
        );
        Ok(found)
    }

    fn image_data(&self, reference: &str) -> Result<Option<Value>, ContextError> {
        self.values.image_data(reference)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_names_and_kinds_guessed_as_kubernetes_does() {
        assert_eq!(plural_of("Pod"), "pods");
        assert_eq!(plural_of("NetworkPolicy"), "networkpolicies");
        assert_eq!(plural_of("Ingress"), "ingresses");
        assert_eq!(plural_of("Endpoints"), "endpoints");
        assert_eq!(kind_of("pods"), "Pod");
        assert_eq!(kind_of("policies"), "Policy");
    }
}
