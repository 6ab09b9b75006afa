//! The resource types the fake serves: the built-in table and the ones registered by CRDs.

use std::cmp::Ordering;
use std::sync::Arc;

use serde_json::Value;

/// Verbs of an ordinary stored resource, as discovery lists them.
const STANDARD_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// How a resource is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Storage {
    /// Objects are stored and can be read back.
    Stored,
    /// Create-only reviews (SubjectAccessReview …): answered, never stored.
    Review,
}

/// Where the replica count and selector of a `/scale` subresource live.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ScalePaths {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub label_selector: Option<String>,
}

/// One served group/version/resource.
#[derive(Clone, Debug)]
pub(crate) struct ResourceType {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub verbs: Vec<String>,
    pub status: bool,
    pub scale: Option<ScalePaths>,
    pub storage: Storage,
    /// The CRD that registered this type, `None` for built-ins.
    pub crd: Option<String>,
    /// The version's `openAPIV3Schema`, read for `x-kubernetes-list-type` during server-side apply.
    pub schema: Option<Value>,
    /// Extra field-selector paths (`spec.nodeName`), beyond metadata.name and metadata.namespace.
    pub selectable_fields: Vec<String>,
}

impl ResourceType {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn group_resource(&self) -> GroupResource {
        GroupResource {
            group: self.group.clone(),
            resource: self.plural.clone(),
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    pub fn supports(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }
}

/// Objects are stored per group and resource, whatever version they were written through.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct GroupResource {
    pub group: String,
    pub resource: String,
}

struct Builtin {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    in_all: bool,
    status: bool,
    scale: bool,
    create_only: bool,
    fields: &'static [&'static str],
}

const fn builtin(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
) -> Builtin {
    Builtin {
        group,
        version,
        kind,
        plural,
        namespaced,
        short_names,
        in_all: false,
        status: false,
        scale: false,
        create_only: false,
        fields: &[],
    }
}

impl Builtin {
    const fn all(mut self) -> Self {
        self.in_all = true;
        self
    }
    const fn status(mut self) -> Self {
        self.status = true;
        self
    }
    const fn scale(mut self) -> Self {
        self.scale = true;
        self
    }
    const fn create_only(mut self) -> Self {
        self.create_only = true;
        self
    }
    const fn fields(mut self, fields: &'static [&'static str]) -> Self {
        self.fields = fields;
        self
    }
}

const NS: bool = true;
const CLUSTER: bool = false;

/// Field selectors kube-apiserver accepts for core events (besides metadata.name/namespace).
const EVENT_FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];

