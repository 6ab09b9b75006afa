//! Reading policies, resources, exceptions, values and user info from files and directories,
//! with errors that name the file (and line, for malformed YAML).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bylaw_engine::compile::CompiledPolicy;
use bylaw_engine::engine::{compile_document, CompiledDocument};
use bylaw_engine::exceptions::CompiledException;
use bylaw_engine::request::{GroupVersionKind, UserInfo};
use serde_json::{Map, Value};

/// One YAML document and where it came from.
#[derive(Debug, Clone)]
pub struct Document {
    pub value: Value,
    pub source: PathBuf,
}

/// Reads every YAML document of a file, or of every `.yaml`/`.yml`/`.json` file below a
/// directory (sorted, so results are deterministic; hidden directories skipped), walked as
/// `bylaw serve --policies` walks it.
pub fn read_documents(path: &Path) -> Result<Vec<Document>> {
    let mut files = Vec::new();
    bylaw_runtime::sources::collect_files(path, &mut files)?;
    let mut docs = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let values = bylaw_api::yaml::parse_documents(&text, &file.display().to_string())?;
        for value in values {
            // A `List` (as `kubectl get -o yaml` writes) stands for its items.
            if value.get("kind").and_then(Value::as_str) == Some("List") {
                if let Some(items) = value.get("items").and_then(Value::as_array) {
                    docs.extend(items.iter().map(|item| Document {
                        value: item.clone(),
                        source: file.clone(),
                    }));
                    continue;
                }
            }
            docs.push(Document {
                value,
                source: file.clone(),
            });
        }
    }
    Ok(docs)
}

/// Policies and exceptions found among documents; other kinds are returned as unsupported.
#[derive(Debug, Default)]
pub struct PolicyBundle {
    pub policies: Vec<CompiledPolicy>,
    pub exceptions: Vec<CompiledException>,
    /// `(kind, name, file)` of policy documents bylaw cannot run yet (CEL policy kinds, …).
    pub unsupported: Vec<(String, String, PathBuf)>,
}

/// Compiles every policy and exception document; an invalid one is an error naming the file
/// and the field path.
pub fn compile_documents(docs: &[Document]) -> Result<PolicyBundle> {
    let mut bundle = PolicyBundle::default();
    // ValidatingAdmissionPolicies are compiled with the bindings that name them.
    let is_admission = |doc: &Document, kind: &str| {
        doc.value.get("kind").and_then(Value::as_str) == Some(kind)
            && doc
                .value
                .get("apiVersion")
                .and_then(Value::as_str)
                .is_some_and(|v| v.starts_with("admissionregistration.k8s.io/"))
    };
    let bindings: Vec<&Value> = docs
        .iter()
        .filter(|d| is_admission(d, "ValidatingAdmissionPolicyBinding"))
        .map(|d| &d.value)
        .collect();
    for doc in docs {
        let kind = doc.value.get("kind").and_then(Value::as_str).unwrap_or("");
        if is_admission(doc, "ValidatingAdmissionPolicyBinding") {
            continue;
        }
        if is_admission(doc, "ValidatingAdmissionPolicy") {
            let name = doc.value.pointer("/metadata/name").and_then(Value::as_str);
            let mine: Vec<&Value> = bindings
                .iter()
                .copied()
                .filter(|b| b.pointer("/spec/policyName").and_then(Value::as_str) == name)
                .collect();
            let policy = bylaw_engine::cel::policy::compile_admission_policy(&doc.value, &mine)
                .map_err(|e| {
                    anyhow::anyhow!(
                        "{}: invalid {kind} {:?}: {e}",
                        doc.source.display(),
                        name.unwrap_or("")
                    )
                })?;
            bundle.policies.push(policy);
            continue;
        }
        let name = doc
            .value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let compiled = compile_document(&doc.value).map_err(|e| {
            anyhow::anyhow!("{}: invalid {kind} {name:?}: {e}", doc.source.display())
        })?;
        match compiled {
            CompiledDocument::Policy(policy) => bundle.policies.push(*policy),
            CompiledDocument::Exception(exception) => bundle.exceptions.push(*exception),
            CompiledDocument::Other if kind.is_empty() => {}
            CompiledDocument::Other => {
                bundle
                    .unsupported
                    .push((kind.to_owned(), name, doc.source.clone()))
            }
        }
    }
    Ok(bundle)
}

