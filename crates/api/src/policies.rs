//! `policies.kyverno.io/v1`: the CEL policy kinds bylaw evaluates — [`ValidatingPolicy`]
//! (cluster-wide) and [`NamespacedValidatingPolicy`]. Their spec extends Kubernetes'
//! ValidatingAdmissionPolicy; the CEL parts reuse its types.

use k8s_openapi::api::admissionregistration::v1::{
    AuditAnnotation, MatchCondition, MatchResources, Validation, Variable,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of the resources in this module.
pub const GROUP: &str = "policies.kyverno.io";
/// API version served and stored.
pub const VERSION: &str = "v1";
/// Older versions with the same shape, still served.
pub const LEGACY_VERSIONS: &[&str] = &["v1beta1", "v1alpha1"];
/// `apiVersion` of the resources in this module.
pub const API_VERSION: &str = "policies.kyverno.io/v1";

fn default_api_version() -> String {
    API_VERSION.to_owned()
}

/// A cluster-wide CEL validation policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(description = "ValidatingPolicy validates resources with CEL expressions.")]
pub struct ValidatingPolicy {
    /// `policies.kyverno.io/v1` (`v1beta1` and `v1alpha1` have the same shape).
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// `ValidatingPolicy`.
    #[serde(default = "ValidatingPolicy::default_kind")]
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What is validated and how.
    pub spec: ValidatingPolicySpec,
    /// Readiness, set by bylaw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ValidatingPolicyStatus>,
}

impl ValidatingPolicy {
    /// Kind of this resource.
    pub const KIND: &'static str = "ValidatingPolicy";
    /// Plural resource name.
    pub const PLURAL: &'static str = "validatingpolicies";

    fn default_kind() -> String {
        Self::KIND.to_owned()
    }
}

/// A CEL validation policy confined to its namespace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(
    description = "NamespacedValidatingPolicy validates resources of its namespace with CEL expressions."
)]
pub struct NamespacedValidatingPolicy {
    /// `policies.kyverno.io/v1` (`v1beta1` and `v1alpha1` have the same shape).
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// `NamespacedValidatingPolicy`.
    #[serde(default = "NamespacedValidatingPolicy::default_kind")]
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What is validated and how.
    pub spec: ValidatingPolicySpec,
    /// Readiness, set by bylaw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ValidatingPolicyStatus>,
}

impl NamespacedValidatingPolicy {
    /// Kind of this resource.
    pub const KIND: &'static str = "NamespacedValidatingPolicy";
    /// Plural resource name.
    pub const PLURAL: &'static str = "namespacedvalidatingpolicies";

    fn default_kind() -> String {
        Self::KIND.to_owned()
    }
}

crate::impl_resource!(
    ValidatingPolicy,
    GROUP,
    VERSION,
    ValidatingPolicy::PLURAL,
    k8s_openapi::ClusterResourceScope
);

crate::impl_resource!(
    NamespacedValidatingPolicy,
    GROUP,
    VERSION,
    NamespacedValidatingPolicy::PLURAL,
    k8s_openapi::NamespaceResourceScope
);

/// The spec of both validating policy kinds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidatingPolicySpec {
    /// Resources the policy applies to (by group, version, resource and operation, with
    /// namespace and object selectors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_constraints: Option<MatchResources>,

    /// CEL conditions a request must meet to be validated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_conditions: Option<Vec<MatchCondition>>,

    /// Named expressions usable as `variables.<name>`, evaluated lazily.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variables: Option<Vec<Variable>>,

    /// Expressions that must all evaluate to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validations: Option<Vec<Validation>>,

    /// Expressions producing audit annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_annotations: Option<Vec<AuditAnnotation>>,

    /// What a failed validation does: `Deny`, `Audit`, `Warn` (default `Audit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_actions: Option<Vec<String>>,

    /// What happens when the policy cannot be evaluated: `Fail` (default) or `Ignore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_policy: Option<String>,

    /// Where the policy runs (admission, background) and on what (`Kubernetes` or `JSON`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<EvaluationConfiguration>,

    /// Rules generated for Pod controllers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autogen: Option<AutogenConfiguration>,

    /// Webhook settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_configuration: Option<WebhookConfiguration>,
}

/// `spec.evaluation`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EvaluationConfiguration {
    /// `Kubernetes` (default) or `JSON`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Evaluation at admission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admission: Option<Toggle>,
    /// Evaluation in background scans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background: Option<Toggle>,
}

/// An `enabled` switch (default true).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Toggle {
    /// Whether it is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// `spec.autogen`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutogenConfiguration {
    /// Pod controllers to generate rules for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_controllers: Option<PodControllers>,
    /// Whether to generate a ValidatingAdmissionPolicy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validating_admission_policy: Option<Toggle>,
}

/// `spec.autogen.podControllers`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodControllers {
    /// Controller resources (`deployments`, `cronjobs`, …); all of them when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controllers: Option<Vec<String>>,
}

/// `spec.webhookConfiguration`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookConfiguration {
    /// Webhook timeout in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i32>,
}

/// Status of a validating policy, in Kyverno's shape for the `policies.kyverno.io` kinds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidatingPolicyStatus {
    /// Readiness: the `Ready` condition and its summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition_status: Option<ConditionStatus>,
    /// What autogen derived from the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::crd::preserve_unknown_object_schema")]
    pub autogen: Option<serde_json::Value>,
    /// Whether a ValidatingAdmissionPolicy was generated from the policy (never, by bylaw).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated: Option<bool>,
    /// Beyond Kyverno: the measured admission cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<crate::EvaluationStatus>,
}

/// Readiness of a `policies.kyverno.io` policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConditionStatus {
    /// Whether the policy is served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    /// Exactly one condition of type `Ready`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    /// Why the policy is not ready, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_policies_decode() {
        let doc = serde_json::json!({
            "apiVersion": "policies.kyverno.io/v1alpha1",
            "kind": "ValidatingPolicy",
            "metadata": {"name": "disallow-latest-tag"},
            "spec": {
                "validationActions": ["Audit"],
                "evaluation": {"background": {"enabled": false}},
                "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                    "operations": ["CREATE", "UPDATE"], "resources": ["pods"]}]},
                "variables": [{"name": "containers", "expression": "object.spec.containers"}],
                "validations": [{"expression": "variables.containers.all(c, c.image.contains(':'))",
                    "message": "An image tag is required."}]
            }
        });
        let policy: ValidatingPolicy = serde_json::from_value(doc).unwrap();
        assert_eq!(policy.spec.validations.as_ref().map(Vec::len), Some(1));
        assert_eq!(
            policy
                .spec
                .evaluation
                .and_then(|e| e.background)
                .and_then(|b| b.enabled),
            Some(false)
        );
    }
}
