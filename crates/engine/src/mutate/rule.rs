//! A mutate rule applied to one resource: variable substitution, the patch, `foreach` and
//! `targets`, with Kyverno's statuses and messages.
//!
//! The caller drives the policy: it matches the rule, loads the rule's `context`, checks its
//! `preconditions`, then calls [`mutate_rule`] with the current resource and the context
//! document. On `Pass` the context's `request.object` is updated to the mutated resource, so
//! the next rule of the policy sees the earlier mutations.

use std::borrow::Cow;

use serde_json::Value;

use super::{check_depth, json6902, json6902_into, strategic_merge, strategic_merge_into};
use crate::compile::compile_conditions_for_one_use;
use crate::context::{add_variable, load_entries, ContextProvider, NoContext};
use crate::pattern::wildcard_match;
use crate::validate::check_conditions;
use crate::variables::has_variables;
use crate::{jmespath, variables};

/// What the rule needs from the surrounding engine.
pub trait MutateEnv {
    /// Substitutes `{{ }}` variables in `value`, which sits at JSON pointer `at` within the
    /// rule (for `{{@}}`), against `ctx`.
    fn substitute(&self, value: &Value, at: &str, ctx: &Value) -> Result<Value, String>;

    /// Evaluates a `foreach.list` expression against `ctx`; missing data is `null`.
    fn query(&self, expression: &str, ctx: &Value) -> Result<Value, String>;

    /// Loads `context` entries (of a foreach entry or a target) into `ctx`.
    fn load_context(&self, entries: &[Value], ctx: &mut Value) -> Result<(), String>;

    /// Evaluates a `preconditions` block (`any`/`all`, or the old plain list) against `ctx`:
    /// whether it holds, and the message of the deciding conditions.
    fn preconditions(&self, block: &Value, ctx: &Value) -> Result<(bool, Option<String>), String>;
}

/// A [`MutateEnv`] from the engine's own modules: variables, JMESPath and conditions.
/// Context entries: only `variable` entries are loaded; lookups that need the outside world
/// (`configMap`, `apiCall`, …) are left unset, as offline evaluation does.
#[derive(Debug, Default, Clone, Copy)]
pub struct StandardEnv;

impl MutateEnv for StandardEnv {
    fn substitute(&self, value: &Value, at: &str, ctx: &Value) -> Result<Value, String> {
        ProviderEnv(&NoContext).substitute(value, at, ctx)
    }

    fn query(&self, expression: &str, ctx: &Value) -> Result<Value, String> {
        ProviderEnv(&NoContext).query(expression, ctx)
    }

    fn load_context(&self, entries: &[Value], ctx: &mut Value) -> Result<(), String> {
        ProviderEnv(&NoContext).load_context(entries, ctx)
    }

    fn preconditions(&self, block: &Value, ctx: &Value) -> Result<(bool, Option<String>), String> {
        ProviderEnv(&NoContext).preconditions(block, ctx)
    }
}

/// The engine's environment for mutation: variables, JMESPath, context entries through a
/// [`ContextProvider`] and conditions, shared with validation.
pub struct ProviderEnv<'a>(pub &'a dyn ContextProvider);

impl MutateEnv for ProviderEnv<'_> {
    fn substitute(&self, value: &Value, at: &str, ctx: &Value) -> Result<Value, String> {
        variables::Substitution::new(ctx)
            .at(at)
            .value(value)
            .map_err(|e| e.to_string())
    }

    fn query(&self, expression: &str, ctx: &Value) -> Result<Value, String> {
        let compiled = jmespath::compile(expression).map_err(|e| e.to_string())?;
        match compiled.search(ctx) {
            Ok(value) => Ok(value),
            Err(e) if e.is_not_found() => Ok(Value::Null),
            Err(e) => Err(e.to_string()),
        }
    }

    fn load_context(&self, entries: &[Value], ctx: &mut Value) -> Result<(), String> {
        load_entries(entries, ctx, self.0)
    }

    fn preconditions(&self, block: &Value, ctx: &Value) -> Result<(bool, Option<String>), String> {
        let compiled = compile_conditions_for_one_use(Some(block), "preconditions")
            .map_err(|e| e.to_string())?;
        match compiled {
            Some(block) => check_conditions(&block, ctx),
            None => Ok((true, None)),
        }
    }
}

