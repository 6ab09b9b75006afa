//! A CEL rule compiled once — match conditions, variables, validations, audit annotations —
//! and its evaluation against one request, with the outcome rules each policy kind gives:
//! Kubernetes' validator for `validate.cel` and ValidatingAdmissionPolicy, Kyverno's CEL
//! engine for ValidatingPolicy.

use std::collections::HashMap;

use cel::common::types::{CelBool, CelList, CelMap, CelMapKey, CelNull, CelString};
use cel::common::value::Val;
use serde_json::{Map, Value};

use super::matching::MatchResources;
use super::program::{Program, Scope, HOST_VARIABLE};
use crate::compile::{CompileError, FailurePolicy};
use crate::context::ContextProvider;
use crate::request::{Operation, Request};

/// Which engine's rules a CEL rule follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `validate.cel` of a ClusterPolicy/Policy (Kubernetes' validator: an error denies).
    KyvernoRule,
    /// A `policies.kyverno.io` ValidatingPolicy (an error is an error).
    ValidatingPolicy,
    /// An `admissionregistration.k8s.io` ValidatingAdmissionPolicy.
    AdmissionPolicy,
}

/// `validations[]`.
#[derive(Debug, Clone)]
pub struct Validation {
    pub program: Program,
    pub message: Option<String>,
    pub message_expression: Option<Program>,
    pub reason: Option<String>,
}

/// `variables[]`.
#[derive(Debug, Clone)]
pub struct Variable {
    pub name: String,
    pub program: Program,
    /// The variables it needs, itself excluded, by index (transitively, in order).
    pub needs: Vec<usize>,
}

/// `auditAnnotations[]`.
#[derive(Debug, Clone)]
pub struct AuditAnnotation {
    pub key: String,
    pub program: Program,
}

/// `paramKind` + `paramRef`: the parameter objects a rule is evaluated with.
#[derive(Debug, Clone, Default)]
pub struct Params {
    pub api_version: String,
    pub kind: String,
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub selector: Option<Value>,
    /// `parameterNotFoundAction: Deny` (the default is `Allow`).
    pub deny_when_missing: bool,
}

/// A CEL rule ready to evaluate.
#[derive(Debug, Clone)]
pub struct CelRule {
    pub flavor: Flavor,
    /// ValidatingPolicy/VAP `matchConstraints` (a ClusterPolicy rule matches with its own
    /// match block instead).
    pub constraints: Option<MatchResources>,
    pub match_conditions: Vec<(String, Program)>,
    pub variables: Vec<Variable>,
    pub validations: Vec<Validation>,
    pub audit_annotations: Vec<AuditAnnotation>,
    pub params: Option<Params>,
    pub failure_policy: FailurePolicy,
    /// The message of the enclosing `validate` block, used when a validation has none.
    pub default_message: Option<String>,
}

/// What evaluating a CEL rule gave.
#[derive(Debug, Clone, PartialEq)]
pub enum CelOutcome {
    Pass(String),
    Fail {
        message: String,
        /// Index of the failing validation.
        index: usize,
    },
    Skip(String),
    Error(String),
}

/// The roots every CEL rule may use.
pub const ROOTS: &[&str] = &[
    "object",
    "oldObject",
    "request",
    "params",
    "namespaceObject",
    "authorizer",
    "variables",
    "exceptions",
];

/// Roots of match conditions (no variables, as in Kubernetes).
const CONDITION_ROOTS: &[&str] = &[
    "object",
    "oldObject",
    "request",
    "params",
    "namespaceObject",
    "authorizer",
    "exceptions",
];

fn text(value: &Value, key: &str) -> Option<String> {
    value
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn list<'a>(value: &'a Value, key: &str, path: &str) -> Result<&'a [Value], CompileError> {
    match value.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(CompileError::new(format!("{path}.{key}"), "must be a list")),
    }
}

fn compile_at(source: &str, scope: Scope<'_>, path: &str) -> Result<Program, CompileError> {
    Program::compile(source, scope).map_err(|reason| CompileError::new(path, reason))
}