fn builtins() -> Vec<Builtin> {
    vec![
        builtin("", "v1", "Namespace", "namespaces", CLUSTER, &["ns"])
            .status()
            .fields(&["status.phase"]),
        builtin("", "v1", "Pod", "pods", NS, &["po"])
            .all()
            .status()
            .fields(&[
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.nominatedNodeName",
            ]),
        builtin("", "v1", "ConfigMap", "configmaps", NS, &["cm"]),
        builtin("", "v1", "Secret", "secrets", NS, &[]).fields(&["type"]),
        builtin("", "v1", "Service", "services", NS, &["svc"])
            .all()
            .status(),
        builtin("", "v1", "ServiceAccount", "serviceaccounts", NS, &["sa"]),
        builtin("", "v1", "Event", "events", NS, &["ev"]).fields(EVENT_FIELDS),
        builtin("", "v1", "Node", "nodes", CLUSTER, &["no"])
            .status()
            .fields(&["spec.unschedulable"]),
        builtin("", "v1", "Endpoints", "endpoints", NS, &["ep"]),
        builtin("", "v1", "LimitRange", "limitranges", NS, &["limits"]),
        builtin("", "v1", "ResourceQuota", "resourcequotas", NS, &["quota"]).status(),
        builtin(
            "",
            "v1",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            NS,
            &["pvc"],
        )
        .status(),
        builtin(
            "",
            "v1",
            "PersistentVolume",
            "persistentvolumes",
            CLUSTER,
            &["pv"],
        )
        .status(),
        builtin(
            "",
            "v1",
            "ReplicationController",
            "replicationcontrollers",
            NS,
            &["rc"],
        )
        .all()
        .status()
        .scale(),
        builtin("apps", "v1", "Deployment", "deployments", NS, &["deploy"])
            .all()
            .status()
            .scale(),
        builtin("apps", "v1", "StatefulSet", "statefulsets", NS, &["sts"])
            .all()
            .status()
            .scale(),
        builtin("apps", "v1", "DaemonSet", "daemonsets", NS, &["ds"])
            .all()
            .status(),
        builtin("apps", "v1", "ReplicaSet", "replicasets", NS, &["rs"])
            .all()
            .status()
            .scale()
            .fields(&["status.replicas"]),
        builtin(
            "apps",
            "v1",
            "ControllerRevision",
            "controllerrevisions",
            NS,
            &[],
        ),
        builtin("batch", "v1", "Job", "jobs", NS, &[])
            .all()
            .status()
            .fields(&["status.successful"]),
        builtin("batch", "v1", "CronJob", "cronjobs", NS, &["cj"])
            .all()
            .status(),
        builtin(
            "autoscaling",
            "v2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            NS,
            &["hpa"],
        )
        .all()
        .status(),
        builtin(
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            "networkpolicies",
            NS,
            &["netpol"],
        ),
        builtin(
            "networking.k8s.io",
            "v1",
            "Ingress",
            "ingresses",
            NS,
            &["ing"],
        )
        .status(),
        builtin(
            "networking.k8s.io",
            "v1",
            "IngressClass",
            "ingressclasses",
            CLUSTER,
            &[],
        ),
        builtin(
            "discovery.k8s.io",
            "v1",
            "EndpointSlice",
            "endpointslices",
            NS,
            &[],
        ),
        builtin("rbac.authorization.k8s.io", "v1", "Role", "roles", NS, &[]),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            "clusterroles",
            CLUSTER,
            &[],
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            "rolebindings",
            NS,
            &[],
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            CLUSTER,
            &[],
        ),
        builtin("coordination.k8s.io", "v1", "Lease", "leases", NS, &[]),
        builtin("events.k8s.io", "v1", "Event", "events", NS, &["ev"]),
        builtin(
            "admissionregistration.k8s.io",
            "v1",
            "ValidatingWebhookConfiguration",
            "validatingwebhookconfigurations",
            CLUSTER,
            &[],
        ),
        builtin(
            "admissionregistration.k8s.io",
            "v1",
            "MutatingWebhookConfiguration",
            "mutatingwebhookconfigurations",
            CLUSTER,
            &[],
        ),
        builtin(
            "admissionregistration.k8s.io",
            "v1",
            "ValidatingAdmissionPolicy",
            "validatingadmissionpolicies",
            CLUSTER,
            &[],
        )
        .status(),
        builtin(
            "admissionregistration.k8s.io",
            "v1",
            "ValidatingAdmissionPolicyBinding",
            "validatingadmissionpolicybindings",
            CLUSTER,
            &[],
        ),
        builtin(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            CLUSTER,
            &["crd", "crds"],
        )
        .status(),
        builtin(
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            NS,
            &["pdb"],
        )
        .status(),
        builtin(
            "storage.k8s.io",
            "v1",
            "StorageClass",
            "storageclasses",
            CLUSTER,
            &["sc"],
        ),
        builtin(
            "scheduling.k8s.io",
            "v1",
            "PriorityClass",
            "priorityclasses",
            CLUSTER,
            &["pc"],
        ),
        builtin(
            "authorization.k8s.io",
            "v1",
            "SelfSubjectAccessReview",
            "selfsubjectaccessreviews",
            CLUSTER,
            &[],
        )
        .create_only(),
        builtin(
            "authorization.k8s.io",
            "v1",
            "SubjectAccessReview",
            "subjectaccessreviews",
            CLUSTER,
            &[],
        )
        .create_only(),
        builtin(
            "authorization.k8s.io",
            "v1",
            "LocalSubjectAccessReview",
            "localsubjectaccessreviews",
            NS,
            &[],
        )
        .create_only(),
    ]
}