/// Looks a key up ignoring ASCII case, as Kyverno's reader of CLI test files does.
pub fn get_ci<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    let map = value.as_object()?;
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// A `cli.kyverno.io` Values file: variables for rules and resources, namespace labels.
#[derive(Debug, Default, Clone)]
pub struct Values {
    pub global: Map<String, Value>,
    /// policy → rule → values
    pub rule_values: BTreeMap<String, BTreeMap<String, Map<String, Value>>>,
    /// policy → rule → foreachValues
    pub foreach_values: BTreeMap<String, BTreeMap<String, Map<String, Value>>>,
    /// policy → resource name → values
    pub resource_values: BTreeMap<String, BTreeMap<String, Map<String, Value>>>,
    /// namespace → labels
    pub namespace_labels: BTreeMap<String, BTreeMap<String, String>>,
    /// `subresources`: which resource and subresource a document of a subresource's kind is a
    /// request for.
    pub subresources: Vec<SubresourceMapping>,
    /// Objects that exist for CEL lookups (`resource.Get`, parameters, Namespaces): the
    /// values file's `namespaces`, a test's `context` resources and `paramResources`.
    pub objects: bylaw_engine::generate::ObjectStore,
    /// Image metadata for `image.GetMetadata`, by image reference (a test's `context`).
    pub images: BTreeMap<String, Value>,
}

/// One entry of a values file's `subresources`: a document of kind `subresource` (e.g.
/// `autoscaling/v1` Scale) is evaluated as a request for `parent` (`apps/v1` Deployment) and the
/// subresource named after the slash of the entry's name (`deployments/scale` → `scale`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubresourceMapping {
    pub subresource: GroupVersionKind,
    pub name: String,
    pub parent: GroupVersionKind,
}

impl SubresourceMapping {
    fn parse(entry: &Value) -> Option<SubresourceMapping> {
        let gvk = |v: Option<&Value>| {
            let text = |k: &str| {
                v.and_then(|v| get_ci(v, k))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            };
            GroupVersionKind {
                group: text("group"),
                version: text("version"),
                kind: text("kind"),
            }
        };
        let sub = get_ci(entry, "subresource");
        let name = sub
            .and_then(|s| get_ci(s, "name"))
            .and_then(Value::as_str)?
            .split('/')
            .nth(1)?
            .to_owned();
        Some(SubresourceMapping {
            subresource: gvk(sub),
            name,
            parent: gvk(get_ci(entry, "parentResource")),
        })
    }
}

impl Values {
    pub fn parse(doc: &Value) -> Values {
        let mut values = Values::default();
        let object = |v: Option<&Value>| v.and_then(Value::as_object).cloned().unwrap_or_default();
        values.global = object(get_ci(doc, "globalValues"));
        for policy in get_ci(doc, "policies")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(pname) = get_ci(policy, "name").and_then(Value::as_str) else {
                continue;
            };
            for rule in get_ci(policy, "rules")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(rname) = get_ci(rule, "name").and_then(Value::as_str) else {
                    continue;
                };
                if let Some(v) = get_ci(rule, "values").and_then(Value::as_object) {
                    values
                        .rule_values
                        .entry(pname.to_owned())
                        .or_default()
                        .insert(rname.to_owned(), v.clone());
                }
                if let Some(v) = get_ci(rule, "foreachValues").and_then(Value::as_object) {
                    values
                        .foreach_values
                        .entry(pname.to_owned())
                        .or_default()
                        .insert(rname.to_owned(), v.clone());
                }
            }
            for resource in get_ci(policy, "resources")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(rname) = get_ci(resource, "name").and_then(Value::as_str) else {
                    continue;
                };
                values
                    .resource_values
                    .entry(pname.to_owned())
                    .or_default()
                    .insert(rname.to_owned(), object(get_ci(resource, "values")));
            }
        }
        for ns in get_ci(doc, "namespaceSelector")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(name) = get_ci(ns, "name").and_then(Value::as_str) else {
                continue;
            };
            let labels = get_ci(ns, "labels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| {
                            bylaw_engine::matching::scalar_string(v).map(|v| (k.clone(), v))
                        })
                        .collect()
                })
                .unwrap_or_default();
            values.namespace_labels.insert(name.to_owned(), labels);
        }
        values.subresources = get_ci(doc, "subresources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(SubresourceMapping::parse)
            .collect();
        for ns in get_ci(doc, "namespaces")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let mut ns = ns.clone();
            // Values files write the kind in any case (`namespace`).
            if let Some(map) = ns.as_object_mut() {
                map.insert("kind".into(), Value::String("Namespace".into()));
                map.entry("apiVersion")
                    .or_insert_with(|| Value::String("v1".into()));
            }
            if let (Some(name), Some(labels)) = (
                ns.pointer("/metadata/name").and_then(Value::as_str),
                ns.pointer("/metadata/labels").and_then(Value::as_object),
            ) {
                values
                    .namespace_labels
                    .entry(name.to_owned())
                    .or_insert_with(|| {
                        labels
                            .iter()
                            .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                            .collect()
                    });
            }
            values.objects.0.push(ns);
        }
        values
    }

    /// The resource kind and subresource a document is a request for: its own kind, or the
    /// parent resource of the `subresources` entry whose kind it has (the last such entry, as
    /// in Kyverno).
    pub fn resource_kind(&self, object: &Value) -> (GroupVersionKind, String) {
        let own = GroupVersionKind::of(object);
        self.subresources
            .iter()
            .rev()
            .find(|m| m.subresource == own)
            .map(|m| (m.parent.clone(), m.name.clone()))
            .unwrap_or((own, String::new()))
    }

    /// Adds a `cli.kyverno.io` Context file: `spec.resources` become objects that exist,
    /// `spec.images` the metadata `image.GetMetadata` returns.
    pub fn load_context(&mut self, path: &Path, scopes: &Scopes) -> Result<()> {
        for doc in read_documents(path)? {
            let spec = get_ci(&doc.value, "spec").cloned().unwrap_or(Value::Null);
            for resource in get_ci(&spec, "resources")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let mut resource = resource.clone();
                default_namespace(&mut resource, scopes);
                self.objects.0.push(resource);
            }
            for image in get_ci(&spec, "images")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(reference) = get_ci(image, "image").and_then(Value::as_str) {
                    self.images.insert(reference.to_owned(), image.clone());
                }
            }
        }
        Ok(())
    }

    /// Adds parameter objects (`paramResources` of a test).
    pub fn load_objects(&mut self, path: &Path, scopes: &Scopes) -> Result<()> {
        for mut doc in read_documents(path)? {
            default_namespace(&mut doc.value, scopes);
            self.objects.0.push(doc.value);
        }
        Ok(())
    }

    /// Sets a global variable from `--set key=value`.
    pub fn set(&mut self, assignment: &str) -> Result<()> {
        let (key, value) = assignment
            .split_once('=')
            .with_context(|| format!("--set {assignment:?}: expected key=value"))?;
        self.global.insert(
            key.trim().to_owned(),
            Value::String(value.trim().to_owned()),
        );
        Ok(())
    }

    /// Variables for one (policy, resource) pair: global values, then the resource's own.
    pub fn request_variables(&self, policy: &str, resource_name: &str) -> Map<String, Value> {
        let mut vars = self.global.clone();
        if let Some(v) = self
            .resource_values
            .get(policy)
            .and_then(|r| r.get(resource_name))
        {
            for (k, v) in v {
                vars.insert(k.clone(), v.clone());
            }
        }
        vars
    }
}

