//! `kyverno.io/v1`: [`ClusterPolicy`] (cluster-scoped) and [`Policy`] (namespaced), which share
//! [`PolicySpec`].

mod conditions;
mod context;
mod generate;
mod match_resources;
mod mutate;
mod validate;
mod verify_images;

use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::MatchCondition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition as StatusCondition, ObjectMeta};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use conditions::{AnyAllConditions, Condition, Conditions};
pub use context::{
    ApiCall, ConfigMapReference, ContextEntry, GlobalContextEntryReference, HttpHeader,
    ImageRegistry, ImageRegistryCredentials, Method, RegistryCredentialsProvider, RequestData,
    ServiceCall, Variable,
};
pub use generate::{CloneFrom, CloneList, ForEachGeneration, Generation};
pub use match_resources::{
    AdmissionOperation, MatchResources, ResourceDescription, ResourceFilter,
};
pub use mutate::{ForEachMutation, ForeachOrder, Mutation, ResourceSpec, TargetResourceSpec};
pub use validate::{
    Cel, Deny, DryRunOption, FailureAction, ForEachValidation, IgnoreFieldList, Manifests,
    ObjectFieldBinding, PodSecurity, PodSecurityLevel, PodSecurityStandard, Validation,
    ValidationFailureAction, ValidationFailureActionOverride,
};
pub use verify_images::{
    Attestation, Attestor, AttestorSet, CertificateAttestor, CtLog, ImageVerification,
    ImageVerificationType, KeylessAttestor, Rekor, SecretReference, StaticKeyAttestor,
    ValidateImageVerification,
};

/// API group of Kyverno policies.
pub const GROUP: &str = "kyverno.io";
/// API version served by this module.
pub const VERSION: &str = "v1";
/// `apiVersion` of the resources in this module.
pub const API_VERSION: &str = "kyverno.io/v1";

/// A cluster-wide policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(
    description = "ClusterPolicy declares validate, mutate, generate and verifyImages rules for resources in all namespaces."
)]
pub struct ClusterPolicy {
    /// `kyverno.io/v1` (also accepted: `kyverno.io/v2beta1`, which has the same shape).
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// `ClusterPolicy`.
    #[serde(default = "ClusterPolicy::default_kind")]
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Policy rules and settings.
    pub spec: PolicySpec,
    /// Runtime status written by the controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<PolicyStatus>,
}

/// A policy that applies to resources of its own namespace only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(
    description = "Policy declares validate, mutate, generate and verifyImages rules for resources in its own namespace."
)]
pub struct Policy {
    /// `kyverno.io/v1` (also accepted: `kyverno.io/v2beta1`, which has the same shape).
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// `Policy`.
    #[serde(default = "Policy::default_kind")]
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Policy rules and settings.
    pub spec: PolicySpec,
    /// Runtime status written by the controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<PolicyStatus>,
}

fn default_api_version() -> String {
    API_VERSION.to_owned()
}

impl ClusterPolicy {
    /// Kind of this resource.
    pub const KIND: &'static str = "ClusterPolicy";
    /// Plural resource name.
    pub const PLURAL: &'static str = "clusterpolicies";

    fn default_kind() -> String {
        Self::KIND.to_owned()
    }

    /// A policy named `name` with the given spec and no status.
    pub fn new(name: &str, spec: PolicySpec) -> Self {
        Self {
            api_version: default_api_version(),
            kind: Self::default_kind(),
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            spec,
            status: None,
        }
    }
}

impl Policy {
    /// Kind of this resource.
    pub const KIND: &'static str = "Policy";
    /// Plural resource name.
    pub const PLURAL: &'static str = "policies";

    fn default_kind() -> String {
        Self::KIND.to_owned()
    }

    /// A policy named `name` in `namespace` with the given spec and no status.
    pub fn new(namespace: &str, name: &str, spec: PolicySpec) -> Self {
        Self {
            api_version: default_api_version(),
            kind: Self::default_kind(),
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(namespace.to_owned()),
                ..ObjectMeta::default()
            },
            spec,
            status: None,
        }
    }
}

crate::impl_resource!(
    ClusterPolicy,
    GROUP,
    VERSION,
    ClusterPolicy::PLURAL,
    k8s_openapi::ClusterResourceScope
);
crate::impl_resource!(
    Policy,
    GROUP,
    VERSION,
    Policy::PLURAL,
    k8s_openapi::NamespaceResourceScope
);

