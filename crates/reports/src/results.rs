//! Rule outcomes as PolicyReport results, with Kyverno's fields where its tooling reads them.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use bylaw_api::policyreport::{PolicyReportResult, PolicyResult, Severity, Timestamp};
use bylaw_engine::compile::CompiledPolicy;
use bylaw_engine::engine::report_status;
use bylaw_engine::response::{MessageFormat, PolicyResponse, RuleStatus};
use bylaw_runtime::admission::{RuleOutcome, RuleResult};

/// `source` of every result bylaw writes.
pub const SOURCE: &str = "bylaw";
/// Policy annotation naming the report category.
pub const CATEGORY_ANNOTATION: &str = "policies.kyverno.io/category";
/// Policy annotation naming the report severity.
pub const SEVERITY_ANNOTATION: &str = "policies.kyverno.io/severity";
/// Policy annotation that keeps a policy's results out of reports when set to `"false"`.
pub const REPORT_ANNOTATION: &str = "bylaw.dev/report";
/// `properties.process` of results recorded at admission (Kyverno's wording).
pub const PROCESS_ADMISSION: &str = "admission review";

/// Identifies a policy in reports: `name` for a cluster-wide policy, `namespace/name` for a
/// namespaced one (the `policy` field Kyverno writes).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyKey(pub std::sync::Arc<str>);

impl PolicyKey {
    pub fn of(name: &str, namespace: Option<&str>) -> PolicyKey {
        match namespace {
            Some(ns) if !ns.is_empty() => PolicyKey(format!("{ns}/{name}").into()),
            _ => PolicyKey(name.into()),
        }
    }

    pub fn of_policy(policy: &CompiledPolicy) -> PolicyKey {
        PolicyKey::of(&policy.name, policy.namespace.as_deref())
    }
}

/// Which results are kept in reports (`--report-results`); all of them by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResultFilter {
    pub pass: bool,
    pub fail: bool,
    pub warn: bool,
    pub error: bool,
    pub skip: bool,
}

impl Default for ResultFilter {
    fn default() -> Self {
        ResultFilter {
            pass: true,
            fail: true,
            warn: true,
            error: true,
            skip: true,
        }
    }
}

/// A `--report-results` value that is not a list of result names.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown result {0:?} in --report-results (expected a comma-separated list of pass, fail, warn, error, skip)")]
pub struct UnknownResult(pub String);

impl ResultFilter {
    /// Parses `fail,error` (case-insensitive); an empty list keeps everything.
    pub fn parse(text: &str) -> Result<ResultFilter, UnknownResult> {
        let names: Vec<&str> = text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if names.is_empty() {
            return Ok(ResultFilter::default());
        }
        let mut filter = ResultFilter {
            pass: false,
            fail: false,
            warn: false,
            error: false,
            skip: false,
        };
        for name in names {
            match name.to_ascii_lowercase().as_str() {
                "pass" => filter.pass = true,
                "fail" => filter.fail = true,
                "warn" => filter.warn = true,
                "error" => filter.error = true,
                "skip" => filter.skip = true,
                _ => return Err(UnknownResult(name.to_owned())),
            }
        }
        Ok(filter)
    }

    pub fn keeps(&self, result: PolicyResult) -> bool {
        match result {
            PolicyResult::Pass => self.pass,
            PolicyResult::Fail => self.fail,
            PolicyResult::Warn => self.warn,
            PolicyResult::Error => self.error,
            PolicyResult::Skip => self.skip,
        }
    }
}

/// Whether the policy's results belong in reports (`bylaw.dev/report: "false"` turns them off).
pub fn reports_enabled(policy: &CompiledPolicy) -> bool {
    policy
        .annotations
        .get(REPORT_ANNOTATION)
        .is_none_or(|v| !v.eq_ignore_ascii_case("false"))
}

/// The report fields that come from the policy rather than the rule.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PolicyFacts {
    pub key: PolicyKey,
    pub category: Option<String>,
    pub severity: Option<Severity>,
    /// False for `policies.kyverno.io/scored: "false"`: failures are reported as warnings.
    pub scored: bool,
    pub reported: bool,
    /// A `policies.kyverno.io/severity` value that is none of the report severities; the
    /// results carry no severity and the scanner says so.
    pub unknown_severity: Option<String>,
}

impl PolicyFacts {
    pub fn of(policy: &CompiledPolicy) -> PolicyFacts {
        PolicyFacts {
            key: PolicyKey::of_policy(policy),
            category: policy
                .annotations
                .get(CATEGORY_ANNOTATION)
                .filter(|c| !c.is_empty())
                .cloned(),
            severity: policy
                .annotations
                .get(SEVERITY_ANNOTATION)
                .and_then(|s| parse_severity(s)),
            unknown_severity: policy
                .annotations
                .get(SEVERITY_ANNOTATION)
                .filter(|s| parse_severity(s).is_none())
                .cloned(),
            scored: policy.scored,
            reported: reports_enabled(policy),
        }
    }
}

fn parse_severity(text: &str) -> Option<Severity> {
    match text.trim().to_ascii_lowercase().as_str() {
        "critical" => Some(Severity::Critical),
        "high" => Some(Severity::High),
        "medium" => Some(Severity::Medium),
        "low" => Some(Severity::Low),
        "info" => Some(Severity::Info),
        _ => None,
    }
}

/// Seconds since the Unix epoch, as reports write it.
pub fn timestamp(at: SystemTime) -> Timestamp {
    let seconds = at
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Timestamp { seconds, nanos: 0 }
}