impl CelRule {
    /// Compiles the parts every CEL rule shares from `spec` (a `validate.cel` block or a
    /// policy spec): `variables`, `validations` (or `expressions`), `auditAnnotations`, and
    /// `matchConditions` found at `conditions` (a `celPreconditions` list for a ClusterPolicy).
    pub fn compile(
        flavor: Flavor,
        spec: &Value,
        path: &str,
        validations_key: &str,
        conditions: Option<(&Value, &str)>,
    ) -> Result<CelRule, CompileError> {
        let mut match_conditions = Vec::new();
        if let Some((items, at)) = conditions {
            let items = match items {
                Value::Null => &[][..],
                Value::Array(items) => items.as_slice(),
                _ => return Err(CompileError::new(at, "must be a list")),
            };
            let mut names = std::collections::BTreeSet::new();
            for (i, c) in items.iter().enumerate() {
                let name = text(c, "name").unwrap_or_default();
                if !name.is_empty() && !names.insert(name.clone()) {
                    return Err(CompileError::new(
                        format!("{at}[{i}].name"),
                        format!("duplicate match condition name {name:?}"),
                    ));
                }
                let expression = text(c, "expression").ok_or_else(|| {
                    CompileError::new(format!("{at}[{i}].expression"), "required")
                })?;
                let program = compile_at(
                    &expression,
                    Scope {
                        roots: CONDITION_ROOTS,
                        variables: &[],
                    },
                    &format!("{at}[{i}].expression"),
                )?;
                match_conditions.push((name, program));
            }
        }

        let mut variables: Vec<Variable> = Vec::new();
        let mut declared: Vec<String> = Vec::new();
        for (i, v) in list(spec, "variables", path)?.iter().enumerate() {
            let at = format!("{path}.variables[{i}]");
            let name = text(v, "name")
                .ok_or_else(|| CompileError::new(format!("{at}.name"), "required"))?;
            if declared.contains(&name) {
                return Err(CompileError::new(
                    format!("{at}.name"),
                    format!("duplicate variable name {name:?}"),
                ));
            }
            let expression = text(v, "expression")
                .ok_or_else(|| CompileError::new(format!("{at}.expression"), "required"))?;
            let program = compile_at(
                &expression,
                Scope {
                    roots: ROOTS,
                    variables: &declared,
                },
                &format!("{at}.expression"),
            )?;
            let needs = needs_of(&program, &declared, &variables);
            variables.push(Variable {
                name: name.clone(),
                program,
                needs,
            });
            declared.push(name);
        }
        let scope = Scope {
            roots: ROOTS,
            variables: &declared,
        };

        let mut validations = Vec::new();
        for (i, v) in list(spec, validations_key, path)?.iter().enumerate() {
            let at = format!("{path}.{validations_key}[{i}]");
            let expression = text(v, "expression")
                .ok_or_else(|| CompileError::new(format!("{at}.expression"), "required"))?;
            let program = compile_at(&expression, scope, &format!("{at}.expression"))?;
            let message_expression = match text(v, "messageExpression") {
                Some(source) => Some(compile_at(
                    &source,
                    scope,
                    &format!("{at}.messageExpression"),
                )?),
                None => None,
            };
            validations.push(Validation {
                program,
                message: text(v, "message"),
                message_expression,
                reason: text(v, "reason"),
            });
        }

        let mut audit_annotations = Vec::new();
        for (i, a) in list(spec, "auditAnnotations", path)?.iter().enumerate() {
            let at = format!("{path}.auditAnnotations[{i}]");
            let key =
                text(a, "key").ok_or_else(|| CompileError::new(format!("{at}.key"), "required"))?;
            let expression = text(a, "valueExpression")
                .ok_or_else(|| CompileError::new(format!("{at}.valueExpression"), "required"))?;
            let program = compile_at(&expression, scope, &format!("{at}.valueExpression"))?;
            audit_annotations.push(AuditAnnotation { key, program });
        }

        Ok(CelRule {
            flavor,
            constraints: None,
            match_conditions,
            variables,
            validations,
            audit_annotations,
            params: None,
            failure_policy: FailurePolicy::Fail,
            default_message: None,
        })
    }

    /// Whether any expression calls the context provider.
    pub fn uses_host(&self) -> bool {
        self.match_conditions.iter().any(|(_, p)| p.uses_host())
            || self.variables.iter().any(|v| v.program.uses_host())
            || self.validations.iter().any(|v| v.program.uses_host())
    }
}