/// Puts `resource` at `request.object` in the context document.
pub fn set_request_object(ctx: &mut Value, resource: &Value) {
    // The context usually holds the object as it was before the patch: update it in place.
    match ctx.pointer_mut("/request/object") {
        Some(object) => crate::json::assign(object, resource),
        None => add_variable(ctx, "request.object", resource.clone()),
    }
}

/// The outcome of a mutate rule, as Kyverno reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MutateStatus {
    Pass,
    Skip,
    Error,
    Fail,
}

/// Status, message and, on `Pass`, the mutated resource.
#[derive(Debug, Clone, PartialEq)]
pub struct MutateOutcome {
    pub status: MutateStatus,
    pub message: String,
    pub patched: Option<Value>,
}

impl MutateOutcome {
    fn pass(patched: Value) -> Self {
        MutateOutcome {
            status: MutateStatus::Pass,
            message: success_message(&patched),
            patched: Some(patched),
        }
    }

    fn skip(message: impl Into<String>) -> Self {
        MutateOutcome {
            status: MutateStatus::Skip,
            message: message.into(),
            patched: None,
        }
    }

    fn error(message: impl Into<String>) -> Self {
        MutateOutcome {
            status: MutateStatus::Error,
            message: message.into(),
            patched: None,
        }
    }
}

/// Kyverno's message for an applied mutation: `mutated Pod/name in namespace ns`.
pub fn success_message(resource: &Value) -> String {
    let text = |pointer: &str| {
        resource
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let (kind, name, namespace) = (
        text("/kind"),
        text("/metadata/name"),
        text("/metadata/namespace"),
    );
    if namespace.is_empty() {
        format!("mutated {kind}/{name}")
    } else {
        format!("mutated {kind}/{name} in namespace {namespace}")
    }
}

/// Applies one mutate rule (`mutate` is the rule's `mutate` object) to `resource`.
///
/// `ctx` is the context document with the rule's own `context` loaded; its `request.object`
/// should be `resource`. On `Pass` it is updated to the mutated resource.
pub fn mutate_rule(
    mutate: &Value,
    resource: &Value,
    ctx: &mut Value,
    env: &dyn MutateEnv,
) -> MutateOutcome {
    apply_rule(mutate, resource, ctx, env)
}

fn apply_rule(
    mutate: &Value,
    resource: &Value,
    ctx: &mut Value,
    env: &dyn MutateEnv,
) -> MutateOutcome {
    match mutate.get("foreach").and_then(Value::as_array) {
        Some(entries) => match foreach(entries, resource, ctx, 0, "/mutate/foreach", env) {
            Step::Patched(patched) => MutateOutcome::pass(patched),
            Step::Unchanged(message) => MutateOutcome::skip(message),
            Step::Failed(message) => MutateOutcome::error(message),
        },
        // A foreach has already put each mutation into `request.object` as it went.
        None => match patch_once(mutate, "/mutate", resource, ctx, env) {
            Step::Patched(patched) => {
                set_request_object(ctx, &patched);
                MutateOutcome::pass(patched)
            }
            Step::Unchanged(message) => MutateOutcome::skip(message),
            Step::Failed(message) => MutateOutcome::error(message),
        },
    }
}

/// What one patch, element or foreach did. Only a patched resource goes on; the others say why
/// in their message.
enum Step {
    Patched(Value),
    Unchanged(String),
    Failed(String),
}

/// A patch of a `mutate` object or a foreach entry with its variables substituted.
enum Patch<'s> {
    StrategicMerge(Cow<'s, Value>),
    Json6902(Cow<'s, str>),
}

impl Patch<'_> {
    /// Substitutes the patch of `section` (a `mutate` object or a foreach entry).
    fn of<'s>(
        section: &'s Value,
        at: &str,
        ctx: &Value,
        env: &dyn MutateEnv,
    ) -> Result<Patch<'s>, String> {
        let overlay = section.get("patchStrategicMerge").filter(|v| !v.is_null());
        let json_patch = section
            .get("patchesJson6902")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        if let Some(overlay) = overlay {
            // Without variables substitution would only copy the overlay.
            if !has_variables(overlay) && check_depth(overlay, "overlay").is_ok() {
                return Ok(Patch::StrategicMerge(Cow::Borrowed(overlay)));
            }
            return env
                .substitute(overlay, &format!("{at}/patchStrategicMerge"), ctx)
                .map(|v| Patch::StrategicMerge(Cow::Owned(v)))
                .map_err(|e| format!("variable substitution failed: {e}"));
        }
        let Some(text) = json_patch else {
            return Err("empty mutate rule".to_owned());
        };
        let value = Value::String(text.to_owned());
        if !has_variables(&value) {
            return Ok(Patch::Json6902(Cow::Borrowed(text)));
        }
        match env.substitute(&value, &format!("{at}/patchesJson6902"), ctx) {
            Ok(Value::String(s)) => Ok(Patch::Json6902(Cow::Owned(s))),
            Ok(other) => Ok(Patch::Json6902(Cow::Owned(other.to_string()))),
            Err(e) => Err(format!("variable substitution failed: {e}")),
        }
    }

    /// The patched copy of `resource`.
    fn apply(&self, resource: &Value) -> Result<Value, String> {
        match self {
            Patch::StrategicMerge(overlay) => strategic_merge(resource, overlay),
            Patch::Json6902(text) => json6902(resource, text),
        }
        .map_err(|e| format!("failed to patch resource: {e}"))
    }

    /// Patches `resource` itself (nothing of it is kept on error).
    fn apply_into(&self, resource: Value) -> Result<Value, String> {
        match self {
            Patch::StrategicMerge(overlay) => strategic_merge_into(resource, overlay),
            Patch::Json6902(text) => json6902_into(resource, text),
        }
        .map_err(|e| format!("failed to patch resource: {e}"))
    }
}