impl kube::core::object::HasSpec for ClusterPolicy {
    type Spec = PolicySpec;
    fn spec(&self) -> &PolicySpec {
        &self.spec
    }
    fn spec_mut(&mut self) -> &mut PolicySpec {
        &mut self.spec
    }
}

impl kube::core::object::HasStatus for ClusterPolicy {
    type Status = PolicyStatus;
    fn status(&self) -> Option<&PolicyStatus> {
        self.status.as_ref()
    }
    fn status_mut(&mut self) -> &mut Option<PolicyStatus> {
        &mut self.status
    }
}

impl kube::core::object::HasSpec for Policy {
    type Spec = PolicySpec;
    fn spec(&self) -> &PolicySpec {
        &self.spec
    }
    fn spec_mut(&mut self) -> &mut PolicySpec {
        &mut self.spec
    }
}

impl kube::core::object::HasStatus for Policy {
    type Status = PolicyStatus;
    fn status(&self) -> Option<&PolicyStatus> {
        self.status.as_ref()
    }
    fn status_mut(&mut self) -> &mut Option<PolicyStatus> {
        &mut self.status
    }
}

/// Whether processing stops after the first rule that applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ApplyRules {
    /// Evaluate every rule (the default).
    All,
    /// Stop after the first rule that matches and yields a result.
    One,
}

/// What happens when the policy cannot be evaluated (errors, timeouts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum FailurePolicy {
    /// Allow the request.
    Ignore,
    /// Reject the request (the default).
    Fail,
}

/// Rules and settings of a [`ClusterPolicy`] or [`Policy`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicySpec {
    /// Rules, evaluated in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<Rule>>,

    /// `All` (default) or `One`: stop after the first rule that applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_rules: Option<ApplyRules>,

    /// Deprecated; use `webhookConfiguration.failurePolicy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_policy: Option<FailurePolicy>,

    /// Deprecated policy-wide failure action; rule-level `validate.failureAction` wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Audit"))]
    pub validation_failure_action: Option<ValidationFailureAction>,

    /// Deprecated per-namespace failure actions; use `validate.failureActionOverrides`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_failure_action_overrides: Option<Vec<ValidationFailureActionOverride>>,

    /// Return warnings for audit violations and mutations in admission responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = false))]
    pub emit_warning: Option<bool>,

    /// Apply the rules at admission (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub admission: Option<bool>,

    /// Apply the rules to existing resources in background scans (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub background: Option<bool>,

    /// Deprecated; ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_validation: Option<bool>,

    /// Deprecated; use `webhookConfiguration.timeoutSeconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_timeout_seconds: Option<i32>,

    /// Deprecated; use `mutate.mutateExistingOnPolicyUpdate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutate_existing_on_policy_update: Option<bool>,

    /// Deprecated; use `generate.generateExisting`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_existing_on_policy_update: Option<bool>,

    /// Deprecated; use `generate.generateExisting`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_existing: Option<bool>,

    /// Create and update generated resources with server-side apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_server_side_apply: Option<bool>,

    /// Admission webhook settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_configuration: Option<WebhookConfiguration>,
}

/// Admission webhook settings of a policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookConfiguration {
    /// What happens when the policy cannot be evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_policy: Option<FailurePolicy>,

    /// Webhook timeout, 1 to 30 seconds (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i32>,

    /// CEL conditions the request must satisfy to be sent to the webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_conditions: Option<Vec<MatchCondition>>,
}

/// Image extraction for custom resources: where images are found and how they are named.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageExtractorConfig {
    /// Slash-separated path to the object holding the image; `*` expands lists and maps.
    pub path: String,

    /// Field within `path` holding the image reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,

    /// Name under `images.<name>` in the context (`custom` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,

    /// Field within `path` that identifies the image uniquely.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,

    /// JMESPath expression applied to the extracted value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jmes_path: Option<String>,
}

