//! `kyverno.io/v2`: [`PolicyException`].

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::v1::{AnyAllConditions, PodSecurityStandard, ResourceFilter};

/// API version served by this module.
pub const VERSION: &str = "v2";
/// `apiVersion` of the resources in this module.
pub const API_VERSION: &str = "kyverno.io/v2";

/// Exempts matching resources from selected rules of selected policies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(description = "PolicyException exempts matching resources from selected policy rules.")]
pub struct PolicyException {
    /// `kyverno.io/v2` (also accepted: `kyverno.io/v2beta1`, which has the same shape).
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// `PolicyException`.
    #[serde(default = "PolicyException::default_kind")]
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What is exempted.
    pub spec: PolicyExceptionSpec,
}

fn default_api_version() -> String {
    API_VERSION.to_owned()
}

impl PolicyException {
    /// Kind of this resource.
    pub const KIND: &'static str = "PolicyException";
    /// Plural resource name.
    pub const PLURAL: &'static str = "policyexceptions";

    fn default_kind() -> String {
        Self::KIND.to_owned()
    }

    /// An exception named `name` in `namespace`.
    pub fn new(namespace: &str, name: &str, spec: PolicyExceptionSpec) -> Self {
        Self {
            api_version: default_api_version(),
            kind: Self::default_kind(),
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(namespace.to_owned()),
                ..ObjectMeta::default()
            },
            spec,
        }
    }
}

crate::impl_resource!(
    PolicyException,
    super::v1::GROUP,
    VERSION,
    PolicyException::PLURAL,
    k8s_openapi::NamespaceResourceScope
);

impl kube::core::object::HasSpec for PolicyException {
    type Spec = PolicyExceptionSpec;
    fn spec(&self) -> &PolicyExceptionSpec {
        &self.spec
    }
    fn spec_mut(&mut self) -> &mut PolicyExceptionSpec {
        &mut self.spec
    }
}

/// Which resources are exempted, from which rules.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyExceptionSpec {
    /// Apply the exception in background scans too (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background: Option<bool>,

    /// Resources the exception applies to.
    #[serde(rename = "match")]
    pub match_resources: ExceptionMatch,

    /// Conditions that must hold for the exception to apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<AnyAllConditions>,

    /// Exempted policies and rules.
    pub exceptions: Vec<Exception>,

    /// Pod Security Standards controls exempted (for `validate.podSecurity` rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_security: Option<Vec<PodSecurityStandard>>,
}

/// Resource selection of an exception: `any` filters are ORed, `all` filters are ANDed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExceptionMatch {
    /// Filters of which at least one must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub any: Option<Vec<ResourceFilter>>,

    /// Filters of which every one must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<Vec<ResourceFilter>>,
}

/// A policy and the rules of it that are exempted.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Exception {
    /// Policy name; `<namespace>/<name>` for a namespaced Policy.
    pub policy_name: String,

    /// Rule names (wildcards allowed); autogen rule names such as `autogen-<rule>` included.
    pub rule_names: Vec<String>,
}