/// Substitutes and applies the patch of a `mutate` object or a foreach entry to a copy of
/// `resource`; a patch that changes nothing is `Unchanged`.
fn patch_once(
    section: &Value,
    at: &str,
    resource: &Value,
    ctx: &Value,
    env: &dyn MutateEnv,
) -> Step {
    let patched = Patch::of(section, at, ctx, env).and_then(|patch| patch.apply(resource));
    match patched {
        Err(message) => Step::Failed(message),
        Ok(patched) if crate::json::equal(&patched, resource) => {
            Step::Unchanged("no patches applied".to_owned())
        }
        Ok(patched) => Step::Patched(patched),
    }
}

/// A list of foreach entries at one nesting level.
fn foreach(
    entries: &[Value],
    resource: &Value,
    ctx: &mut Value,
    nesting: usize,
    at: &str,
    env: &dyn MutateEnv,
) -> Step {
    let mut current: Option<Value> = None;
    let mut applied = 0usize;
    for (position, entry) in entries.iter().enumerate() {
        let list = entry
            .get("list")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let elements = match env.query(list, ctx) {
            Ok(Value::Array(items)) => items,
            Ok(other) => vec![other],
            Err(e) => return Step::Failed(format!("failed to evaluate list {list}: {e}")),
        };
        let step = foreach_elements(
            entry,
            elements,
            current.as_ref().unwrap_or(resource),
            ctx,
            nesting,
            &format!("{at}/{position}"),
            env,
        );
        match step {
            Step::Failed(message) => {
                return Step::Failed(format!("failed to mutate elements: {message}"))
            }
            Step::Unchanged(_) => {}
            Step::Patched(patched) => {
                applied += 1;
                set_request_object(ctx, &patched);
                current = Some(patched);
            }
        }
    }
    match current {
        Some(patched) if applied > 0 => Step::Patched(patched),
        _ => Step::Unchanged(format!("{applied} elements processed")),
    }
}

