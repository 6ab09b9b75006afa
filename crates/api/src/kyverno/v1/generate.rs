//! `generate` rules: create resources from inline data or by cloning.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::conditions::Conditions;
use super::context::ContextEntry;

/// A resource to generate, from `data` or from a `clone`/`cloneList` source.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Generation {
    /// Also generate for resources that existed before the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_existing: Option<bool>,

    /// Keep generated resources in sync with the policy or the clone source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synchronize: Option<bool>,

    /// Keep generated resources when the rule is deleted (data rules with synchronize only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orphan_downstream_on_policy_delete: Option<bool>,

    /// API version of the generated resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,

    /// Kind of the generated resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,

    /// Namespace of the generated resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,

    /// Name of the generated resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,

    /// UID of the generated resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,

    /// Content of the generated resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,

    /// Single resource to copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone: Option<CloneFrom>,

    /// Set of resources to copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone_list: Option<CloneList>,

    /// Generation per element of a list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub foreach: Option<Vec<ForEachGeneration>>,
}

/// Source resource of a clone.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloneFrom {
    /// Source namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,

    /// Source name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Source resources of a multi-clone.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloneList {
    /// Source namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,

    /// Source kinds, as `apiVersion/Kind`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kinds: Option<Vec<String>>,

    /// Label selector on sources (no wildcards).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// Generation applied to each element of the list selected by `list`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ForEachGeneration {
    /// JMESPath expression selecting the list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<String>,

    /// Variables evaluated per element.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Vec<ContextEntry>>,

    /// Conditions deciding whether an element generates a resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preconditions: Option<Conditions>,

    /// API version of the generated resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,

    /// Kind of the generated resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,

    /// Namespace of the generated resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,

    /// Name of the generated resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,

    /// UID of the generated resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,

    /// Content of the generated resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,

    /// Single resource to copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone: Option<CloneFrom>,

    /// Set of resources to copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone_list: Option<CloneList>,
}
