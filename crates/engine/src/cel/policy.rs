//! Compiling CEL policies into [`CompiledPolicy`]: `validate.cel` blocks of ClusterPolicy and
//! Policy rules, `policies.kyverno.io` ValidatingPolicy and NamespacedValidatingPolicy (with
//! autogen rules for Pod controllers), and `admissionregistration.k8s.io`
//! ValidatingAdmissionPolicy with its bindings.
//!
//! A CEL policy becomes a policy with one rule per variant (the policy itself, then its
//! autogen variants). The rule's match block selects everything; the policy's
//! `matchConstraints` are checked when the rule is evaluated, so the rest of the engine (and
//! the CLI and the server) handles CEL policies like any other.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::matching::MatchResources;
use super::rule::{CelRule, Flavor, Params};
use crate::compile::{
    CompileError, CompiledPolicy, CompiledRule, FailurePolicy, PolicyKind, RuleBody, ValidateCheck,
    ValidateRule,
};
use crate::matching::MatchBlock;
use crate::response::FailureAction;

/// Compiles a `validate.cel` block (`path` is `spec.rules[i].validate.cel`); `message` is the
/// enclosing `validate.message`, used by validations without their own.
pub fn compile_validate_cel(
    cel: &Value,
    path: &str,
    message: Option<String>,
) -> Result<CelRule, CompileError> {
    let mut rule = CelRule::compile(Flavor::KyvernoRule, cel, path, "expressions", None)?;
    if rule.validations.is_empty() {
        return Err(CompileError::new(
            format!("{path}.expressions"),
            "a CEL rule needs at least one expression",
        ));
    }
    rule.default_message = message;
    rule.params = params(cel.get("paramKind"), cel.get("paramRef"), path)?;
    Ok(rule)
}

/// Adds a rule's `celPreconditions` (match conditions) to its compiled `validate.cel`.
pub fn add_preconditions(
    rule: &mut CelRule,
    preconditions: &Value,
    path: &str,
) -> Result<(), CompileError> {
    let with_conditions = CelRule::compile(
        Flavor::KyvernoRule,
        &Value::Null,
        path,
        "expressions",
        Some((preconditions, path)),
    )?;
    rule.match_conditions = with_conditions.match_conditions;
    Ok(())
}

fn params(
    kind: Option<&Value>,
    reference: Option<&Value>,
    path: &str,
) -> Result<Option<Params>, CompileError> {
    let Some(kind) = kind.filter(|k| !k.is_null()) else {
        return Ok(None);
    };
    let text = |v: Option<&Value>, k: &str| {
        v.and_then(|v| v.get(k))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let api_version = text(Some(kind), "apiVersion")
        .ok_or_else(|| CompileError::new(format!("{path}.paramKind.apiVersion"), "required"))?;
    let param_kind = text(Some(kind), "kind")
        .ok_or_else(|| CompileError::new(format!("{path}.paramKind.kind"), "required"))?;
    Ok(Some(Params {
        api_version,
        kind: param_kind,
        name: text(reference, "name"),
        namespace: text(reference, "namespace"),
        selector: reference
            .and_then(|r| r.get("selector"))
            .filter(|s| !s.is_null())
            .cloned(),
        deny_when_missing: text(reference, "parameterNotFoundAction").as_deref() == Some("Deny"),
    }))
}

/// The API groups of the CEL policy kinds bylaw compiles.
pub const POLICY_GROUP: &str = "policies.kyverno.io";
pub const ADMISSION_GROUP: &str = "admissionregistration.k8s.io";

struct Meta {
    name: String,
    namespace: Option<String>,
    annotations: BTreeMap<String, String>,
}

fn meta(doc: &Value, namespaced: bool) -> Result<Meta, CompileError> {
    let metadata = doc.get("metadata").unwrap_or(&Value::Null);
    let name = metadata
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| CompileError::new("metadata.name", "a policy needs a name"))?
        .to_owned();
    let namespace = namespaced.then(|| {
        metadata
            .get("namespace")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .unwrap_or("default")
            .to_owned()
    });
    let annotations = metadata
        .get("annotations")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    Ok(Meta {
        name,
        namespace,
        annotations,
    })
}