/// Whether a foreach entry walks its list backwards: by default for strategic merge patches
/// (kustomize applies them in reverse), else as `order` says.
fn descending(entry: &Value) -> bool {
    match entry.get("order").and_then(Value::as_str) {
        Some(order) => order == "Descending",
        None => entry
            .get("patchStrategicMerge")
            .is_some_and(|v| !v.is_null()),
    }
}

/// The elements of one foreach entry, each patching the result of the one before. The entry's
/// input `resource` is copied once, when the first element patches; later elements patch that
/// copy in place (a failure discards it, and the entry fails).
fn foreach_elements(
    entry: &Value,
    mut elements: Vec<Value>,
    resource: &Value,
    ctx: &mut Value,
    nesting: usize,
    at: &str,
    env: &dyn MutateEnv,
) -> Step {
    let mut order: Vec<usize> = (0..elements.len()).collect();
    if descending(entry) {
        order.reverse();
    }
    let no_entries = Vec::new();
    let context_entries = entry
        .get("context")
        .and_then(Value::as_array)
        .unwrap_or(&no_entries);
    let nested = entry.get("foreach").and_then(Value::as_array);
    // `element<N>` costs a second copy of every element: set only when the entry (or a foreach
    // nested in it) names it.
    let names_nested_element = crate::compile::refers_to_nested_elements(entry);
    let mut current: Option<Value> = None;
    for index in order {
        // Each element is visited once: it moves into the context.
        let Some(element) = elements
            .get_mut(index)
            .filter(|e| !e.is_null())
            .map(std::mem::take)
        else {
            continue;
        };
        if let Err(expired) = crate::deadline::check_after_work() {
            return Step::Failed(expired);
        }
        // Each element sees the context with its own variables; they are taken out again
        // afterwards instead of copying the whole context per element.
        let mut saved = SavedKeys::default();
        let names = [
            "element".to_owned(),
            format!("element{nesting}"),
            "elementIndex".to_owned(),
            format!("elementIndex{nesting}"),
        ];
        for name in &names {
            saved.remember(ctx, name);
        }
        for entry in context_entries {
            if let Some(name) = entry.get("name").and_then(Value::as_str) {
                saved.remember(ctx, name);
            }
        }
        if nested.is_some() {
            // A nested foreach updates `request.object` as it goes.
            saved.remember(ctx, "request");
        }
        let [element_name, element_nested, index_name, index_nested] = names;
        if names_nested_element {
            add_variable(ctx, &element_name, element.clone());
            add_variable(ctx, &element_nested, element);
        } else {
            add_variable(ctx, &element_name, element);
        }
        add_variable(ctx, &index_name, Value::from(index));
        add_variable(ctx, &index_nested, Value::from(index));
        let step = element_step(
            entry,
            nested,
            context_entries,
            index,
            &mut current,
            resource,
            ctx,
            nesting,
            at,
            env,
        );
        saved.restore(ctx);
        match step {
            None | Some(Step::Unchanged(_)) => {}
            Some(Step::Failed(message)) => return Step::Failed(message),
            Some(Step::Patched(patched)) => current = Some(patched),
        }
    }
    match current.filter(|c| !crate::json::equal(c, resource)) {
        Some(current) => Step::Patched(current),
        None => Step::Unchanged("no patches applied".to_owned()),
    }
}

