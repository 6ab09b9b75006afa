//! What evaluation yields: outcomes are data (pass, fail, warn, error, skip), never `Err`.

use serde::Serialize;

/// The outcome of one rule on one resource, with Kyverno's meaning of each status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleStatus {
    /// The resource satisfies the rule.
    Pass,
    /// The resource violates the rule.
    Fail,
    /// A violation of a rule whose policy is not scored (`policies.kyverno.io/scored: "false"`).
    Warn,
    /// The rule could not be evaluated (bad variable, failed context lookup, …).
    Error,
    /// The rule did not apply (preconditions unmet, conditional anchor, exception, …).
    Skip,
}

impl RuleStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleStatus::Pass => "pass",
            RuleStatus::Fail => "fail",
            RuleStatus::Warn => "warn",
            RuleStatus::Error => "error",
            RuleStatus::Skip => "skip",
        }
    }
}

impl std::fmt::Display for RuleStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of rule that produced a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RuleType {
    Validation,
    Mutation,
    Generation,
    ImageVerify,
}

impl RuleType {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleType::Validation => "Validation",
            RuleType::Mutation => "Mutation",
            RuleType::Generation => "Generation",
            RuleType::ImageVerify => "ImageVerify",
        }
    }
}

/// Enforce blocks a failing request at admission; Audit only reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum FailureAction {
    Audit,
    Enforce,
}

impl FailureAction {
    /// Kyverno accepts `Enforce`/`Audit` in any case (and the old `enforce`/`audit`).
    pub fn parse(text: &str) -> Option<FailureAction> {
        match text.to_ascii_lowercase().as_str() {
            "enforce" => Some(FailureAction::Enforce),
            "audit" => Some(FailureAction::Audit),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FailureAction::Audit => "Audit",
            FailureAction::Enforce => "Enforce",
        }
    }
}

/// One rule's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleResponse {
    /// Shared with the compiled rule: every review answers with each rule's name.
    pub name: std::sync::Arc<str>,
    pub rule_type: RuleType,
    pub status: RuleStatus,
    pub message: String,
    /// For failures: the JSON path of the offending field, when one is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The PolicyException that turned this rule into a skip, as `namespace/name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exception: Option<String>,
    /// What bylaw adds to Kyverno's `message` for people: what was found and what was wanted
    /// (`got "nginx:latest", want "!*:latest"`), the foreach element. Shown by
    /// [`MessageFormat::Bylaw`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// How a rule's message is shown: with bylaw's detail (the default), or exactly as Kyverno
/// writes it, for tools that match Kyverno's text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum MessageFormat {
    #[default]
    Bylaw,
    Kyverno,
}

impl MessageFormat {
    /// `kyverno` or `bylaw`.
    pub fn parse(text: &str) -> Option<MessageFormat> {
        match text {
            "bylaw" => Some(MessageFormat::Bylaw),
            "kyverno" => Some(MessageFormat::Kyverno),
            _ => None,
        }
    }
}

impl RuleResponse {
    /// A response named after a compiled rule, sharing its name.
    pub fn new(
        name: &std::sync::Arc<str>,
        rule_type: RuleType,
        status: RuleStatus,
        message: String,
    ) -> Self {
        Self::named(std::sync::Arc::clone(name), rule_type, status, message)
    }

    /// A response whose name is not a compiled rule's (generated rules, tests).
    pub fn named(
        name: std::sync::Arc<str>,
        rule_type: RuleType,
        status: RuleStatus,
        message: String,
    ) -> Self {
        RuleResponse {
            name,
            rule_type,
            status,
            message,
            path: None,
            exception: None,
            detail: None,
        }
    }

    /// The message in the given format: Kyverno's text, with ` (detail)` appended for bylaw's.
    pub fn message_in(&self, format: MessageFormat) -> std::borrow::Cow<'_, str> {
        match (&self.detail, format) {
            (Some(detail), MessageFormat::Bylaw) => {
                std::borrow::Cow::Owned(format!("{} ({detail})", self.message))
            }
            _ => std::borrow::Cow::Borrowed(&self.message),
        }
    }

    /// [`RuleResponse::message_in`], taking the message instead of copying it.
    pub fn into_message(self, format: MessageFormat) -> String {
        match (self.detail, format) {
            (Some(detail), MessageFormat::Bylaw) => format!("{} ({detail})", self.message),
            _ => self.message,
        }
    }
}

/// Every rule response of one policy for one resource.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyResponse {
    /// Shared with the compiled policy: every review answers with each policy's name.
    pub policy: std::sync::Arc<str>,
    /// Set for a namespaced `Policy`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_namespace: Option<String>,
    pub rules: Vec<RuleResponse>,
}

impl PolicyResponse {
    /// `namespace/name` for a namespaced Policy, `name` for a ClusterPolicy — how tests and
    /// reports name a policy.
    pub fn policy_key(&self) -> String {
        match &self.policy_namespace {
            Some(ns) if !ns.is_empty() => format!("{ns}/{}", self.policy),
            _ => self.policy.to_string(),
        }
    }
}