/// One rule: what it matches, and the single action (validate, mutate, generate or
/// verifyImages) it performs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// Rule name, unique within the policy.
    #[schemars(length(max = 63))]
    pub name: String,

    /// Variables available to the rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Vec<ContextEntry>>,

    /// Resources and requesters the rule applies to.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_resources: Option<MatchResources>,

    /// Resources and requesters the rule does not apply to.
    #[serde(default, rename = "exclude", skip_serializing_if = "Option::is_none")]
    pub exclude_resources: Option<MatchResources>,

    /// Image extractors per kind, for verifyImages rules on custom resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_extractors: Option<BTreeMap<String, Vec<ImageExtractorConfig>>>,

    /// Conditions that must hold for the rule to apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preconditions: Option<Conditions>,

    /// CEL conditions that must hold for the rule to apply (validate.cel rules only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cel_preconditions: Option<Vec<MatchCondition>>,

    /// Mutation of matching resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutate: Option<Mutation>,

    /// Validation of matching resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validate: Option<Validation>,

    /// Generation of resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate: Option<Generation>,

    /// Image signature and attestation checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_images: Option<Vec<ImageVerification>>,

    /// Skip admission requests made by the background controller (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub skip_background_requests: Option<bool>,

    /// Extra properties copied into policy report results of this rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_properties: Option<BTreeMap<String, String>>,
}

/// Runtime status of a policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyStatus {
    /// Deprecated; use the `Ready` condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,

    /// Standard conditions; `Ready` tells whether the policy is in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<StatusCondition>>,

    /// Rules generated for Pod controllers (Deployment, CronJob, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autogen: Option<AutogenStatus>,

    /// Number of rules of each type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(rename = "rulecount")]
    pub rule_count: Option<RuleCountStatus>,

    /// ValidatingAdmissionPolicy generation status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(rename = "validatingadmissionpolicy")]
    pub validating_admission_policy: Option<ValidatingAdmissionPolicyStatus>,

    /// What evaluating this policy costs in admission, as bylaw measured it (not in Kyverno).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<EvaluationStatus>,

    /// What bylaw cannot carry out for the policy's generate and mutate-existing rules (not in
    /// Kyverno), e.g. a permission its service account lacks; absent when nothing is wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate: Option<GenerateStatus>,
}

/// Problems of a policy's generate and mutate-existing rules in the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GenerateStatus {
    /// What failed and how to fix it, e.g. `bylaw is not allowed to create
    /// networkpolicies.networking.k8s.io in namespace x`.
    pub message: String,
}

/// The measured admission cost of a policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EvaluationStatus {
    /// Mean time of one evaluation of this policy during admission, in microseconds, over the
    /// last minute in which it was evaluated. Updated when it moves by more than a quarter.
    pub average_microseconds: i64,
}

/// Rules generated for Pod controllers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutogenStatus {
    /// The generated rules. Written only by the controller, so the CRD does not repeat the
    /// full rule schema here (that would double the CRD's size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::crd::preserve_unknown_array_schema")]
    pub rules: Option<Vec<Rule>>,
}

/// Number of rules of each type.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuleCountStatus {
    /// Validate rules.
    pub validate: i64,
    /// Generate rules.
    pub generate: i64,
    /// Mutate rules.
    pub mutate: i64,
    /// VerifyImages rules.
    #[serde(rename = "verifyimages")]
    pub verify_images: i64,
}

/// ValidatingAdmissionPolicy generation status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidatingAdmissionPolicyStatus {
    /// Whether a ValidatingAdmissionPolicy was generated.
    pub generated: bool,
    /// Why generation failed; empty on success.
    pub message: String,
}

impl PolicySpec {
    /// The rules, or an empty slice.
    pub fn rules(&self) -> &[Rule] {
        self.rules.as_deref().unwrap_or_default()
    }

    /// Whether admission processing is on (default true).
    pub fn admission_enabled(&self) -> bool {
        self.admission.unwrap_or(true)
    }

    /// Whether background processing is on (default true).
    pub fn background_enabled(&self) -> bool {
        self.background.unwrap_or(true)
    }

    /// Failure policy: `webhookConfiguration.failurePolicy`, then the deprecated
    /// `failurePolicy`, then `Fail`.
    pub fn effective_failure_policy(&self) -> FailurePolicy {
        self.webhook_configuration
            .as_ref()
            .and_then(|webhook| webhook.failure_policy)
            .or(self.failure_policy)
            .unwrap_or(FailurePolicy::Fail)
    }
}
