//! `mutate` rules: strategic merge patches, JSON patches, foreach and mutation of existing
//! resources (`targets`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::conditions::Conditions;
use super::context::ContextEntry;
use crate::crd::preserve_unknown_array_schema;

/// How matching (or target) resources are changed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Mutation {
    /// Also mutate existing targets when the policy is created or updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutate_existing_on_policy_update: Option<bool>,

    /// Existing resources to mutate instead of the admission request's resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<TargetResourceSpec>>,

    /// Strategic merge patch with Kyverno anchors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch_strategic_merge: Option<Value>,

    /// RFC 6902 JSON patch, as a YAML or JSON string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patches_json6902: Option<String>,

    /// Mutation of each element of a list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub foreach: Option<Vec<ForEachMutation>>,
}

/// Mutation applied to each element of the list selected by `list`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ForEachMutation {
    /// JMESPath expression selecting the list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<String>,

    /// Iteration order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<ForeachOrder>,

    /// Variables evaluated per element.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Vec<ContextEntry>>,

    /// Conditions deciding whether an element is mutated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preconditions: Option<Conditions>,

    /// Strategic merge patch applied per element.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch_strategic_merge: Option<Value>,

    /// JSON patch applied per element.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patches_json6902: Option<String>,

    /// Nested iteration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_array_schema")]
    pub foreach: Option<Vec<ForEachMutation>>,
}

/// Iteration order of a foreach list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ForeachOrder {
    /// First to last.
    Ascending,
    /// Last to first.
    Descending,
}

/// Identifies a resource by API version, kind, namespace, name and uid.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceSpec {
    /// API version, e.g. `v1` or `apps/v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,

    /// Kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,

    /// Namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,

    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,

    /// UID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

/// An existing resource (or set of resources) to mutate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetResourceSpec {
    /// API version, e.g. `v1` or `apps/v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,

    /// Kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,

    /// Namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,

    /// Name (wildcards allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,

    /// UID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,

    /// Label selector on targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,

    /// Variables evaluated per target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Vec<ContextEntry>>,

    /// Conditions deciding whether a target is mutated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preconditions: Option<Conditions>,
}