fn builtin_type(b: &Builtin) -> ResourceType {
    let verbs: &[&str] = if b.create_only {
        &["create"]
    } else {
        STANDARD_VERBS
    };
    ResourceType {
        group: b.group.to_string(),
        version: b.version.to_string(),
        kind: b.kind.to_string(),
        plural: b.plural.to_string(),
        singular: b.kind.to_ascii_lowercase(),
        namespaced: b.namespaced,
        short_names: b.short_names.iter().map(|s| s.to_string()).collect(),
        categories: if b.in_all {
            vec!["all".to_string()]
        } else {
            Vec::new()
        },
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        status: b.status,
        scale: b.scale.then(|| ScalePaths {
            spec_replicas: ".spec.replicas".to_string(),
            status_replicas: ".status.replicas".to_string(),
            label_selector: None,
        }),
        storage: if b.create_only {
            Storage::Review
        } else {
            Storage::Stored
        },
        crd: None,
        schema: None,
        selectable_fields: b.fields.iter().map(|s| s.to_string()).collect(),
    }
}

/// Kubernetes' version priority: GA before beta before alpha, higher numbers first, others last
/// alphabetically. Discovery lists versions in this order; the first is the preferred one.
pub(crate) fn compare_versions(a: &str, b: &str) -> Ordering {
    fn rank(v: &str) -> (u8, u64, u64, String) {
        let parsed = v.strip_prefix('v').and_then(|rest| {
            let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            let major: u64 = digits.parse().ok()?;
            let tail = &rest[digits.len()..];
            if tail.is_empty() {
                return Some((0, major, 0));
            }
            for (stage, prefix) in [(1u8, "beta"), (2u8, "alpha")] {
                if let Some(minor) = tail
                    .strip_prefix(prefix)
                    .and_then(|m| m.parse::<u64>().ok())
                {
                    return Some((stage, major, minor));
                }
            }
            None
        });
        match parsed {
            // Higher major/minor sort first: invert them.
            Some((stage, major, minor)) => {
                (stage, u64::MAX - major, u64::MAX - minor, String::new())
            }
            None => (3, 0, 0, v.to_string()),
        }
    }
    rank(a).cmp(&rank(b))
}

/// The served types, built-ins first, then CRDs in the order they were registered.
#[derive(Clone, Debug)]
pub(crate) struct Registry {
    types: Vec<Arc<ResourceType>>,
}

impl Registry {
    pub fn with_builtins() -> Self {
        Registry {
            types: builtins()
                .iter()
                .map(|b| Arc::new(builtin_type(b)))
                .collect(),
        }
    }

    /// A group/version/resource as it appears in a URL.
    pub fn by_path(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
            .cloned()
    }

    pub fn by_kind(&self, group: &str, version: &str, kind: &str) -> Option<Arc<ResourceType>> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.kind == kind)
            .cloned()
    }

    /// Served groups (core `""` included) with their versions in priority order.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for t in &self.types {
            match groups.iter_mut().find(|(g, _)| *g == t.group) {
                Some((_, versions)) => {
                    if !versions.contains(&t.version) {
                        versions.push(t.version.clone());
                    }
                }
                None => groups.push((t.group.clone(), vec![t.version.clone()])),
            }
        }
        for (_, versions) in &mut groups {
            versions.sort_by(|a, b| compare_versions(a, b));
        }
        groups
    }

    pub fn in_group_version(&self, group: &str, version: &str) -> Vec<Arc<ResourceType>> {
        self.types
            .iter()
            .filter(|t| t.group == group && t.version == version)
            .cloned()
            .collect()
    }

    /// Registers (or re-registers) the served versions of a CRD. The CRD was validated by
    /// [`crd_types`] before it was stored.
    pub fn register_crd(&mut self, name: &str, types: Vec<ResourceType>) {
        self.unregister_crd(name);
        self.types.extend(types.into_iter().map(Arc::new));
    }

    pub fn unregister_crd(&mut self, name: &str) {
        self.types.retain(|t| t.crd.as_deref() != Some(name));
    }
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