fn failure_policy(spec: &Value) -> Result<FailurePolicy, CompileError> {
    match spec.get("failurePolicy").and_then(Value::as_str) {
        None | Some("Fail") => Ok(FailurePolicy::Fail),
        Some("Ignore") => Ok(FailurePolicy::Ignore),
        Some(other) => Err(CompileError::new(
            "spec.failurePolicy",
            format!("must be Fail or Ignore, got {other:?}"),
        )),
    }
}

/// `validationActions`: Deny blocks (Enforce); Audit and Warn only report.
fn actions(spec: &Value, default: &[&str]) -> Result<(FailureAction, bool), CompileError> {
    let written: Vec<String> = crate::matching::string_list(spec.get("validationActions"));
    let actions: Vec<String> = if written.is_empty() {
        default.iter().map(|s| (*s).to_owned()).collect()
    } else {
        written
    };
    for (i, a) in actions.iter().enumerate() {
        if !matches!(a.as_str(), "Deny" | "Audit" | "Warn") {
            return Err(CompileError::new(
                format!("spec.validationActions[{i}]"),
                format!("must be Deny, Audit or Warn, got {a:?}"),
            ));
        }
    }
    let action = if actions.iter().any(|a| a == "Deny") {
        FailureAction::Enforce
    } else {
        FailureAction::Audit
    };
    Ok((action, actions.iter().any(|a| a == "Warn")))
}

fn enabled(spec: &Value, which: &str) -> bool {
    ["evaluation", "environment"]
        .iter()
        .find_map(|k| spec.pointer(&format!("/{k}/{which}/enabled")))
        .and_then(Value::as_bool)
        .unwrap_or(true)
}

fn cel_rule_named(name: String, rule: CelRule, source: Value) -> CompiledRule {
    CompiledRule {
        name: name.into(),
        autogen: false,
        // Everything; the rule's match constraints decide when it is evaluated.
        match_block: MatchBlock::All(Vec::new()),
        match_kinds: None,
        match_by_kinds_alone: false,
        exclude_block: MatchBlock::Empty,
        context: Vec::new(),
        preconditions: None,
        body: RuleBody::Validate(ValidateRule {
            message: None,
            failure_action: None,
            action_overrides: Vec::new(),
            allow_existing_violations: true,
            check: ValidateCheck::Cel(Arc::new(rule)),
        }),
        source,
    }
}

fn policy_of(
    kind: PolicyKind,
    meta: Meta,
    spec: &Value,
    action: (FailureAction, bool),
    rules: Vec<CompiledRule>,
    doc: &Value,
) -> Result<CompiledPolicy, CompileError> {
    let scored = meta
        .annotations
        .get("policies.kyverno.io/scored")
        .is_none_or(|v| v != "false");
    let selects_by_namespace_labels = crate::compile::rules_select_by_namespace_labels(&rules);
    let rule_index = crate::compile::RuleIndex::of(&rules);
    Ok(CompiledPolicy {
        kind,
        name: meta.name.into(),
        namespace: meta.namespace,
        annotations: meta.annotations,
        validation_failure_action: action.0,
        action_overrides: Vec::new(),
        background: enabled(spec, "background"),
        admission: enabled(spec, "admission"),
        failure_policy: failure_policy(spec)?,
        emit_warning: action.1,
        webhook_timeout_seconds: spec
            .pointer("/webhookConfiguration/timeoutSeconds")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok()),
        scored,
        rules,
        source: Arc::new(doc.clone()),
        uses_images: false,
        uses_nested_elements: false,
        // CEL reads `object` whole.
        reads_managed_fields: true,
        validation_reads_managed_fields: true,
        selects_by_namespace_labels,
        rule_index,
    })
}

