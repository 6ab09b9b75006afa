//! `validate` rules: patterns, deny conditions, foreach, Pod Security, CEL and manifests.

use k8s_openapi::api::admissionregistration::v1 as admissionregistration;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::conditions::Conditions;
use super::context::ContextEntry;
use super::verify_images::AttestorSet;
use crate::crd::{preserve_unknown_array_schema, preserve_unknown_object_schema};

/// What a failed validation does at admission: block the request or only report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum FailureAction {
    /// Allow the request and report the violation.
    Audit,
    /// Block the request.
    Enforce,
}

/// Policy-level failure action, which also accepts the deprecated lower-case spellings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ValidationFailureAction {
    /// Allow the request and report the violation.
    Audit,
    /// Block the request.
    Enforce,
    /// Deprecated spelling of `Audit`.
    #[serde(rename = "audit")]
    LegacyAudit,
    /// Deprecated spelling of `Enforce`.
    #[serde(rename = "enforce")]
    LegacyEnforce,
}

impl ValidationFailureAction {
    /// Whether violations block the request.
    pub fn is_enforce(self) -> bool {
        matches!(self, Self::Enforce | Self::LegacyEnforce)
    }
}

impl From<FailureAction> for ValidationFailureAction {
    fn from(action: FailureAction) -> Self {
        match action {
            FailureAction::Audit => Self::Audit,
            FailureAction::Enforce => Self::Enforce,
        }
    }
}

/// A failure action that applies to selected namespaces only.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidationFailureActionOverride {
    /// Action for the selected namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<ValidationFailureAction>,

    /// Namespace names (wildcards allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<String>>,

    /// Label selector on namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
}

/// Checks applied to matching resources. Exactly one of `pattern`, `anyPattern`, `deny`,
/// `foreach`, `podSecurity`, `cel`, `manifests` or `assert` is expected.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Validation {
    /// Message reported on failure; may contain variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,

    /// Rule-level failure action; takes precedence over `spec.validationFailureAction`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_action: Option<FailureAction>,

    /// Rule-level per-namespace failure actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_action_overrides: Option<Vec<ValidationFailureActionOverride>>,

    /// Let resources that already violate the rule keep being updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub allow_existing_violations: Option<bool>,

    /// Overlay-style pattern the resource must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<Value>,

    /// Patterns of which at least one must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub any_pattern: Option<Value>,

    /// Conditions that, when they hold, fail the rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny: Option<Deny>,

    /// Validation of each element of a list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub foreach: Option<Vec<ForEachValidation>>,

    /// Pod Security Standards check with optional exemptions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_security: Option<PodSecurity>,

    /// CEL expressions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cel: Option<Cel>,

    /// Signed-manifest verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifests: Option<Manifests>,

    /// kyverno-json assertion tree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_object_schema")]
    pub assert: Option<Value>,
}

/// A `deny` block.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Deny {
    /// Conditions that fail the rule when they hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Conditions>,
}

/// Validation applied to each element of the list selected by `list`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ForEachValidation {
    /// JMESPath expression selecting the list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<String>,

    /// Whether patterns apply to the element (default) or to the whole resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub element_scope: Option<bool>,

    /// Variables evaluated per element.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Vec<ContextEntry>>,

    /// Conditions deciding whether an element is checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preconditions: Option<Conditions>,

    /// Pattern each element must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<Value>,

    /// Patterns of which each element must match at least one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub any_pattern: Option<Value>,

    /// Conditions that fail the element when they hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny: Option<Deny>,

    /// Nested iteration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_array_schema")]
    pub foreach: Option<Vec<ForEachValidation>>,
}

/// Pod Security Standards level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PodSecurityLevel {
    /// No restrictions.
    Privileged,
    /// Prevents known privilege escalations.
    Baseline,
    /// Hardening best practices.
    Restricted,
}

/// A Pod Security Standards check.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodSecurity {
    /// Level to enforce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<PodSecurityLevel>,

    /// Standards version, e.g. `v1.29` or `latest` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,

    /// Controls exempted from the check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<Vec<PodSecurityStandard>>,
}

/// An exemption from one Pod Security Standards control.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodSecurityStandard {
    /// Control name, e.g. `Capabilities` or `Host Namespaces`.
    pub control_name: String,

    /// Images of the containers the exemption applies to (wildcards allowed); container-level
    /// controls only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<Vec<String>>,

    /// Field of the control the exemption is limited to, e.g. `spec.containers[*].ports[*].hostPort`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restricted_field: Option<String>,

    /// Values of `restrictedField` that are allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
}

/// CEL validation, shaped like a ValidatingAdmissionPolicy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Cel {
    /// Whether to generate a ValidatingAdmissionPolicy from this rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = false))]
    pub generate: Option<bool>,

    /// Expressions that must all evaluate to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expressions: Option<Vec<admissionregistration::Validation>>,

    /// Kind of the parameter resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param_kind: Option<admissionregistration::ParamKind>,

    /// Which parameter resource to use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param_ref: Option<admissionregistration::ParamRef>,

    /// Expressions producing audit annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_annotations: Option<Vec<admissionregistration::AuditAnnotation>>,

    /// Named expressions usable as `variables.<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variables: Option<Vec<admissionregistration::Variable>>,
}

/// Verification of signed resource manifests.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Manifests {
    /// Required signers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestors: Option<Vec<AttestorSet>>,

    /// Annotation domain of the message and signature (default `cosign.sigstore.dev`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotation_domain: Option<String>,

    /// Fields ignored when comparing manifests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_fields: Option<Vec<IgnoreFieldList>>,

    /// Dry-run settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<DryRunOption>,

    /// Alternate OCI repository of the resource bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
}

/// Fields to ignore on selected objects.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IgnoreFieldList {
    /// Objects the fields belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<Vec<ObjectFieldBinding>>,

    /// Field paths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
}

/// Identifies objects by group, version, kind, namespace and name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectFieldBinding {
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
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Dry-run settings for manifest verification.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DryRunOption {
    /// Enable dry-run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable: Option<bool>,
    /// Namespace used for dry-run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}