/// The earlier variables a program needs, transitively, in declaration order.
fn needs_of(program: &Program, declared: &[String], compiled: &[Variable]) -> Vec<usize> {
    let mut needed = std::collections::BTreeSet::new();
    for name in program.variables() {
        if let Some(i) = declared.iter().position(|d| d == name) {
            needed.insert(i);
            if let Some(v) = compiled.get(i) {
                needed.extend(v.needs.iter().copied());
            }
        }
    }
    needed.into_iter().collect()
}

/// The inputs of one evaluation: the request's objects as JSON documents.
pub struct Inputs<'v> {
    pub request: &'v Request,
    /// The `request` variable (an AdmissionRequest as JSON), see [`request_document`].
    pub request_doc: &'v Value,
    pub namespace_object: &'v Value,
    pub provider: &'v dyn ContextProvider,
    /// `exceptions` of a ValidatingPolicy (`allowedImages`, `allowedValues`).
    pub exceptions: &'v Value,
}

static NULL: Value = Value::Null;

/// The `request` variable: the admission request as Kubernetes hands it to CEL.
pub fn request_document(request: &Request) -> Value {
    let kind = &request.kind;
    let mut gvk = Map::new();
    gvk.insert("group".into(), Value::String(kind.group.clone()));
    gvk.insert("version".into(), Value::String(kind.version.clone()));
    gvk.insert("kind".into(), Value::String(kind.kind.clone()));
    let mut gvr = Map::new();
    gvr.insert("group".into(), Value::String(kind.group.clone()));
    gvr.insert("version".into(), Value::String(kind.version.clone()));
    gvr.insert(
        "resource".into(),
        Value::String(super::kinds::resource_of(&kind.kind)),
    );
    let user = &request.user;
    let mut user_info = Map::new();
    user_info.insert("username".into(), Value::String(user.username.clone()));
    user_info.insert("uid".into(), Value::String(user.uid.clone()));
    user_info.insert(
        "groups".into(),
        Value::Array(user.groups.iter().cloned().map(Value::String).collect()),
    );
    let mut doc = Map::new();
    doc.insert("kind".into(), Value::Object(gvk.clone()));
    doc.insert("resource".into(), Value::Object(gvr.clone()));
    doc.insert("requestKind".into(), Value::Object(gvk));
    doc.insert("requestResource".into(), Value::Object(gvr));
    if !request.subresource.is_empty() {
        doc.insert(
            "subResource".into(),
            Value::String(request.subresource.clone()),
        );
    }
    doc.insert("name".into(), Value::String(request.name().to_owned()));
    doc.insert(
        "namespace".into(),
        Value::String(request.namespace().to_owned()),
    );
    doc.insert(
        "operation".into(),
        Value::String(request.operation.as_str().to_owned()),
    );
    doc.insert("userInfo".into(), Value::Object(user_info));
    doc.insert("dryRun".into(), Value::Bool(request.dry_run));
    Value::Object(doc)
}

/// The base activation: every root variable bound, `variables` excepted.
fn base_context<'v>(inputs: &Inputs<'v>, params: &'v Value) -> cel::Context<'v, 'v> {
    let mut ctx = cel::Context::with_env(std::sync::Arc::clone(super::env()));
    let request = inputs.request;
    let (object, old_object): (&Value, &Value) = match request.operation {
        Operation::Delete => (&NULL, request.old_object.as_ref().unwrap_or(&NULL)),
        _ => (
            &request.object,
            request.old_object.as_ref().unwrap_or(&NULL),
        ),
    };
    ctx.add_variable_as_val("object", super::convert::to_val(object));
    ctx.add_variable_as_val("oldObject", super::convert::to_val(old_object));
    ctx.add_variable_as_val("request", super::convert::to_val(inputs.request_doc));
    ctx.add_variable_as_val(
        "namespaceObject",
        super::convert::to_val(inputs.namespace_object),
    );
    ctx.add_variable_as_val("params", super::convert::to_val(params));
    ctx.add_variable_as_val("authorizer", Box::new(CelNull));
    ctx.add_variable_as_val("exceptions", super::convert::to_val(inputs.exceptions));
    ctx.add_variable_as_val(
        HOST_VARIABLE,
        Box::new(super::host::Host {
            provider: inputs.provider,
        }),
    );
    ctx
}