/// Compiles a ValidatingPolicy or NamespacedValidatingPolicy document.
pub fn compile_validating_policy(doc: &Value) -> Result<CompiledPolicy, CompileError> {
    let kind = match doc.get("kind").and_then(Value::as_str) {
        Some("ValidatingPolicy") => PolicyKind::ValidatingPolicy,
        Some("NamespacedValidatingPolicy") => PolicyKind::NamespacedValidatingPolicy,
        other => {
            return Err(CompileError::new(
                "kind",
                format!("expected ValidatingPolicy or NamespacedValidatingPolicy, got {other:?}"),
            ))
        }
    };
    let meta = meta(doc, kind == PolicyKind::NamespacedValidatingPolicy)?;
    let spec = doc
        .get("spec")
        .filter(|s| s.is_object())
        .ok_or_else(|| CompileError::new("spec", "a policy needs a spec object"))?;
    let action = actions(spec, &["Audit"])?;
    let json_mode = spec
        .pointer("/evaluation/mode")
        .and_then(Value::as_str)
        .is_some_and(|m| m.eq_ignore_ascii_case("JSON"));
    let mut rules = Vec::new();
    if json_mode {
        rules.push(CompiledRule {
            body: RuleBody::Validate(ValidateRule {
                message: None,
                failure_action: None,
                action_overrides: Vec::new(),
                allow_existing_violations: true,
                check: ValidateCheck::Unsupported("evaluation.mode: JSON"),
            }),
            ..cel_rule_named(meta.name.clone(), vpol_rule(spec, "spec")?, spec.clone())
        });
        return policy_of(kind, meta, spec, action, rules, doc);
    }
    rules.push(cel_rule_named(
        meta.name.clone(),
        vpol_rule(spec, "spec")?,
        spec.clone(),
    ));
    for (suffix, variant) in autogen(spec)? {
        let rule = vpol_rule(&variant, &format!("autogen.{suffix}.spec"))?;
        let mut compiled = cel_rule_named(format!("autogen-{suffix}{}", meta.name), rule, variant);
        compiled.autogen = true;
        rules.push(compiled);
    }
    policy_of(kind, meta, spec, action, rules, doc)
}

fn vpol_rule(spec: &Value, path: &str) -> Result<CelRule, CompileError> {
    let conditions = spec.get("matchConditions").unwrap_or(&Value::Null);
    let conditions_path = format!("{path}.matchConditions");
    let mut rule = CelRule::compile(
        Flavor::ValidatingPolicy,
        spec,
        path,
        "validations",
        Some((conditions, &conditions_path)),
    )?;
    let constraints = spec
        .get("matchConstraints")
        .ok_or_else(|| CompileError::new(format!("{path}.matchConstraints"), "required"))?;
    rule.constraints = Some(MatchResources::compile(
        constraints,
        &format!("{path}.matchConstraints"),
    )?);
    rule.failure_policy = failure_policy(spec)?;
    Ok(rule)
}

/// Pod controllers autogen can target: `(controller, group, version, resource, cronjob)`.
const CONTROLLERS: &[(&str, &str, &str, bool)] = &[
    ("daemonsets", "apps", "v1", false),
    ("deployments", "apps", "v1", false),
    ("replicasets", "apps", "v1", false),
    ("statefulsets", "apps", "v1", false),
    ("jobs", "batch", "v1", false),
    ("cronjobs", "batch", "v1", true),
];