fn result_of(status: RuleStatus) -> PolicyResult {
    match status {
        RuleStatus::Pass => PolicyResult::Pass,
        RuleStatus::Fail => PolicyResult::Fail,
        RuleStatus::Warn => PolicyResult::Warn,
        RuleStatus::Error => PolicyResult::Error,
        RuleStatus::Skip => PolicyResult::Skip,
    }
}

/// A result as reports hold it. A pass carries no message (Kyverno's "validation rule 'x'
/// passed." says no more than the rule name; leaving it out is a fifth of a report's size),
/// and only admission results name their `process`: the background scan is the default.
fn report_result(
    facts: &PolicyFacts,
    rule: &str,
    result: PolicyResult,
    message: String,
    at: Timestamp,
    process: Option<&str>,
) -> PolicyReportResult {
    let message = (result != PolicyResult::Pass && !message.is_empty()).then_some(message);
    PolicyReportResult {
        source: Some(SOURCE.to_owned()),
        policy: facts.key.0.to_string(),
        rule: Some(rule.to_owned()),
        category: facts.category.clone(),
        severity: facts.severity,
        timestamp: Some(at),
        result: Some(result),
        // Kyverno writes `scored: true` on every result; absent means the same to its tooling
        // and saves 14 bytes a result. Unscored policies report `warn` instead of `fail`.
        scored: None,
        message,
        resources: None,
        resource_selector: None,
        properties: process.map(|p| BTreeMap::from([("process".to_owned(), p.to_owned())])),
    }
}

/// The results a background evaluation of `policy` produced, filtered.
pub fn background_results(
    policy: &CompiledPolicy,
    facts: &PolicyFacts,
    response: &PolicyResponse,
    at: Timestamp,
    filter: ResultFilter,
    messages: MessageFormat,
) -> Vec<PolicyReportResult> {
    response
        .rules
        .iter()
        .map(|rule| {
            let status = report_status(policy, rule);
            report_result(
                facts,
                &rule.name,
                result_of(status),
                rule.message_in(messages).into_owned(),
                at,
                None,
            )
        })
        .filter(|r| r.result.is_some_and(|r| filter.keeps(r)))
        .collect()
}

/// The result recorded for an admission outcome of a validate rule, filtered.
pub fn admission_result(
    facts: &PolicyFacts,
    outcome: &RuleOutcome,
    at: Timestamp,
    filter: ResultFilter,
) -> Option<PolicyReportResult> {
    let result = match outcome.result {
        RuleResult::Pass => PolicyResult::Pass,
        RuleResult::Fail if !facts.scored => PolicyResult::Warn,
        RuleResult::Fail => PolicyResult::Fail,
        RuleResult::Warn => PolicyResult::Warn,
        RuleResult::Error => PolicyResult::Error,
        RuleResult::Skip => PolicyResult::Skip,
    };
    filter.keeps(result).then(|| {
        report_result(
            facts,
            &outcome.rule,
            result,
            outcome.message.clone(),
            at,
            Some(PROCESS_ADMISSION),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_parses_names_and_rejects_unknown_ones() {
        let only = ResultFilter::parse("fail, Error").unwrap();
        assert!(only.keeps(PolicyResult::Fail) && only.keeps(PolicyResult::Error));
        assert!(!only.keeps(PolicyResult::Pass) && !only.keeps(PolicyResult::Skip));
        assert_eq!(ResultFilter::parse("").unwrap(), ResultFilter::default());
        let err = ResultFilter::parse("fail,failed").unwrap_err();
        assert_eq!(err, UnknownResult("failed".into()));
        assert!(err.to_string().contains("pass, fail, warn, error, skip"));
    }

    #[test]
    fn namespaced_policies_are_named_with_their_namespace() {
        assert_eq!(&*PolicyKey::of("p", Some("team")).0, "team/p");
        assert_eq!(&*PolicyKey::of("p", None).0, "p");
        assert_eq!(parse_severity("High"), Some(Severity::High));
        assert_eq!(parse_severity("severe"), None);
    }
}

#[cfg(test)]
mod facts_tests {
    use super::*;
    use bylaw_engine::engine::{compile_document, CompiledDocument};
    use serde_json::json;

    fn facts(annotations: serde_json::Value) -> PolicyFacts {
        let document = json!({
            "apiVersion": "kyverno.io/v1",
            "kind": "Policy",
            "metadata": {"name": "p", "namespace": "team", "annotations": annotations},
            "spec": {"rules": [{
                "name": "r",
                "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "validate": {"message": "m", "pattern": {"metadata": {"name": "?*"}}}
            }]}
        });
        match compile_document(&document).unwrap() {
            CompiledDocument::Policy(policy) => PolicyFacts::of(&policy),
            _ => panic!("a policy"),
        }
    }

    #[test]
    fn facts_come_from_the_annotations_and_an_unknown_severity_is_named() {
        let known = facts(json!({
            "policies.kyverno.io/category": "Pod Security",
            "policies.kyverno.io/severity": "High",
            "bylaw.dev/report": "false",
        }));
        assert_eq!(&*known.key.0, "team/p");
        assert_eq!(known.category.as_deref(), Some("Pod Security"));
        assert_eq!(known.severity, Some(Severity::High));
        assert_eq!(known.unknown_severity, None);
        assert!(!known.reported);
        let unknown = facts(json!({"policies.kyverno.io/severity": "severe"}));
        assert_eq!(unknown.severity, None);
        assert_eq!(unknown.unknown_severity.as_deref(), Some("severe"));
        assert!(unknown.reported);
    }
}