/// Variables computed so far in one evaluation: values, or the error each one gave.
struct VariableCache<'v> {
    values: Vec<Option<Result<Box<dyn Val + 'v>, String>>>,
}

impl<'v> VariableCache<'v> {
    fn new(count: usize) -> Self {
        VariableCache {
            values: (0..count).map(|_| None).collect(),
        }
    }

    /// A `variables` map holding the given (already computed) variables.
    fn map(&self, rule: &CelRule, needs: &[usize]) -> CelMap<'v> {
        let entries: HashMap<CelMapKey<'v>, Box<dyn Val + 'v>> = needs
            .iter()
            .filter_map(|i| {
                let value = self.values.get(*i)?.as_ref()?.as_ref().ok()?;
                let name = &rule.variables.get(*i)?.name;
                Some((CelMapKey::from(name.clone()), value.clone()))
            })
            .collect();
        CelMap::from(entries)
    }

    /// Computes the variables in `needs` (in order), each with the ones it needs.
    fn compute(&mut self, rule: &CelRule, base: &cel::Context<'_, 'v>, needs: &[usize]) {
        for &i in needs {
            if self.values.get(i).is_some_and(Option::is_some) {
                continue;
            }
            let Some(variable) = rule.variables.get(i) else {
                continue;
            };
            let mut scope = base.new_inner_scope();
            scope.add_variable_as_val("variables", Box::new(self.map(rule, &variable.needs)));
            let value = variable
                .program
                .evaluate(&scope)
                .map(|v| v.into_owned())
                .map_err(|e| e.to_string());
            if let Some(slot) = self.values.get_mut(i) {
                *slot = Some(value);
            }
        }
    }

    /// The first error among `needs`, named.
    fn error(&self, rule: &CelRule, needs: &[usize]) -> Option<String> {
        needs.iter().find_map(|i| match self.values.get(*i) {
            Some(Some(Err(e))) => Some(format!(
                "variable {:?}: {e}",
                rule.variables.get(*i).map_or("", |v| v.name.as_str())
            )),
            _ => None,
        })
    }
}

/// The outcome of one program in an activation with the variables it needs.
fn run<'v>(
    rule: &CelRule,
    program: &Program,
    base: &cel::Context<'_, 'v>,
    cache: &mut VariableCache<'v>,
) -> Result<Box<dyn Val + 'v>, String> {
    let needs = needs_of(
        program,
        &rule
            .variables
            .iter()
            .map(|v| v.name.clone())
            .collect::<Vec<_>>(),
        &rule.variables,
    );
    cache.compute(rule, base, &needs);
    let mut scope = base.new_inner_scope();
    scope.add_variable_as_val("variables", Box::new(cache.map(rule, &needs)));
    let result = program.evaluate(&scope).map(|v| v.into_owned());
    result.map_err(|e| {
        // A missing variable is really the error that variable gave.
        cache.error(rule, &needs).unwrap_or_else(|| e.to_string())
    })
}

fn as_bool(value: &dyn Val) -> Option<bool> {
    value.downcast_ref::<CelBool>().map(|b| *b.inner())
}

impl CelRule {
    /// Evaluates the rule with each parameter object (or none), Kubernetes-style: the first
    /// failing validation decides.
    pub fn evaluate(&self, inputs: &Inputs<'_>) -> CelOutcome {
        let params = match self.collect_params(inputs) {
            Ok(p) => p,
            Err(outcome) => return outcome,
        };
        match params {
            None => self.evaluate_with(inputs, &NULL),
            Some(objects) => {
                let mut last = CelOutcome::Pass(self.pass_message());
                for object in &objects {
                    let outcome = self.evaluate_with(inputs, object);
                    match outcome {
                        CelOutcome::Pass(_) => last = outcome,
                        other => return other,
                    }
                }
                last
            }
        }
    }

    fn pass_message(&self) -> String {
        match self.flavor {
            Flavor::ValidatingPolicy => "success".to_owned(),
            _ => String::new(),
        }
    }