/// Autogen variants of a ValidatingPolicy spec matching only Pods, as Kyverno computes them:
/// one for Deployment-like controllers (`object.spec` → `object.spec.template.spec`), one for
/// CronJobs (→ `object.spec.jobTemplate.spec.template.spec`). Returns `(rule name prefix,
/// spec)` pairs.
pub fn autogen(spec: &Value) -> Result<Vec<(&'static str, Value)>, CompileError> {
    let Some(constraints) = spec.get("matchConstraints") else {
        return Ok(Vec::new());
    };
    let compiled = MatchResources::compile(constraints, "spec.matchConstraints")?;
    if !compiled.selects_only_pods() {
        return Ok(Vec::new());
    }
    let wanted: Option<Vec<String>> = spec
        .pointer("/autogen/podControllers/controllers")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_ascii_lowercase)
                .collect()
        });
    let operations = constraints
        .pointer("/resourceRules/0/operations")
        .cloned()
        .unwrap_or(Value::Array(Vec::new()));
    let namespace_selector = constraints.get("namespaceSelector").cloned();
    let mut out = Vec::new();
    for (prefix, cronjob) in [("", false), ("cronjob-", true)] {
        let targets: Vec<&(&str, &str, &str, bool)> = CONTROLLERS
            .iter()
            .filter(|(name, _, _, is_cron)| {
                *is_cron == cronjob && wanted.as_ref().is_none_or(|w| w.iter().any(|x| x == name))
            })
            .collect();
        if targets.is_empty() || operations.as_array().is_none_or(Vec::is_empty) {
            continue;
        }
        let mut by_group: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
        for (name, group, version, _) in &targets {
            by_group.entry((group, version)).or_default().push(name);
        }
        let rules: Vec<Value> = by_group
            .into_iter()
            .map(|((group, version), mut resources)| {
                resources.sort_unstable();
                let mut rule = Map::new();
                rule.insert("apiGroups".into(), Value::from(vec![group]));
                rule.insert("apiVersions".into(), Value::from(vec![version]));
                rule.insert("resources".into(), Value::from(resources));
                rule.insert("operations".into(), operations.clone());
                Value::Object(rule)
            })
            .collect();
        let mut new_constraints = Map::new();
        new_constraints.insert("resourceRules".into(), Value::Array(rules));
        if let Some(selector) = &namespace_selector {
            new_constraints.insert("namespaceSelector".into(), selector.clone());
        }
        let mut variant = spec.clone();
        if let Some(map) = variant.as_object_mut() {
            map.insert("matchConstraints".into(), Value::Object(new_constraints));
            map.remove("autogen");
        }
        let (spec_to, metadata_to) = if cronjob {
            (
                "spec.jobTemplate.spec.template.spec",
                "spec.jobTemplate.spec.template.metadata",
            )
        } else {
            ("spec.template.spec", "spec.template.metadata")
        };
        rewrite_strings(&mut variant, &|s| {
            let s = replace_paths(s, "spec", spec_to);
            replace_paths(&s, "metadata", metadata_to)
        });
        out.push((prefix, variant));
    }
    Ok(out)
}

fn rewrite_strings(value: &mut Value, f: &dyn Fn(&str) -> String) {
    match value {
        Value::String(s) => *s = f(s),
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_strings(v, f)),
        Value::Object(map) => map.values_mut().for_each(|v| rewrite_strings(v, f)),
        _ => {}
    }
}

/// Rewrites `object.<from>` and `oldObject.<from>` to `…<to>`, except where the path goes on
/// to `.namespace` (the controller's own namespace is the one that matters).
fn replace_paths(text: &str, from: &str, to: &str) -> String {
    let mut out = text.to_owned();
    for root in ["oldObject.", "object."] {
        let needle = format!("{root}{from}");
        let mut result = String::with_capacity(out.len());
        let mut rest = out.as_str();
        while let Some(at) = rest.find(&needle) {
            let (before, after) = rest.split_at(at);
            // `object.` also occurs inside `oldObject.`: only rewrite whole roots.
            let preceded_by_ident = before
                .chars()
                .last()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            let tail = after.get(needle.len()..).unwrap_or("");
            let protected = tail.strip_prefix(".namespace").is_some_and(|t| {
                !t.chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            });
            result.push_str(before);
            if preceded_by_ident || protected {
                result.push_str(&needle);
            } else {
                result.push_str(root);
                result.push_str(to);
            }
            rest = tail;
        }
        result.push_str(rest);
        out = result;
    }
    out
}

