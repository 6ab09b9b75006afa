//! `wgpolicyk8s.io/v1alpha2`: [`PolicyReport`] (namespaced) and [`ClusterPolicyReport`].

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of policy reports.
pub const GROUP: &str = "wgpolicyk8s.io";
/// API version served by this module.
pub const VERSION: &str = "v1alpha2";
/// `apiVersion` of the resources in this module.
pub const API_VERSION: &str = "wgpolicyk8s.io/v1alpha2";

fn is_zero(value: &i32) -> bool {
    *value == 0
}

fn default_api_version() -> String {
    API_VERSION.to_owned()
}

/// Policy results for resources of one namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(description = "PolicyReport holds policy results for namespaced resources.")]
pub struct PolicyReport {
    /// `wgpolicyk8s.io/v1alpha2`.
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// `PolicyReport`.
    #[serde(default = "PolicyReport::default_kind")]
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The resource the report is about, when it covers a single resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<ObjectReference>,
    /// Selector of the resources the report is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_selector: Option<LabelSelector>,
    /// Number of results per outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<PolicyReportSummary>,
    /// Individual results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results: Option<Vec<PolicyReportResult>>,
}

/// Policy results for cluster-scoped resources.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(description = "ClusterPolicyReport holds policy results for cluster-scoped resources.")]
pub struct ClusterPolicyReport {
    /// `wgpolicyk8s.io/v1alpha2`.
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// `ClusterPolicyReport`.
    #[serde(default = "ClusterPolicyReport::default_kind")]
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The resource the report is about, when it covers a single resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<ObjectReference>,
    /// Selector of the resources the report is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_selector: Option<LabelSelector>,
    /// Number of results per outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<PolicyReportSummary>,
    /// Individual results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results: Option<Vec<PolicyReportResult>>,
}

impl PolicyReport {
    /// Kind of this resource.
    pub const KIND: &'static str = "PolicyReport";
    /// Plural resource name.
    pub const PLURAL: &'static str = "policyreports";

    fn default_kind() -> String {
        Self::KIND.to_owned()
    }
}

impl ClusterPolicyReport {
    /// Kind of this resource.
    pub const KIND: &'static str = "ClusterPolicyReport";
    /// Plural resource name.
    pub const PLURAL: &'static str = "clusterpolicyreports";

    fn default_kind() -> String {
        Self::KIND.to_owned()
    }
}

crate::impl_resource!(
    PolicyReport,
    GROUP,
    VERSION,
    PolicyReport::PLURAL,
    k8s_openapi::NamespaceResourceScope
);
crate::impl_resource!(
    ClusterPolicyReport,
    GROUP,
    VERSION,
    ClusterPolicyReport::PLURAL,
    k8s_openapi::ClusterResourceScope
);

/// Number of results per outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyReportSummary {
    /// Results that passed.
    #[serde(default)]
    pub pass: i64,
    /// Results that failed.
    #[serde(default)]
    pub fail: i64,
    /// Failed results of rules configured to warn.
    #[serde(default)]
    pub warn: i64,
    /// Results that could not be evaluated.
    #[serde(default)]
    pub error: i64,
    /// Results that were skipped (e.g. preconditions not met).
    #[serde(default)]
    pub skip: i64,
}

/// Outcome of evaluating one rule against one resource.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum PolicyResult {
    /// The resource satisfies the rule.
    Pass,
    /// The resource violates the rule.
    Fail,
    /// The resource violates a rule configured to warn.
    Warn,
    /// The rule could not be evaluated.
    Error,
    /// The rule did not apply.
    Skip,
}

impl PolicyResult {
    /// The lower-case name used in reports and test files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::Warn => "warn",
            Self::Error => "error",
            Self::Skip => "skip",
        }
    }
}

impl std::fmt::Display for PolicyResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Severity of a result.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Critical.
    Critical,
    /// High.
    High,
    /// Medium.
    Medium,
    /// Low.
    Low,
    /// Informational.
    Info,
}

/// A point in time as seconds and nanoseconds since the Unix epoch.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    #[serde(default)]
    pub seconds: i64,
    /// Nanoseconds within the second (left out when zero, as reports write whole seconds).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub nanos: i32,
}

/// One result of a report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyReportResult {
    /// Engine that produced the result (`kyverno` for compatibility with Kyverno tooling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Policy name; `<namespace>/<name>` for a namespaced Policy.
    pub policy: String,
    /// Rule name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Policy category (from the `policies.kyverno.io/category` annotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Policy severity (from the `policies.kyverno.io/severity` annotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// When the result was produced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Timestamp>,
    /// Outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<PolicyResult>,
    /// Whether the result counts towards a score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scored: Option<bool>,
    /// Human-readable explanation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Resources the result is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<ObjectReference>>,
    /// Selector of the resources the result is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_selector: Option<LabelSelector>,
    /// Extra key/value data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<BTreeMap<String, String>>,
}