/// One foreach element, its variables already in `ctx`: context entries, preconditions (`None`
/// when they do not hold), then the nested foreach or the patch. The element reads and patches
/// `current` (the entry's result so far), or `resource` before anything was patched.
#[allow(clippy::too_many_arguments)]
fn element_step(
    entry: &Value,
    nested: Option<&Vec<Value>>,
    context_entries: &[Value],
    index: usize,
    current: &mut Option<Value>,
    resource: &Value,
    ctx: &mut Value,
    nesting: usize,
    at: &str,
    env: &dyn MutateEnv,
) -> Option<Step> {
    if let Err(e) = env.load_context(context_entries, ctx) {
        return Some(Step::Failed(format!(
            "failed to load to mutate.foreach[{index}].context: {e}"
        )));
    }
    if let Some(block) = entry.get("preconditions").filter(|v| !v.is_null()) {
        match env.preconditions(block, ctx) {
            Err(e) => {
                return Some(Step::Failed(format!(
                    "failed to evaluate mutate.foreach[{index}].preconditions: {e}"
                )))
            }
            Ok((false, _)) => return None,
            Ok((true, _)) => {}
        }
    }
    if let Some(nested) = nested {
        let input = current.as_ref().unwrap_or(resource);
        return Some(foreach(
            nested,
            input,
            ctx,
            nesting + 1,
            &format!("{at}/foreach"),
            env,
        ));
    }
    let patch = match Patch::of(entry, at, ctx, env) {
        Ok(patch) => patch,
        Err(message) => return Some(Step::Failed(message)),
    };
    // Whether this element changed anything does not matter: the entry compares its result
    // with its input once, at the end.
    let input = match current.take() {
        Some(patched_so_far) => patched_so_far,
        None => resource.clone(),
    };
    Some(match patch.apply_into(input) {
        Ok(patched) => Step::Patched(patched),
        Err(message) => Step::Failed(message),
    })
}

/// Top-level context keys a scope is about to change, with what they held before, so the
/// context can be shared instead of copied.
#[derive(Debug, Default)]
pub(crate) struct SavedKeys(Vec<(String, Option<Value>)>);

impl SavedKeys {
    /// Remembers the top-level key of the (dotted) variable `dotted` unless already known.
    pub(crate) fn remember(&mut self, ctx: &Value, dotted: &str) {
        let root = crate::context::variable_root(dotted);
        let top = root.as_ref();
        if !self.0.iter().any(|(key, _)| key == top) {
            self.0.push((top.to_owned(), ctx.get(top).cloned()));
        }
    }

    /// Whether `key` is one of the remembered top-level keys.
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    /// Puts every remembered key back as it was (keys that were absent are removed).
    pub(crate) fn restore(self, ctx: &mut Value) {
        let Value::Object(map) = ctx else {
            return;
        };
        for (key, old) in self.0.into_iter().rev() {
            match old {
                Some(value) => {
                    map.insert(key, value);
                }
                None => {
                    map.shift_remove(&key);
                }
            }
        }
    }
}

/// The outcome for one target of a mutate-existing rule.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetOutcome {
    /// The target before mutation; `None` for an error not tied to one target.
    pub target: Option<Value>,
    pub outcome: MutateOutcome,
}

/// Applies a mutate-existing rule (`mutate.targets`) to the matching `candidates` (the
/// resources that exist, e.g. a test's `targetResources`). Each target is exposed as `target`
/// in its own copy of `ctx`, gets its `context` and `preconditions`, and is mutated by the
/// rule's patch or foreach. A namespaced policy only reaches targets in its namespace.
pub fn mutate_existing(
    mutate: &Value,
    candidates: &[Value],
    policy_namespace: Option<&str>,
    ctx: &Value,
    env: &dyn MutateEnv,
) -> Vec<TargetOutcome> {
    let mut results = Vec::new();
    let no_targets = Vec::new();
    let targets = mutate
        .get("targets")
        .and_then(Value::as_array)
        .unwrap_or(&no_targets);
    for (position, spec) in targets.iter().enumerate() {
        let mut selector = spec.clone();
        if let Value::Object(map) = &mut selector {
            map.shift_remove("context");
            map.shift_remove("preconditions");
        }
        let selector = match env.substitute(&selector, &format!("/mutate/targets/{position}"), ctx)
        {
            Ok(s) => s,
            Err(e) => {
                results.push(TargetOutcome {
                    target: None,
                    outcome: MutateOutcome::error(format!(
                        "failed to substitute variables in target[{position}]: {e}"
                    )),
                });
                continue;
            }
        };
        for candidate in candidates
            .iter()
            .filter(|c| target_selected(&selector, c, policy_namespace))
        {
            let outcome = mutate_target(mutate, spec, candidate, ctx, env);
            results.push(TargetOutcome {
                target: Some(candidate.clone()),
                outcome,
            });
        }
    }
    results
}