    /// The parameter objects to evaluate with; `None` when the rule takes no parameters.
    fn collect_params(&self, inputs: &Inputs<'_>) -> Result<Option<Vec<Value>>, CelOutcome> {
        let Some(params) = &self.params else {
            return Ok(None);
        };
        let namespace = params
            .namespace
            .clone()
            .unwrap_or_else(|| inputs.request.namespace().to_owned());
        let found = match &params.name {
            Some(name) => inputs
                .provider
                .resource(&params.api_version, &params.kind, &namespace, name)
                .map(|o| o.into_iter().collect::<Vec<_>>()),
            None => inputs
                .provider
                .list_resources(
                    &params.api_version,
                    &params.kind,
                    &namespace,
                    params.selector.as_ref(),
                )
                .map(|items| {
                    items
                        .into_iter()
                        .filter(|o| {
                            params.selector.as_ref().is_none_or(|s| {
                                crate::matching::LabelSelector::compile(s, "")
                                    .map(|sel| {
                                        sel.matches(&crate::request::metadata_map(o, "labels"))
                                    })
                                    .unwrap_or(false)
                            })
                        })
                        .collect()
                }),
        };
        match found {
            Err(e) => Err(CelOutcome::Error(format!("failed to load parameters: {e}"))),
            Ok(objects) if objects.is_empty() => {
                if params.deny_when_missing {
                    Err(CelOutcome::Fail {
                        message: format!(
                            "no params found for policy binding with `Deny` parameterNotFoundAction ({} {})",
                            params.kind,
                            params.name.as_deref().unwrap_or("*")
                        ),
                        index: 0,
                    })
                } else {
                    Err(CelOutcome::Skip(format!(
                        "no parameter object {} found",
                        params.kind
                    )))
                }
            }
            Ok(objects) => Ok(Some(objects)),
        }
    }

    fn evaluate_with(&self, inputs: &Inputs<'_>, params: &Value) -> CelOutcome {
        let base = base_context(inputs, params);
        let mut cache = VariableCache::new(self.variables.len());

        // Match conditions: all must hold; errors follow the failure policy.
        let mut condition_errors = Vec::new();
        for (name, program) in &self.match_conditions {
            match run(self, program, &base, &mut cache) {
                Ok(value) => match as_bool(value.as_ref()) {
                    Some(true) => {}
                    Some(false) => return self.not_matched(),
                    None => condition_errors.push(format!(
                        "match condition {name:?} did not evaluate to a boolean"
                    )),
                },
                Err(e) => condition_errors.push(format!("match condition {name:?}: {e}")),
            }
        }
        if !condition_errors.is_empty() {
            let message = condition_errors.join("; ");
            return match (self.failure_policy, self.flavor) {
                (FailurePolicy::Ignore, _) => self.not_matched(),
                (FailurePolicy::Fail, Flavor::KyvernoRule) => {
                    CelOutcome::Fail { message, index: 0 }
                }
                (FailurePolicy::Fail, _) => CelOutcome::Error(message),
            };
        }

        for (index, validation) in self.validations.iter().enumerate() {
            let result = run(self, &validation.program, &base, &mut cache);
            let passed = match result {
                Ok(value) => match as_bool(value.as_ref()) {
                    Some(b) => b,
                    None => {
                        return self.error_outcome(
                            index,
                            validation,
                            format!(
                                "expression '{}' did not evaluate to a boolean",
                                validation.program.source().trim()
                            ),
                        )
                    }
                },
                Err(e) => {
                    return self.error_outcome(
                        index,
                        validation,
                        format!(
                            "expression '{}' resulted in error: {e}",
                            validation.program.source().trim()
                        ),
                    )
                }
            };
            if !passed {
                let message = self.failure_message(index, validation, &base, &mut cache);
                return CelOutcome::Fail { message, index };
            }
        }
        CelOutcome::Pass(self.pass_message())
    }

    fn not_matched(&self) -> CelOutcome {
        match self.flavor {
            Flavor::KyvernoRule => CelOutcome::Skip("cel preconditions not met".to_owned()),
            Flavor::ValidatingPolicy => CelOutcome::Skip("skip".to_owned()),
            Flavor::AdmissionPolicy => CelOutcome::Skip("match conditions aren't met".to_owned()),
        }
    }

    /// An expression that could not be evaluated: an error for a ValidatingPolicy; for the
    /// Kubernetes validator, a denial (or nothing, with `failurePolicy: Ignore`).
    fn error_outcome(&self, index: usize, _validation: &Validation, message: String) -> CelOutcome {
        match (self.flavor, self.failure_policy) {
            (Flavor::KyvernoRule, FailurePolicy::Fail) => CelOutcome::Fail { message, index },
            _ => CelOutcome::Error(message),
        }
    }

