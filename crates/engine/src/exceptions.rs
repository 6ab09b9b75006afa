//! `kyverno.io/v2` PolicyExceptions: a matching exception turns a rule into a skip, or — with
//! `podSecurity` exclusions — re-evaluates a podSecurity rule with those controls excluded.

use serde_json::Value;

use crate::compile::{
    compile_conditions, pod_security_exclusions, refers_to_images, CompileError, CompiledPolicy,
    CompiledRule, ConditionBlock,
};
use crate::matching::{string_list, MatchBlock};
use crate::podsecurity;
use crate::request::Request;
use crate::validate::check_conditions;
use crate::wildcard::wildcard_match;

/// One `exceptions[]` entry: a policy (`name` or `namespace/name`) and its rules.
#[derive(Debug, Clone)]
pub struct ExceptionTarget {
    pub policy_name: String,
    pub rule_names: Vec<String>,
}

/// A PolicyException ready to evaluate.
#[derive(Debug, Clone)]
pub struct CompiledException {
    pub name: String,
    pub namespace: String,
    pub background: bool,
    pub targets: Vec<ExceptionTarget>,
    pub match_block: MatchBlock,
    pub conditions: Option<ConditionBlock>,
    pub pod_security: Vec<podsecurity::Exclusion>,
    /// Whether its conditions refer to the `images` context variable.
    pub uses_images: bool,
    /// Whether its conditions could read the objects' `metadata.managedFields`.
    pub reads_managed_fields: bool,
}

/// What an exception means for one rule and request.
#[derive(Debug, Clone)]
pub enum ExceptionVerdict {
    NotApplicable,
    Skip,
    /// Evaluate the podSecurity rule with these controls excluded as well.
    PodSecurity(Vec<podsecurity::Exclusion>),
}

impl CompiledException {
    /// Compiles a PolicyException document.
    pub fn compile(doc: &Value) -> Result<CompiledException, CompileError> {
        match doc.get("kind").and_then(Value::as_str) {
            Some("PolicyException") => {}
            other => {
                return Err(CompileError::new(
                    "kind",
                    format!("expected PolicyException, got {other:?}"),
                ))
            }
        }
        let meta = |field: &str| {
            doc.get("metadata")
                .and_then(|m| m.get(field))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let name = meta("name");
        if name.is_empty() {
            return Err(CompileError::new(
                "metadata.name",
                "an exception needs a name",
            ));
        }
        let spec = doc
            .get("spec")
            .ok_or_else(|| CompileError::new("spec", "an exception needs a spec"))?;
        let targets = spec
            .get("exceptions")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                CompileError::new(
                    "spec.exceptions",
                    "must list the policies and rules excepted",
                )
            })?
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let policy_name = e
                    .get("policyName")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| {
                        CompileError::new(format!("spec.exceptions[{i}].policyName"), "required")
                    })?
                    .to_owned();
                Ok(ExceptionTarget {
                    policy_name,
                    rule_names: string_list(e.get("ruleNames")),
                })
            })
            .collect::<Result<Vec<_>, CompileError>>()?;
        let match_block = MatchBlock::compile(spec.get("match"), "spec.match")?;
        let conditions = compile_conditions(spec.get("conditions"), "spec.conditions")?;
        let pod_security = pod_security_exclusions(spec.get("podSecurity"));
        Ok(CompiledException {
            name,
            namespace: meta("namespace"),
            background: spec
                .get("background")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            targets,
            match_block,
            conditions,
            pod_security,
            uses_images: spec.get("conditions").is_some_and(refers_to_images),
            reads_managed_fields: spec
                .get("conditions")
                .is_some_and(crate::managed_fields::document_reads_managed_fields),
        })
    }

    /// `namespace/name` (or `name` when cluster-wide).
    pub fn key(&self) -> String {
        if self.namespace.is_empty() {
            self.name.clone()
        } else {
            format!("{}/{}", self.namespace, self.name)
        }
    }

    fn names(&self, policy: &CompiledPolicy, rule: &CompiledRule) -> bool {
        let policy_key = policy.key();
        self.targets.iter().any(|t| {
            wildcard_match(&t.policy_name, &policy_key)
                && t.rule_names.iter().any(|r| wildcard_match(r, &rule.name))
        })
    }

    /// Whether (and how) this exception applies to a rule for a request.
    pub fn applies(
        &self,
        policy: &CompiledPolicy,
        rule: &CompiledRule,
        request: &Request,
        ctx: crate::jmespath::Scope<'_>,
    ) -> ExceptionVerdict {
        if !self.names(policy, rule) || !self.match_block.matches(request) {
            return ExceptionVerdict::NotApplicable;
        }
        if let Some(conditions) = &self.conditions {
            match check_conditions(conditions, ctx) {
                Ok((true, _)) => {}
                _ => return ExceptionVerdict::NotApplicable,
            }
        }
        if self.pod_security.is_empty() {
            ExceptionVerdict::Skip
        } else {
            ExceptionVerdict::PodSecurity(self.pod_security.clone())
        }
    }
}
