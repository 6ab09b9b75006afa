//! `cli.kyverno.io/v1alpha1` inputs of `bylaw test` / `bylaw apply`: [`Test`] (kyverno-test.yaml),
//! [`Values`] (variables file), [`UserInfo`] and [`Context`].
//!
//! These are files, not cluster resources. Kyverno reads them with Go's JSON rules, so keys match
//! field names case-insensitively; decode them with [`decode`] (or the `from_value` helpers of
//! each type) to get the same behaviour. Serialisation always writes the canonical names.

mod fold;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::policyreport::PolicyResult;
use crate::yaml::{path_error, within_depth, DecodeError};

/// API group of the CLI input files.
pub const GROUP: &str = "cli.kyverno.io";
/// `apiVersion` of the CLI input files.
pub const API_VERSION: &str = "cli.kyverno.io/v1alpha1";

/// Decodes a CLI input document, matching keys to field names case-insensitively like Kyverno.
/// The error names the path of the offending field.
pub fn decode<T: DeserializeOwned>(value: Value) -> Result<T, DecodeError> {
    let value = within_depth(value)?;
    serde_path_to_error::deserialize(fold::CaseFolding(value)).map_err(path_error)
}

/// A test suite (`kyverno-test.yaml`): inputs to load and results to expect. The legacy form has
/// no `apiVersion`/`kind` and a top-level `name`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Test {
    /// `cli.kyverno.io/v1alpha1` (absent in the legacy form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// `Test` (absent in the legacy form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Standard metadata; `metadata.name` names the test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ObjectMeta>,
    /// Legacy test name; use `metadata.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Policy files (or URLs), relative to the test file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<Vec<String>>,
    /// Resource files, relative to the test file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<String>>,
    /// Deprecated single JSON payload file; use `jsonPayloads`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_payload: Option<String>,
    /// JSON payload files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_payloads: Option<Vec<String>>,
    /// Existing resources targeted by mutate-existing rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_resources: Option<Vec<String>>,
    /// Values file (a [`Values`] document).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variables: Option<String>,
    /// Parameter resources of (Validating|Mutating)AdmissionPolicies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param_resources: Option<Vec<String>>,
    /// User info file (a [`UserInfo`] document).
    #[serde(default, rename = "userinfo", skip_serializing_if = "Option::is_none")]
    pub user_info: Option<String>,
    /// Expected results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results: Option<Vec<TestResult>>,
    /// Assertions on engine responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks: Option<Vec<CheckResult>>,
    /// Inline values (same shape as a values file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<ValuesSpec>,
    /// PolicyException files.
    #[serde(
        default,
        rename = "exceptions",
        skip_serializing_if = "Option::is_none"
    )]
    pub policy_exceptions: Option<Vec<String>>,
    /// Context file (a [`Context`] document) for CEL policies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Resource files loaded as if they existed in the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_resources: Option<Vec<String>>,
}

impl Test {
    /// Decodes a test document with Kyverno's case-insensitive key matching.
    pub fn from_value(value: Value) -> Result<Self, DecodeError> {
        decode(value)
    }

    /// Name of the test: `metadata.name`, else the legacy `name`.
    pub fn test_name(&self) -> Option<&str> {
        self.metadata
            .as_ref()
            .and_then(|m| m.name.as_deref())
            .or(self.name.as_deref())
    }
}

/// An expected result: policy/rule × resources → pass, fail, warn, error or skip.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestResult {
    /// Policy name; `<namespace>/<name>` for a namespaced Policy.
    pub policy: String,
    /// Rule name (Kyverno policies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Expected outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<PolicyResult>,
    /// Deprecated spelling of `result`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<PolicyResult>,
    /// Kind of the resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Resource names, as `name` or `namespace/name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<String>>,
    /// Resources identified by group, version, kind, namespace, subresource and name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_specs: Option<Vec<TestResourceSpec>>,
    /// Deprecated single resource name; use `resources`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Deprecated namespace of the policy; use `<namespace>/<name>` names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Deprecated file with the expected mutated resource; use `patchedResources`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patched_resource: Option<String>,
    /// File with the expected mutated resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patched_resources: Option<String>,
    /// File with the expected generated resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_resource: Option<String>,
    /// File with the source resource of a clone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone_source_resource: Option<String>,
    /// The policy is a ValidatingAdmissionPolicy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_validating_admission_policy: Option<bool>,
    /// The policy is a MutatingAdmissionPolicy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_mutating_admission_policy: Option<bool>,
    /// The policy is a `policies.kyverno.io` ValidatingPolicy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_validating_policy: Option<bool>,
    /// The policy is a `policies.kyverno.io` MutatingPolicy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_mutating_policy: Option<bool>,
    /// The policy is a `policies.kyverno.io` GeneratingPolicy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_generating_policy: Option<bool>,
    /// The policy is a `policies.kyverno.io` ImageValidatingPolicy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_image_validating_policy: Option<bool>,
    /// The policy is a `policies.kyverno.io` DeletingPolicy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_deleting_policy: Option<bool>,
}

impl TestResult {
    /// Expected outcome: `result`, else the deprecated `status`.
    pub fn expected(&self) -> Option<PolicyResult> {
        self.result.or(self.status)
    }
}