    fn failure_message<'v>(
        &self,
        index: usize,
        validation: &Validation,
        base: &cel::Context<'_, 'v>,
        cache: &mut VariableCache<'v>,
    ) -> String {
        let from_expression = validation.message_expression.as_ref().map(|program| {
            run(self, program, base, cache).and_then(|value| {
                value
                    .downcast_ref::<CelString>()
                    .map(|s| s.inner().trim().to_owned())
                    .ok_or_else(|| "the message expression did not evaluate to a string".to_owned())
            })
        });
        let written = validation
            .message
            .clone()
            .or_else(|| self.default_message.clone());
        match self.flavor {
            Flavor::ValidatingPolicy => match from_expression {
                Some(Ok(m)) => m,
                Some(Err(e)) => format!("failed to evaluate message expression: {e}"),
                None => written.unwrap_or_else(|| {
                    format!("CEL expression validation failed at index {index}")
                }),
            },
            _ => match from_expression {
                Some(Ok(m)) if !m.is_empty() => m,
                _ => written.unwrap_or_else(|| {
                    format!("failed expression: {}", validation.program.source().trim())
                }),
            },
        }
    }

    /// Audit annotations for a request (key → value); empty values are left out.
    pub fn audit_annotations(&self, inputs: &Inputs<'_>) -> Result<Vec<(String, String)>, String> {
        let base = base_context(inputs, &NULL);
        let mut cache = VariableCache::new(self.variables.len());
        let mut out = Vec::new();
        for a in &self.audit_annotations {
            let value = run(self, &a.program, &base, &mut cache)
                .map_err(|e| format!("failed to evaluate auditAnnotation {:?}: {e}", a.key))?;
            if let Some(s) = value.downcast_ref::<CelString>() {
                if !s.inner().is_empty() {
                    out.push((a.key.clone(), s.inner().to_owned()));
                }
            } else if value.downcast_ref::<CelNull>().is_none() {
                return Err(format!(
                    "auditAnnotation {:?} did not evaluate to a string",
                    a.key
                ));
            }
        }
        Ok(out)
    }
}

/// The `namespaceObject` variable: the request's Namespace (none for cluster-scoped objects
/// and Namespaces themselves). The provider's copy wins; without one, a ClusterPolicy rule and
/// a ValidatingAdmissionPolicy see a Namespace with the name and the labels known for it (as
/// Kyverno's CLI builds it), a ValidatingPolicy sees null.
pub fn namespace_object(
    flavor: Flavor,
    request: &Request,
    provider: &dyn ContextProvider,
) -> Value {
    let name = request.namespace();
    if name.is_empty() || request.kind.kind == "Namespace" {
        return Value::Null;
    }
    if let Ok(Some(found)) = provider.resource("v1", "Namespace", "", name) {
        return found;
    }
    if flavor == Flavor::ValidatingPolicy {
        return Value::Null;
    }
    let mut metadata = Map::new();
    metadata.insert("name".into(), Value::String(name.to_owned()));
    if let Some(labels) = &request.namespace_labels {
        metadata.insert(
            "labels".into(),
            Value::Object(
                labels
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
            ),
        );
    }
    let mut doc = Map::new();
    doc.insert("apiVersion".into(), Value::String("v1".into()));
    doc.insert("kind".into(), Value::String("Namespace".into()));
    doc.insert("metadata".into(), Value::Object(metadata));
    Value::Object(doc)
}

/// The `exceptions` variable of a ValidatingPolicy with no partial exceptions.
pub fn no_exceptions() -> Value {
    let mut doc = Map::new();
    doc.insert("allowedImages".into(), Value::Array(Vec::new()));
    doc.insert("allowedValues".into(), Value::Array(Vec::new()));
    Value::Object(doc)
}

/// A JSON list of strings as a CEL list (for tests and callers building values).
pub fn string_list<'v>(items: &[&'v str]) -> CelList<'v> {
    CelList::from(
        items
            .iter()
            .map(|s| Box::new(CelString::from(*s)) as Box<dyn Val + 'v>)
            .collect::<Vec<_>>(),
    )
}