fn strings_at(value: &Value, pointer: &str) -> Vec<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The resource types a CustomResourceDefinition serves, or the validation errors that make the
/// real API server refuse it (as `(field path, message)`).
pub(crate) fn crd_types(crd: &Value) -> Result<Vec<ResourceType>, Vec<(String, String)>> {
    let mut errors = Vec::new();
    let name = str_at(crd, "/metadata/name").unwrap_or_default();
    let group = str_at(crd, "/spec/group").unwrap_or_default();
    let plural = str_at(crd, "/spec/names/plural").unwrap_or_default();
    let kind = str_at(crd, "/spec/names/kind").unwrap_or_default();
    let scope = str_at(crd, "/spec/scope").unwrap_or_default();
    if group.is_empty() {
        errors.push(("spec.group".to_string(), "Required value".to_string()));
    }
    if plural.is_empty() {
        errors.push((
            "spec.names.plural".to_string(),
            "Required value".to_string(),
        ));
    }
    if kind.is_empty() {
        errors.push(("spec.names.kind".to_string(), "Required value".to_string()));
    }
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        errors.push((
            "metadata.name".to_string(),
            format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    let namespaced = match scope {
        "Namespaced" => true,
        "Cluster" => false,
        other => {
            errors.push((
                "spec.scope".to_string(),
                format!(
                    "Unsupported value: \"{other}\": supported values: \"Cluster\", \"Namespaced\""
                ),
            ));
            false
        }
    };
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        errors.push((
            "spec.versions".to_string(),
            "Invalid value: must have exactly one version marked as storage version".to_string(),
        ));
    }
    let storage_count = versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .count();
    if !versions.is_empty() && storage_count != 1 {
        errors.push((
            "spec.versions".to_string(),
            "Invalid value: must have exactly one version marked as storage version".to_string(),
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let singular = str_at(crd, "/spec/names/singular")
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_ascii_lowercase());
    let short_names = strings_at(crd, "/spec/names/shortNames");
    let categories = strings_at(crd, "/spec/names/categories");
    let mut types = Vec::new();
    for v in &versions {
        if v.get("served").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        let Some(version) = v.get("name").and_then(Value::as_str) else {
            continue;
        };
        let status = v.pointer("/subresources/status").is_some();
        let scale = v.pointer("/subresources/scale").map(|s| ScalePaths {
            spec_replicas: str_at(s, "/specReplicasPath")
                .unwrap_or(".spec.replicas")
                .to_string(),
            status_replicas: str_at(s, "/statusReplicasPath")
                .unwrap_or(".status.replicas")
                .to_string(),
            label_selector: str_at(s, "/labelSelectorPath").map(str::to_string),
        });
        let selectable_fields = v
            .get("selectableFields")
            .and_then(Value::as_array)
            .map(|fields| {
                fields
                    .iter()
                    .filter_map(|f| f.get("jsonPath").and_then(Value::as_str))
                    .map(|p| p.trim_start_matches('.').to_string())
                    .collect()
            })
            .unwrap_or_default();
        types.push(ResourceType {
            group: group.to_string(),
            version: version.to_string(),
            kind: kind.to_string(),
            plural: plural.to_string(),
            singular: singular.clone(),
            namespaced,
            short_names: short_names.clone(),
            categories: categories.clone(),
            verbs: STANDARD_VERBS.iter().map(|s| s.to_string()).collect(),
            status,
            scale,
            storage: Storage::Stored,
            crd: Some(name.to_string()),
            schema: v.pointer("/schema/openAPIV3Schema").cloned(),
            selectable_fields,
        });
    }
    Ok(types)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_by_kubernetes_priority() {
        let mut versions = vec![
            "v1alpha1", "v2beta1", "foo", "v1", "v1beta2", "v2", "v1beta1", "bar",
        ];
        versions.sort_by(|a, b| compare_versions(a, b));
        assert_eq!(
            versions,
            vec!["v2", "v1", "v2beta1", "v1beta2", "v1beta1", "v1alpha1", "bar", "foo"]
        );
    }
}