/// Compiles a ValidatingAdmissionPolicy with the bindings that name it (none: the policy's
/// own match constraints apply, as Kyverno's CLI does without bindings).
pub fn compile_admission_policy(
    doc: &Value,
    bindings: &[&Value],
) -> Result<CompiledPolicy, CompileError> {
    let meta = meta(doc, false)?;
    let spec = doc
        .get("spec")
        .filter(|s| s.is_object())
        .ok_or_else(|| CompileError::new("spec", "a policy needs a spec object"))?;
    let conditions = spec.get("matchConditions").unwrap_or(&Value::Null);
    let mut base = CelRule::compile(
        Flavor::AdmissionPolicy,
        spec,
        "spec",
        "validations",
        Some((conditions, "spec.matchConditions")),
    )?;
    base.failure_policy = failure_policy(spec)?;
    let policy_constraints = match spec.get("matchConstraints") {
        Some(c) if !c.is_null() => Some(MatchResources::compile(c, "spec.matchConstraints")?),
        _ => None,
    };
    let mut rules = Vec::new();
    let mut action = (FailureAction::Audit, false);
    if bindings.is_empty() {
        base.constraints = policy_constraints;
        rules.push(cel_rule_named(meta.name.clone(), base, spec.clone()));
    } else {
        for (i, binding) in bindings.iter().enumerate() {
            let at = format!("bindings[{i}]");
            let bspec = binding.get("spec").unwrap_or(&Value::Null);
            let mut rule = base.clone();
            // Both the policy's and the binding's resources must select the request.
            let mut constraints = policy_constraints.clone().unwrap_or_default();
            if let Some(m) = bspec.get("matchResources").filter(|m| !m.is_null()) {
                let b = MatchResources::compile(m, &format!("{at}.spec.matchResources"))?;
                constraints = intersect(constraints, b);
            }
            rule.constraints = Some(constraints);
            rule.params = params(spec.get("paramKind"), bspec.get("paramRef"), "spec")?;
            let (binding_action, warn) = actions(bspec, &["Deny"])?;
            if binding_action == FailureAction::Enforce {
                action.0 = FailureAction::Enforce;
            }
            action.1 |= warn;
            rules.push(cel_rule_named(meta.name.clone(), rule, (*binding).clone()));
        }
    }
    policy_of(
        PolicyKind::ValidatingAdmissionPolicy,
        meta,
        spec,
        action,
        rules,
        doc,
    )
}

/// Constraints a request must meet on both sides: the policy's and a binding's.
fn intersect(policy: MatchResources, binding: MatchResources) -> MatchResources {
    // A request must be covered by a policy rule and a binding rule; checking the binding's
    // rules and selectors after the policy's is the same as requiring both.
    MatchResources {
        resource_rules: if binding.resource_rules.is_empty() {
            policy.resource_rules
        } else {
            binding.resource_rules
        },
        exclude_resource_rules: policy
            .exclude_resource_rules
            .into_iter()
            .chain(binding.exclude_resource_rules)
            .collect(),
        namespace_selector: binding.namespace_selector.or(policy.namespace_selector),
        object_selector: binding.object_selector.or(policy.object_selector),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn autogen_paths_are_rewritten_except_namespace() {
        assert_eq!(
            replace_paths(
                "object.spec.containers + oldObject.spec.x + object.metadata.namespace",
                "spec",
                "spec.template.spec"
            ),
            "object.spec.template.spec.containers + oldObject.spec.template.spec.x + object.metadata.namespace"
        );
        assert_eq!(
            replace_paths(
                "object.metadata.namespace == 'a' && object.metadata.labels.x == 'y' && object.metadata.namespaces",
                "metadata",
                "spec.template.metadata"
            ),
            "object.metadata.namespace == 'a' && object.spec.template.metadata.labels.x == 'y' && object.spec.template.metadata.namespaces"
        );
    }
}