/// Values given for `rule` of `policy`; values for a rule also serve the `autogen-` and
/// `autogen-cronjob-` rules generated from it, as in Kyverno's CLI.
fn values_for_rule<'v>(
    by_policy: &'v BTreeMap<String, BTreeMap<String, Map<String, Value>>>,
    policy: &str,
    rule: &str,
) -> Option<&'v Map<String, Value>> {
    let rules = by_policy.get(policy)?;
    rules.get(rule).or_else(|| {
        let base = rule
            .strip_prefix("autogen-cronjob-")
            .or_else(|| rule.strip_prefix("autogen-"))?;
        rules.get(base)
    })
}

impl bylaw_engine::context::ContextProvider for Values {
    fn rule_values(&self, policy: &str, rule: &str) -> Option<&Map<String, Value>> {
        values_for_rule(&self.rule_values, policy, rule)
    }

    fn foreach_values(&self, policy: &str, rule: &str) -> Option<&Map<String, Value>> {
        values_for_rule(&self.foreach_values, policy, rule)
    }

    fn resource(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Value>, bylaw_engine::context::ContextError> {
        self.objects.resource(api_version, kind, namespace, name)
    }

    fn list_resources(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        selector: Option<&Value>,
    ) -> Result<Vec<Value>, bylaw_engine::context::ContextError> {
        self.objects
            .list_resources(api_version, kind, namespace, selector)
    }

    fn image_data(
        &self,
        reference: &str,
    ) -> Result<Option<Value>, bylaw_engine::context::ContextError> {
        Ok(self.images.get(reference).cloned())
    }
}

/// Reads a values file.
pub fn read_values(path: &Path) -> Result<Values> {
    let docs = read_documents(path)?;
    let doc = docs
        .first()
        .with_context(|| format!("{}: the values file is empty", path.display()))?;
    Ok(Values::parse(&doc.value))
}

/// Reads a `UserInfo` file (`cli.kyverno.io/v1alpha1` or the older bare form).
pub fn read_user_info(path: &Path) -> Result<UserInfo> {
    let docs = read_documents(path)?;
    let doc = docs
        .first()
        .with_context(|| format!("{}: the user info file is empty", path.display()))?;
    Ok(parse_user_info(&doc.value))
}

pub fn parse_user_info(doc: &Value) -> UserInfo {
    let strings = |v: Option<&Value>| bylaw_engine::matching::string_list(v);
    let info = get_ci(doc, "userInfo").cloned().unwrap_or(Value::Null);
    UserInfo {
        username: get_ci(&info, "username")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        uid: get_ci(&info, "uid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        groups: strings(get_ci(&info, "groups")),
        roles: strings(get_ci(doc, "roles")),
        cluster_roles: strings(get_ci(doc, "clusterRoles")),
    }
}

/// Kinds that live outside namespaces: Kubernetes' built-in cluster-scoped kinds, and
/// Kyverno's and the policy reports' own. Everything else read from a file without a namespace
/// is placed in `default`, as `kubectl apply` (and Kyverno's CLI) would, unless a
/// CustomResourceDefinition among the inputs or `--cluster-scoped` says otherwise.
const CLUSTER_SCOPED_KINDS: &[&str] = &[
    "APIService",
    "CSIDriver",
    "CSINode",
    "CertificateSigningRequest",
    "ClusterAdmissionReport",
    "ClusterBackgroundScanReport",
    "ClusterCleanupPolicy",
    "ClusterEphemeralReport",
    "ClusterPolicy",
    "ClusterPolicyReport",
    "ClusterReport",
    "ClusterRole",
    "ClusterRoleBinding",
    "ClusterTrustBundle",
    "ComponentStatus",
    "CustomResourceDefinition",
    "DeletingPolicy",
    "DeviceClass",
    "FlowSchema",
    "GeneratingPolicy",
    "GlobalContextEntry",
    "IPAddress",
    "ImageValidatingPolicy",
    "IngressClass",
    "MutatingAdmissionPolicy",
    "MutatingAdmissionPolicyBinding",
    "MutatingPolicy",
    "MutatingWebhookConfiguration",
    "Namespace",
    "Node",
    "PersistentVolume",
    "PriorityClass",
    "PriorityLevelConfiguration",
    "ResourceSlice",
    "RuntimeClass",
    "SelfSubjectAccessReview",
    "SelfSubjectReview",
    "SelfSubjectRulesReview",
    "ServiceCIDR",
    "StorageClass",
    "SubjectAccessReview",
    "TokenReview",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "ValidatingPolicy",
    "ValidatingWebhookConfiguration",
    "VolumeAttachment",
    "VolumeAttributesClass",
];

/// Which kinds are cluster-scoped: the built-in list, CustomResourceDefinitions among the
/// inputs (their `spec.scope`, by group and kind) and kinds named on the command line
/// (`--cluster-scoped Kind` or `group/Kind`).
#[derive(Debug, Default, Clone)]
pub struct Scopes {
    /// (group, kind) → cluster-scoped, as CustomResourceDefinitions declare them.
    declared: BTreeMap<(String, String), bool>,
    /// (group when given, kind) from the command line.
    flagged: Vec<(Option<String>, String)>,
}

impl Scopes {
    /// Kinds from `--cluster-scoped` values: `Kind` or `group/Kind`.
    pub fn with_flags(kinds: &[String]) -> Scopes {
        let flagged = kinds
            .iter()
            .map(|k| match k.rsplit_once('/') {
                Some((group, kind)) => (Some(group.to_owned()), kind.to_owned()),
                None => (None, k.clone()),
            })
            .collect();
        Scopes {
            declared: BTreeMap::new(),
            flagged,
        }
    }

    /// Learns the scope of the kinds the CustomResourceDefinitions among `docs` define.
    pub fn learn<'a>(&mut self, docs: impl IntoIterator<Item = &'a Value>) {
        for doc in docs {
            if doc.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition") {
                continue;
            }
            let spec = doc.get("spec");
            let text = |pointer: &str| {
                spec.and_then(|s| s.pointer(pointer))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            };
            let (group, kind) = (text("/group"), text("/names/kind"));
            if !kind.is_empty() {
                self.declared
                    .insert((group, kind), text("/scope") == "Cluster");
            }
        }
    }

    /// Whether objects of this apiVersion and kind live outside namespaces.
    pub fn is_cluster_scoped(&self, api_version: &str, kind: &str) -> bool {
        let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
        if let Some(cluster) = self.declared.get(&(group.to_owned(), kind.to_owned())) {
            return *cluster;
        }
        self.flagged
            .iter()
            .any(|(g, k)| k == kind && g.as_deref().is_none_or(|g| g == group))
            || CLUSTER_SCOPED_KINDS.contains(&kind)
    }
}

/// Gives a namespaced resource without a namespace the `default` one.
pub fn default_namespace(object: &mut Value, scopes: &Scopes) {
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    if kind.is_empty() || scopes.is_cluster_scoped(api_version, kind) {
        return;
    }
    let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let missing = metadata
        .get("namespace")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty);
    if missing {
        metadata.insert("namespace".into(), Value::String("default".into()));
    }
}