/// A resource identified by its coordinates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestResourceSpec {
    /// API group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// API version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subresource: Option<String>,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// An assertion on the engine responses selected by `match`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckResult {
    /// Which responses the check applies to.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_responses: Option<CheckMatch>,
    /// kyverno-json assertion that must hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assert: Option<Value>,
    /// kyverno-json assertion that must fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

/// Selection of engine responses for a check (kyverno-json assertion trees).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckMatch {
    /// Filter on the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Value>,
    /// Filter on the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Value>,
    /// Filter on the rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<Value>,
}

/// A values file: variable values for policies, rules and resources, namespace labels and
/// subresource mappings. Kyverno reads it whatever its `kind` says (`Values` or `Value`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Values {
    /// `cli.kyverno.io/v1alpha1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// `Values`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Standard metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ObjectMeta>,
    /// Variables available to every policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_values: Option<Map<String, Value>>,
    /// Per-policy values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<Vec<PolicyValues>>,
    /// Labels of namespaces, for `namespaceSelector` matching.
    #[serde(
        default,
        rename = "namespaceSelector",
        skip_serializing_if = "Option::is_none"
    )]
    pub namespace_selectors: Option<Vec<NamespaceSelector>>,
    /// Subresource to parent resource mappings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subresources: Option<Vec<Subresource>>,
    /// Namespace objects, for `namespaceSelector` matching and `namespaceObject` in CEL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<Value>>,
}

impl Values {
    /// Decodes a values document with Kyverno's case-insensitive key matching.
    pub fn from_value(value: Value) -> Result<Self, DecodeError> {
        decode(value)
    }
}

/// Values given inline in a test (the body of a values file).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValuesSpec {
    /// Variables available to every policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_values: Option<Map<String, Value>>,
    /// Per-policy values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<Vec<PolicyValues>>,
    /// Labels of namespaces, for `namespaceSelector` matching.
    #[serde(
        default,
        rename = "namespaceSelector",
        skip_serializing_if = "Option::is_none"
    )]
    pub namespace_selectors: Option<Vec<NamespaceSelector>>,
    /// Subresource to parent resource mappings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subresources: Option<Vec<Subresource>>,
    /// Namespace objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<Value>>,
}

/// Values for one policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyValues {
    /// Policy name.
    pub name: String,
    /// Values per resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<ResourceValues>>,
    /// Values per rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<RuleValues>>,
}

/// Variable values for one resource.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceValues {
    /// Resource name.
    pub name: String,
    /// Variable name → value (names may be dotted paths such as `request.operation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Map<String, Value>>,
}

/// Variable values for one rule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleValues {
    /// Rule name.
    pub name: String,
    /// Variable name → value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Map<String, Value>>,
    /// Foreach variable name → one value per iteration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub foreach_values: Option<BTreeMap<String, Vec<Value>>>,
}

/// Labels of a namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceSelector {
    /// Namespace name.
    pub name: String,
    /// Its labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

/// Mapping of a subresource to its parent resource.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subresource {
    /// The subresource API (e.g. `deployments/scale`).
    pub subresource: ApiResource,
    /// The parent resource API (e.g. `deployments`).
    pub parent_resource: ApiResource,
}

/// An API resource description (a lenient `metav1.APIResource`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiResource {
    /// Plural resource name, with `/subresource` for subresources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Singular name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub singular_name: Option<String>,
    /// Whether the resource is namespaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaced: Option<bool>,
    /// API group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// API version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Supported verbs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verbs: Option<Vec<String>>,
    /// Short names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_names: Option<Vec<String>>,
    /// Categories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<String>>,
    /// Storage version hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_version_hash: Option<String>,
}

/// The requester of simulated admission requests: roles, cluster roles and user identity.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserInfo {
    /// `cli.kyverno.io/v1alpha1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// `UserInfo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Standard metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ObjectMeta>,
    /// Namespaced roles of the requester, as `namespace:role`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    /// Cluster roles of the requester.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_roles: Option<Vec<String>>,
    /// Identity of the requester.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_info: Option<k8s_openapi::api::authentication::v1::UserInfo>,
}

impl UserInfo {
    /// Decodes a user-info document with Kyverno's case-insensitive key matching.
    pub fn from_value(value: Value) -> Result<Self, DecodeError> {
        decode(value)
    }
}

/// Cluster data for CEL policies under test: existing resources and image metadata.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Context {
    /// `cli.kyverno.io/v1alpha1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// `Context`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Standard metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ObjectMeta>,
    /// The data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<ContextSpec>,
}

impl Context {
    /// Decodes a context document with Kyverno's case-insensitive key matching.
    pub fn from_value(value: Value) -> Result<Self, DecodeError> {
        decode(value)
    }
}

/// Body of a [`Context`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContextSpec {
    /// Resources that exist in the simulated cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<Value>>,
    /// Image metadata returned by simulated registry lookups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<Vec<ImageData>>,
}

/// Metadata of one image.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageData {
    /// Image reference as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Fully resolved reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_image: Option<String>,
    /// Registry host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// Repository path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// OCI image index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_index: Option<Value>,
    /// OCI manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Value>,
    /// OCI image config.
    #[serde(default, rename = "config", skip_serializing_if = "Option::is_none")]
    pub config_data: Option<Value>,
}
