//! `match` and `exclude` blocks: which resources and which requesters a rule applies to.

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::Subject;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Selection of resources and requesters. `any` filters are ORed, `all` filters are ANDed; the
/// inline `resources`/`subjects`/`roles`/`clusterRoles` form is the legacy single filter.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MatchResources {
    /// Filters of which at least one must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub any: Option<Vec<ResourceFilter>>,

    /// Filters of which every one must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<Vec<ResourceFilter>>,

    /// Legacy inline resource description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceDescription>,

    /// Legacy inline namespaced role names of the requester.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,

    /// Legacy inline cluster role names of the requester.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_roles: Option<Vec<String>>,

    /// Legacy inline users, groups or service accounts making the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subjects: Option<Vec<Subject>>,
}

/// One filter: resource description plus requester information, all of which must match.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceFilter {
    /// What the resource must look like.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceDescription>,

    /// Namespaced role names of the requester (any one suffices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,

    /// Cluster role names of the requester (any one suffices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_roles: Option<Vec<String>>,

    /// Users, groups or service accounts making the request (any one suffices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subjects: Option<Vec<Subject>>,
}

/// Admission operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum AdmissionOperation {
    /// Resource creation.
    Create,
    /// Connect requests (exec, attach, port-forward, proxy).
    Connect,
    /// Resource update.
    Update,
    /// Resource deletion.
    Delete,
}

/// Properties a resource must have. Names, namespaces and annotation keys/values accept the
/// wildcards `*` and `?`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceDescription {
    /// Kinds, as `Kind`, `group/version/Kind`, `version/Kind` or with a `/subresource` suffix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kinds: Option<Vec<String>>,

    /// Deprecated single name; use `names`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,

    /// Resource names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<Vec<String>>,

    /// Namespace names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<String>>,

    /// Annotations the resource must carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,

    /// Label selector on the resource; `matchLabels` accepts wildcards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,

    /// Label selector on the resource's namespace; `matchLabels` accepts wildcards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,

    /// Admission operations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operations: Option<Vec<AdmissionOperation>>,
}