fn mutate_target(
    mutate: &Value,
    spec: &Value,
    target: &Value,
    ctx: &Value,
    env: &dyn MutateEnv,
) -> MutateOutcome {
    let mut target_ctx = ctx.clone();
    add_variable(&mut target_ctx, "target", target.clone());
    let no_entries = Vec::new();
    let entries = spec
        .get("context")
        .and_then(Value::as_array)
        .unwrap_or(&no_entries);
    if let Err(e) = env.load_context(entries, &mut target_ctx) {
        return MutateOutcome::error(format!("failed to load context: {e}"));
    }
    if let Some(block) = spec.get("preconditions").filter(|v| !v.is_null()) {
        match env.preconditions(block, &target_ctx) {
            Err(e) => {
                return MutateOutcome::error(format!("failed to evaluate preconditions: {e}"))
            }
            Ok((false, message)) => {
                let text = match message.filter(|m| !m.is_empty()) {
                    Some(m) => format!("preconditions not met; {m}"),
                    None => "preconditions not met".to_owned(),
                };
                return MutateOutcome::skip(text);
            }
            Ok((true, _)) => {}
        }
    }
    apply_rule(mutate, target, &mut target_ctx, env)
}

/// Whether `resource` is selected by a (substituted) target spec: apiVersion and kind, name
/// and namespace with wildcards, and a label selector.
fn target_selected(spec: &Value, resource: &Value, policy_namespace: Option<&str>) -> bool {
    let text = |v: &Value, pointer: &str| {
        v.pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let api_version = text(spec, "/apiVersion");
    if !api_version.is_empty() && api_version != text(resource, "/apiVersion") {
        return false;
    }
    let kind = text(spec, "/kind");
    if !kind.is_empty() && kind != text(resource, "/kind") {
        return false;
    }
    let namespace = match policy_namespace {
        Some(ns) => ns.to_owned(),
        None => text(spec, "/namespace"),
    };
    let name = text(spec, "/name");
    let (res_namespace, res_name) = (
        text(resource, "/metadata/namespace"),
        text(resource, "/metadata/name"),
    );
    if !namespace.is_empty() && !wildcard_match(&namespace, &res_namespace) {
        return false;
    }
    if !name.is_empty() && !wildcard_match(&name, &res_name) {
        return false;
    }
    match spec.get("selector").filter(|s| !s.is_null()) {
        Some(selector) => labels_match(selector, resource.pointer("/metadata/labels")),
        None => true,
    }
}

fn labels_match(selector: &Value, labels: Option<&Value>) -> bool {
    let label = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
    if let Some(match_labels) = selector.get("matchLabels").and_then(Value::as_object) {
        if match_labels.iter().any(|(k, v)| label(k) != v.as_str()) {
            return false;
        }
    }
    let no_expressions = Vec::new();
    let expressions = selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .unwrap_or(&no_expressions);
    expressions.iter().all(|expression| {
        let key = expression
            .get("key")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let values: Vec<&str> = expression
            .get("values")
            .and_then(Value::as_array)
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        match expression.get("operator").and_then(Value::as_str) {
            Some("In") => label(key).is_some_and(|v| values.contains(&v)),
            Some("NotIn") => label(key).is_none_or(|v| !values.contains(&v)),
            Some("Exists") => label(key).is_some(),
            Some("DoesNotExist") => label(key).is_none(),
            _ => false,
        }
    })
}
