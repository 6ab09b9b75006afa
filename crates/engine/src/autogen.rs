//! Auto-generation of Pod-controller rules ("autogen"), as Kyverno does it for `kyverno.io/v1`
//! ClusterPolicy/Policy objects.
//!
//! A rule written for Pods only is extended to the workload controllers that embed a Pod
//! template: one `autogen-<rule>` rule for the controllers with `spec.template` (DaemonSet,
//! Deployment, Job, ReplicaSet, ReplicationController, StatefulSet) and one
//! `autogen-cronjob-<rule>` rule for CronJob (`spec.jobTemplate.spec.template`). Patterns are
//! wrapped under the template path and `request.object.spec` / `request.object.metadata`
//! references are rewritten textually, as Kyverno does. Generated rules name their kinds fully
//! qualified (`apps/v1/Deployment`, `batch/v1/CronJob`), as current Kyverno does.
//!
//! The policy annotation `pod-policies.kyverno.io/autogen-controllers` narrows the controller
//! set (`Deployment,StatefulSet`), switches autogen off (`none`) or names custom controllers
//! that embed a Pod template (`CloneSet`). Everything here works on the policy as JSON so it
//! does not depend on the typed API, and mirrors Kyverno's behaviour including its quirks.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

/// Policy annotation that selects the controllers autogen extends Pod rules to.
pub const AUTOGEN_CONTROLLERS_ANNOTATION: &str = "pod-policies.kyverno.io/autogen-controllers";

/// Prefix every generated rule name starts with; rules named like this are never autogen'd.
pub const AUTOGEN_RULE_PREFIX: &str = "autogen-";

/// The controllers autogen targets when the policy has no annotation (Kyverno ≥ 1.9).
pub const DEFAULT_CONTROLLERS: [&str; 7] = [
    "CronJob",
    "DaemonSet",
    "Deployment",
    "Job",
    "ReplicaSet",
    "ReplicationController",
    "StatefulSet",
];

/// Controllers whose Pod template sits at `spec.template` (all defaults except CronJob), sorted.
const TEMPLATE_CONTROLLERS: [&str; 6] = [
    "DaemonSet",
    "Deployment",
    "Job",
    "ReplicaSet",
    "ReplicationController",
    "StatefulSet",
];

const CRONJOB: &str = "CronJob";

/// Kubernetes limits names to 63 characters; Kyverno cuts generated rule names there.
const MAX_RULE_NAME_LEN: usize = 63;

/// The controllers a policy's Pod rules are extended to, or None when autogen is off.
///
/// The kinds are simple names: the `spec.template` controllers (sorted) followed by `CronJob`
/// when it is targeted. Custom kinds from the annotation appear only when the annotation names
/// no standard template controller, because that is when Kyverno uses them.
pub fn controllers(policy: &Value) -> Option<Vec<String>> {
    let requested = requested_controllers(policy, "")?;
    let mut kinds = Vec::new();
    let template_part = strip_cronjob(&requested);
    if !template_part.is_empty() {
        kinds = template_kinds(&template_part);
    }
    if targets_cronjob(&requested) {
        kinds.push(CRONJOB.to_owned());
    }
    if kinds.is_empty() {
        None
    } else {
        Some(kinds)
    }
}

/// Generated rules (the `autogen-*` rules) for the policy, in Kyverno's order, each a full rule JSON.
///
/// For every source rule in order: its `autogen-<rule>` rule, then its `autogen-cronjob-<rule>`.
pub fn generate_rules(policy: &Value) -> Vec<Value> {
    match requested_controllers(policy, "") {
        Some(requested) => generate_for(policy_rules(policy), &requested),
        None => Vec::new(),
    }
}

/// The policy's rules followed by its autogen rules, as Kyverno's engine sees them (Kyverno's `ComputeRules`).
///
/// When autogen produces rules, rules the author named `autogen-*` are dropped in favour of the
/// generated ones; when it produces none, the policy's rules are returned unchanged.
pub fn compute_rules(policy: &Value) -> Vec<Value> {
    compute_rules_for_kind(policy, "")
}

/// Kyverno's `ComputeRules(policy, kind)`: the rules its validate engine uses for a resource of
/// `kind`. Only the autogen rule for that one kind is generated, and only when the kind is among
/// the policy's controllers; an empty `kind` behaves like [`compute_rules`].
pub fn compute_rules_for_kind(policy: &Value, kind: &str) -> Vec<Value> {
    let rules = policy_rules(policy);
    let Some(requested) = requested_controllers(policy, kind) else {
        return rules.to_vec();
    };
    let generated = generate_for(rules, &requested);
    if generated.is_empty() {
        return rules.to_vec();
    }
    rules
        .iter()
        .filter(|rule| !is_autogen_rule_name(rule_name(rule)))
        .cloned()
        .chain(generated)
        .collect()
}

/// Whether `name` is the name of a generated rule.
pub fn is_autogen_rule_name(name: &str) -> bool {
    name.starts_with(AUTOGEN_RULE_PREFIX)
}

// ---------------------------------------------------------------------------------------------
// Which controllers

fn policy_rules(policy: &Value) -> &[Value] {
    policy
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn rule_name(rule: &Value) -> &str {
    rule.get("name").and_then(Value::as_str).unwrap_or_default()
}

/// The comma-separated controller list Kyverno hands to rule generation, or None when nothing
/// is generated. `kind` non-empty asks for that single kind (Kyverno's per-resource call).
fn requested_controllers(policy: &Value, kind: &str) -> Option<String> {
    if !can_autogen(policy_rules(policy)) {
        return None;
    }
    // A set, as in Kyverno: duplicates collapse, order does not matter (lists are sorted later).
    let actual: BTreeSet<&str> = match policy
        .pointer("/metadata/annotations")
        .and_then(|annotations| annotations.get(AUTOGEN_CONTROLLERS_ANNOTATION))
        .and_then(Value::as_str)
    {
        Some(annotation) => annotation.split(',').collect(),
        None => DEFAULT_CONTROLLERS.into_iter().collect(),
    };
    let requested = if kind.is_empty() {
        actual.into_iter().collect::<Vec<_>>().join(",")
    } else if actual.contains(kind) {
        kind.to_owned()
    } else {
        return None;
    };
    (requested != "none").then_some(requested)
}

/// Kyverno's `CanAutoGen`: the policy qualifies when no rule generates or uses a JSON patch,
/// no match/exclude filter names resources, selects by labels or annotations, or mixes Pod with
/// other kinds, and at least one filter names Pod or a controller kind.
fn can_autogen(rules: &[Value]) -> bool {
    let mut needed = false;
    for rule in rules {
        if rule.get("generate").is_some_and(is_non_empty) {
            return false;
        }
        if let Some(mutate) = rule.get("mutate") {
            let uses_json_patch = |m: &Value| {
                m.get("patchesJson6902")
                    .and_then(Value::as_str)
                    .is_some_and(|patch| !patch.is_empty())
            };
            if uses_json_patch(mutate) || array(mutate.get("foreach")).iter().any(uses_json_patch) {
                return false;
            }
        }
        for block in ["match", "exclude"] {
            let Some(block) = rule.get(block).filter(|b| !b.is_null()) else {
                continue;
            };
            let descriptions = std::iter::once(block.get("resources"))
                .chain(filters(block, "any").iter().map(|f| f.get("resources")))
                .chain(filters(block, "all").iter().map(|f| f.get("resources")));
            for description in descriptions.flatten() {
                if !supports_autogen(description, &mut needed) {
                    return false;
                }
            }
        }
    }
    needed
}

fn supports_autogen(description: &Value, needed: &mut bool) -> bool {
    let has_name = description
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(|name| !name.is_empty());
    let has_names = !array(description.get("names")).is_empty();
    let present = |key: &str| description.get(key).is_some_and(|v| !v.is_null());
    let kinds = string_list(description.get("kinds"));
    let pod_mixed = kinds.len() > 1 && contains_kind(&kinds, "Pod");
    if has_name || has_names || present("selector") || present("annotations") || pod_mixed {
        return false;
    }
    // Exact names only: `v1/Pod` does not count here, as in Kyverno.
    *needed = *needed
        || kinds
            .iter()
            .any(|kind| *kind == "Pod" || DEFAULT_CONTROLLERS.contains(kind));
    true
}

fn strip_cronjob(controllers: &str) -> String {
    split_sorted(controllers)
        .into_iter()
        .filter(|kind| *kind != CRONJOB)
        .collect::<Vec<_>>()
        .join(",")
}

/// Kyverno checks for CronJob (or the legacy `all`) by substring.
fn targets_cronjob(controllers: &str) -> bool {
    controllers.contains(CRONJOB) || controllers.contains("all")
}

/// The kinds the `autogen-<rule>` rule matches for a (CronJob-less) controller list: `all`
/// means every template controller; otherwise the standard ones named, or — when none is
/// standard — the names as given (custom controllers such as `CloneSet`).
fn template_kinds(controllers: &str) -> Vec<String> {
    if controllers == "all" {
        return TEMPLATE_CONTROLLERS
            .iter()
            .map(|k| (*k).to_owned())
            .collect();
    }
    let named = split_sorted(controllers);
    if controllers != "none" {
        let standard: Vec<String> = named
            .iter()
            .filter(|kind| TEMPLATE_CONTROLLERS.contains(kind))
            .map(|kind| (*kind).to_owned())
            .collect();
        if !standard.is_empty() {
            return standard;
        }
    }
    named.into_iter().map(str::to_owned).collect()
}

fn split_sorted(controllers: &str) -> Vec<&str> {
    let mut kinds: Vec<&str> = controllers.split(',').collect();
    kinds.sort_unstable();
    kinds
}

/// Group-qualified kinds in generated rules, so CRDs that reuse a name (`Job`) do not match.
/// Kyverno pins the version too (`batch/v1/CronJob`); bylaw accepts any version of the group so
/// that older served versions (`batch/v1beta1` CronJobs) are still covered — a deliberate
/// departure recorded in docs/compatibility.md.
fn qualified_kind(kind: &str) -> String {
    match kind {
        "DaemonSet" | "Deployment" | "StatefulSet" | "ReplicaSet" => format!("apps/*/{kind}"),
        "Job" | "CronJob" => format!("batch/*/{kind}"),
        "ReplicationController" | "Pod" => format!("v1/{kind}"),
        other => other.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// Kind strings as Kyverno reads them

/// Kyverno's `ContainsKind`: whether any entry's kind (ignoring group, version and subresource)
/// equals `kind`.
fn contains_kind(kinds: &[&str], kind: &str) -> bool {
    kinds.iter().any(|entry| kind_name(entry) == kind)
}

/// The kind part of `Kind`, `Kind/sub`, `Kind.sub`, `version/Kind[/sub]`, `group/version/Kind[/sub]`,
/// split the way Kyverno's `GetKindFromGVK` + `SplitSubresource` do.
fn kind_name(entry: &str) -> &str {
    // Kyverno turns the first `.` of a kind into a subresource separator (`Pod.status`).
    let parts: Vec<&str> = entry.split('/').collect();
    match parts.as_slice() {
        [kind] => strip_dotted_subresource(kind),
        [version, kind] if looks_like_version(version) => strip_dotted_subresource(kind),
        [kind, _subresource] => kind,
        [version, kind, _subresource] if looks_like_version(version) => kind,
        [_group, _version, kind] => strip_dotted_subresource(kind),
        [_group, _version, kind, _subresource] => kind,
        _ => "",
    }
}

fn strip_dotted_subresource(kind: &str) -> &str {
    kind.split_once('.').map_or(kind, |(kind, _)| kind)
}

/// Kyverno's version test: `v<digit>…` or anything ending in `*`.
fn looks_like_version(part: &str) -> bool {
    let mut chars = part.chars();
    (chars.next() == Some('v') && chars.next().is_some_and(|c| c.is_ascii_digit()))
        || part.ends_with('*')
}

fn array(value: Option<&Value>) -> &[Value] {
    value.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn filters<'a>(block: &'a Value, key: &str) -> &'a [Value] {
    array(block.get(key))
}

fn string_list(value: Option<&Value>) -> Vec<&str> {
    array(value).iter().filter_map(Value::as_str).collect()
}

/// Kinds named anywhere in a match/exclude block (`resources`, `all[]`, `any[]`).
fn block_kinds(block: &Value) -> Vec<&str> {
    let mut kinds = string_list(block.pointer("/resources/kinds"));
    for filter in filters(block, "all").iter().chain(filters(block, "any")) {
        kinds.extend(string_list(filter.pointer("/resources/kinds")));
    }
    kinds
}

fn is_non_empty(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Object(map) => !map.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::String(text) => !text.is_empty(),
        _ => true,
    }
}

fn present(value: Option<&Value>) -> Option<&Value> {
    value.filter(|v| !v.is_null())
}

// ---------------------------------------------------------------------------------------------
// Rule generation

/// Where the Pod template lives in the generated rule's target kinds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    /// `spec.template` (Deployment and friends).
    Template,
    /// `spec.jobTemplate.spec.template` (CronJob).
    CronJob,
}

/// How match/exclude filters get their kinds replaced.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FilterRewrite {
    /// Only filters that name Pod get the new kinds.
    PodFilters,
    /// Every filter gets the new kinds.
    AllFilters,
}

fn generate_for(rules: &[Value], controllers: &str) -> Vec<Value> {
    let template_controllers = strip_cronjob(controllers);
    let mut generated = Vec::new();
    for rule in rules {
        if let Some(rule) = rule_for_template_controllers(rule, &template_controllers) {
            generated.push(finish_rule(rule, Target::Template));
        }
        if let Some(rule) = rule_for_cronjob(rule, controllers) {
            generated.push(finish_rule(rule, Target::CronJob));
        }
    }
    generated
}

/// The `autogen-<rule>` rule before its variable paths are rewritten, or None when the rule
/// does not qualify (already generated, not a Pod rule, excludes other kinds, unsupported type).
fn rule_for_template_controllers(rule: &Value, controllers: &str) -> Option<Value> {
    let name = rule_name(rule);
    if is_autogen_rule_name(name) || controllers.is_empty() {
        return None;
    }
    let match_kinds = present(rule.get("match"))
        .map(block_kinds)
        .unwrap_or_default();
    let exclude_kinds = present(rule.get("exclude"))
        .map(block_kinds)
        .unwrap_or_default();
    if !contains_kind(&match_kinds, "Pod")
        || (!exclude_kinds.is_empty() && !contains_kind(&exclude_kinds, "Pod"))
    {
        return None;
    }
    generate_rule(
        autogen_rule_name("autogen", name),
        rule,
        Target::Template,
        &template_kinds(controllers),
        FilterRewrite::PodFilters,
    )
}

/// The `autogen-cronjob-<rule>` rule: Kyverno builds it from the template-controller rule, so
/// patterns end up wrapped twice (`spec.jobTemplate.spec.template.…`).
fn rule_for_cronjob(rule: &Value, controllers: &str) -> Option<Value> {
    if !targets_cronjob(controllers) {
        return None;
    }
    let intermediate = rule_for_template_controllers(rule, controllers)?;
    generate_rule(
        autogen_rule_name("autogen-cronjob", rule_name(rule)),
        &intermediate,
        Target::CronJob,
        &[CRONJOB.to_owned()],
        FilterRewrite::AllFilters,
    )
}

fn autogen_rule_name(prefix: &str, name: &str) -> String {
    let mut full = format!("{prefix}-{name}");
    if full.len() > MAX_RULE_NAME_LEN {
        // Kyverno cuts at byte 63; stay on a character boundary.
        let mut cut = MAX_RULE_NAME_LEN;
        while !full.is_char_boundary(cut) {
            cut -= 1;
        }
        full.truncate(cut);
    }
    full
}

/// Kyverno's `generateRule`: renames the rule, rewrites match/exclude kinds and wraps the
/// rule's patterns for `target`. Returns None for rule types autogen does not cover.
fn generate_rule(
    name: String,
    rule: &Value,
    target: Target,
    kinds: &[String],
    rewrite: FilterRewrite,
) -> Option<Value> {
    let mut rule = rule.as_object()?.clone();
    rule.insert("name".to_owned(), Value::String(name));
    let kinds: Vec<Value> = kinds
        .iter()
        .map(|kind| Value::String(qualified_kind(kind)))
        .collect();
    let mut match_block = match rule.get("match") {
        Some(Value::Object(block)) => block.clone(),
        _ => Map::new(),
    };
    rewrite_block_kinds(&mut match_block, &kinds, rewrite, false);
    rule.insert("match".to_owned(), Value::Object(match_block));
    if let Some(Value::Object(exclude)) = rule.get_mut("exclude") {
        rewrite_block_kinds(exclude, &kinds, rewrite, true);
    }

    let (template_key, shift) = match target {
        Target::Template => ("template", "spec/template"),
        Target::CronJob => ("jobTemplate", "spec/jobTemplate/spec/template"),
    };
    let wrap = |value: Value| -> Value {
        let mut inner = Map::new();
        inner.insert(template_key.to_owned(), value);
        let mut outer = Map::new();
        outer.insert("spec".to_owned(), Value::Object(inner));
        Value::Object(outer)
    };

    if let Some(Value::Object(mutate)) = rule.get("mutate") {
        if let Some(patch) = present(mutate.get("patchStrategicMerge")) {
            let mut new_mutate = Map::new();
            new_mutate.insert("patchStrategicMerge".to_owned(), wrap(patch.clone()));
            rule.insert("mutate".to_owned(), Value::Object(new_mutate));
            return Some(Value::Object(rule));
        }
        let foreach = array(mutate.get("foreach"));
        if !foreach.is_empty() {
            let new_foreach = foreach
                .iter()
                .map(|entry| {
                    let mut new_entry = Map::new();
                    for key in ["list", "context", "preconditions"] {
                        if let Some(value) = entry.get(key).filter(|v| is_non_empty(v)) {
                            new_entry.insert(key.to_owned(), value.clone());
                        }
                    }
                    let patch = present(entry.get("patchStrategicMerge"))
                        .cloned()
                        .unwrap_or(Value::Null);
                    new_entry.insert("patchStrategicMerge".to_owned(), wrap(patch));
                    Value::Object(new_entry)
                })
                .collect();
            let mut new_mutate = Map::new();
            new_mutate.insert("foreach".to_owned(), Value::Array(new_foreach));
            rule.insert("mutate".to_owned(), Value::Object(new_mutate));
            return Some(Value::Object(rule));
        }
    }

    if let Some(Value::Object(validate)) = rule.get("validate") {
        if let Some(new_validate) = generate_validate(validate, shift, &wrap) {
            rule.insert("validate".to_owned(), Value::Object(new_validate));
            return Some(Value::Object(rule));
        }
    }

    if present(rule.get("verifyImages")).is_some() {
        return Some(Value::Object(rule));
    }
    None
}

/// The generated `validate` block, or None when the validation type is not autogen'd
/// (e.g. `manifests`).
fn generate_validate(
    validate: &Map<String, Value>,
    shift: &str,
    wrap: &dyn Fn(Value) -> Value,
) -> Option<Map<String, Value>> {
    // Kyverno rebuilds the block from scratch: only these settings survive next to the check.
    let rebuilt = |pivot: &str| {
        let mut out = Map::new();
        for key in [
            "failureAction",
            "failureActionOverrides",
            "allowExistingViolations",
        ] {
            if let Some(value) = present(validate.get(key)) {
                out.insert(key.to_owned(), value.clone());
            }
        }
        let message = validate
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !message.is_empty() {
            out.insert(
                "message".to_owned(),
                Value::String(shift_references(message, shift, pivot)),
            );
        }
        out
    };

    if let Some(pattern) = present(validate.get("pattern")) {
        let mut out = rebuilt("pattern");
        out.insert("pattern".to_owned(), wrap(pattern.clone()));
        return Some(out);
    }
    if let Some(deny) = present(validate.get("deny")) {
        let mut out = rebuilt("deny");
        out.insert("deny".to_owned(), deny.clone());
        return Some(out);
    }
    if let Some(pod_security) = present(validate.get("podSecurity")) {
        let mut out = rebuilt("podSecurity");
        let mut new_pod_security = Map::new();
        for key in ["level", "version", "exclude"] {
            if let Some(value) = pod_security.get(key).filter(|v| is_non_empty(v)) {
                new_pod_security.insert(key.to_owned(), value.clone());
            }
        }
        out.insert("podSecurity".to_owned(), Value::Object(new_pod_security));
        return Some(out);
    }
    if let Some(any_pattern) = present(validate.get("anyPattern")) {
        let mut out = rebuilt("anyPattern");
        // Kyverno logs and drops an anyPattern that is not a list.
        let patterns = match any_pattern {
            Value::Array(patterns) => {
                Value::Array(patterns.iter().map(|p| wrap(p.clone())).collect())
            }
            _ => Value::Null,
        };
        out.insert("anyPattern".to_owned(), patterns);
        return Some(out);
    }
    let foreach = array(validate.get("foreach"));
    if !foreach.is_empty() {
        let mut out = rebuilt("pattern");
        out.insert("foreach".to_owned(), Value::Array(foreach.to_vec()));
        return Some(out);
    }
    if present(validate.get("cel")).is_some() {
        return Some(validate.clone());
    }
    if let Some(assert) = present(validate.get("assert")) {
        let mut out = validate.clone();
        let mut new_assert = assert.clone();
        if let Value::Object(tree) = &mut new_assert {
            for node in ["object", "oldObject"] {
                if let Some(object @ Value::Object(_)) = tree.get(node) {
                    let wrapped = wrap(object.clone());
                    tree.insert(node.to_owned(), wrapped);
                }
            }
        }
        out.insert("assert".to_owned(), new_assert);
        return Some(out);
    }
    None
}

/// Replaces the kinds of a match/exclude block: in `any` if present, else in `all`, else in
/// `resources` (for exclude only when it already names kinds).
fn rewrite_block_kinds(
    block: &mut Map<String, Value>,
    kinds: &[Value],
    rewrite: FilterRewrite,
    is_exclude: bool,
) {
    for key in ["any", "all"] {
        if let Some(Value::Array(list)) = block.get_mut(key) {
            if list.is_empty() {
                continue;
            }
            for filter in list.iter_mut() {
                let Value::Object(filter) = filter else {
                    continue;
                };
                let names_pod = {
                    let current = filter
                        .get("resources")
                        .map(|r| string_list(r.get("kinds")))
                        .unwrap_or_default();
                    contains_kind(&current, "Pod")
                };
                if rewrite == FilterRewrite::AllFilters || names_pod {
                    set_kinds(filter, kinds);
                }
            }
            return;
        }
    }
    let has_kinds = !array(block.get("resources").and_then(|r| r.get("kinds"))).is_empty();
    if !is_exclude || has_kinds {
        set_kinds(block, kinds);
    }
}

/// Sets `resources.kinds` in a filter (or legacy block), creating `resources` when missing.
fn set_kinds(holder: &mut Map<String, Value>, kinds: &[Value]) {
    let resources = holder
        .entry("resources")
        .or_insert_with(|| Value::Object(Map::new()));
    if !resources.is_object() {
        *resources = Value::Object(Map::new());
    }
    if let Value::Object(resources) = resources {
        resources.insert("kinds".to_owned(), Value::Array(kinds.to_vec()));
    }
}

/// Kyverno's `createRule` + `convertRule`: keeps only the fields a generated rule carries
/// (dropping e.g. `imageExtractors` and `reportProperties`, as Kyverno does) and rewrites
/// request paths textually.
fn finish_rule(rule: Value, target: Target) -> Value {
    let Value::Object(mut source) = rule else {
        return rule;
    };
    let mut out = Map::new();
    // Field order of Kyverno's rule type, for readable output.
    for key in [
        "name",
        "context",
        "match",
        "exclude",
        "preconditions",
        "celPreconditions",
        "mutate",
        "validate",
        "verifyImages",
        "skipBackgroundRequests",
    ] {
        let Some(value) = source.remove(key) else {
            continue;
        };
        let keep = match key {
            "name" | "match" => true,
            "verifyImages" | "skipBackgroundRequests" => !value.is_null(),
            _ => is_non_empty(&value),
        };
        if keep {
            out.insert(key.to_owned(), value);
        }
    }
    let uses_cel = out
        .get("validate")
        .and_then(|v| present(v.get("cel")))
        .is_some();
    let mut rule = Value::Object(out);
    replace_request_paths(&mut rule, replacements(target, uses_cel));
    rule
}

fn replacements(target: Target, cel: bool) -> &'static [(&'static str, &'static str)] {
    match (target, cel) {
        (Target::Template, false) => &[
            ("request.object.spec", "request.object.spec.template.spec"),
            (
                "request.oldObject.spec",
                "request.oldObject.spec.template.spec",
            ),
            (
                "request.object.metadata",
                "request.object.spec.template.metadata",
            ),
            (
                "request.oldObject.metadata",
                "request.oldObject.spec.template.metadata",
            ),
        ],
        // CEL sees `object`/`oldObject` directly, so the shorter forms are rewritten.
        (Target::Template, true) => &[
            ("object.spec", "object.spec.template.spec"),
            ("oldObject.spec", "oldObject.spec.template.spec"),
            ("object.metadata", "object.spec.template.metadata"),
            ("oldObject.metadata", "oldObject.spec.template.metadata"),
        ],
        (Target::CronJob, false) => &[
            (
                "request.object.spec",
                "request.object.spec.jobTemplate.spec.template.spec",
            ),
            (
                "request.oldObject.spec",
                "request.oldObject.spec.jobTemplate.spec.template.spec",
            ),
            (
                "request.object.metadata",
                "request.object.spec.jobTemplate.spec.template.metadata",
            ),
            (
                "request.oldObject.metadata",
                "request.oldObject.spec.jobTemplate.spec.template.metadata",
            ),
        ],
        (Target::CronJob, true) => &[
            ("object.spec", "object.spec.jobTemplate.spec.template.spec"),
            (
                "oldObject.spec",
                "oldObject.spec.jobTemplate.spec.template.spec",
            ),
            (
                "object.metadata",
                "object.spec.jobTemplate.spec.template.metadata",
            ),
            (
                "oldObject.metadata",
                "oldObject.spec.jobTemplate.spec.template.metadata",
            ),
        ],
    }
}

/// Applies the replacements, in order, to every string and object key of the rule — the same
/// effect as Kyverno's byte replacement over the rule's JSON, since the searched paths cannot
/// span JSON tokens. Iterative, so deeply nested input cannot overflow the stack.
fn replace_request_paths(rule: &mut Value, replacements: &[(&str, &str)]) {
    let replace = |text: &str| -> Option<String> {
        if !replacements.iter().any(|(from, _)| text.contains(from)) {
            return None;
        }
        let mut out = text.to_owned();
        for (from, to) in replacements {
            out = out.replace(from, to);
        }
        Some(out)
    };
    let mut stack: Vec<&mut Value> = vec![rule];
    while let Some(value) = stack.pop() {
        match value {
            Value::String(text) => {
                if let Some(replaced) = replace(text) {
                    *text = replaced;
                }
            }
            Value::Array(items) => stack.extend(items.iter_mut()),
            Value::Object(map) => {
                if map.keys().any(|key| replace(key).is_some()) {
                    let old = std::mem::take(map);
                    *map = old
                        .into_iter()
                        .map(|(key, value)| (replace(&key).unwrap_or(key), value))
                        .collect();
                }
                stack.extend(map.values_mut());
            }
            _ => {}
        }
    }
}

/// `$(…)` references at the start of a message or after a character other than `\`.
static REFERENCES: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^\$\(.[^ ]*\)|[^\\]\$\(.[^ ]*\)").ok());

/// Kyverno's `FindAndShiftReferences`: inserts `shift` after `pivot` in every `$(…)` reference
/// of a message, so references into the pattern still point at the wrapped pattern.
fn shift_references(message: &str, shift: &str, pivot: &str) -> String {
    let Some(references) = REFERENCES.as_ref() else {
        return message.to_owned();
    };
    let mut value = message.to_owned();
    let mut pivot = pivot.to_owned();
    for found in references.find_iter(message) {
        let old_reference = found.as_str();
        let (prefix, reference) = if old_reference.starts_with("$(") {
            ("", old_reference)
        } else {
            let mut chars = old_reference.chars();
            let first = chars.next().map_or(0, char::len_utf8);
            (
                old_reference.get(..first).unwrap_or_default(),
                chars.as_str(),
            )
        };
        if pivot == "anyPattern" {
            // The pattern index follows the pivot: `anyPattern/<i>/…`. Kyverno keeps the
            // extended pivot for the following references too.
            let start = reference
                .find(&pivot)
                .map_or(pivot.len(), |index| index + pivot.len() + 1);
            let Some(rest) = reference.get(start..) else {
                continue;
            };
            let index = rest.split('/').next().unwrap_or_default();
            pivot = format!("{pivot}/{index}");
        }
        let shifted = reference.replace(&pivot, &format!("{pivot}/{shift}"));
        value = value.replacen(old_reference, &format!("{prefix}{shifted}"), 1);
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(yaml: &str) -> Value {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn names(rules: &[Value]) -> Vec<&str> {
        rules.iter().map(rule_name).collect()
    }

    fn find<'a>(rules: &'a [Value], name: &str) -> &'a Value {
        rules
            .iter()
            .find(|r| rule_name(r) == name)
            .unwrap_or_else(|| panic!("no rule {name} in {:?}", names(rules)))
    }

    const TEMPLATE_KINDS: [&str; 6] = [
        "apps/*/DaemonSet",
        "apps/*/Deployment",
        "batch/*/Job",
        "apps/*/ReplicaSet",
        "v1/ReplicationController",
        "apps/*/StatefulSet",
    ];

    /// The docs' example policy, with an optional autogen annotation.
    fn registries_policy(annotation: Option<&str>) -> Value {
        let mut policy = policy(
            r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: restrict-image-registries
spec:
  rules:
  - name: validate-registries
    match:
      any:
      - resources:
          kinds:
          - Pod
    validate:
      failureAction: Enforce
      message: "Images may only come from our internal enterprise registry."
      pattern:
        spec:
          containers:
          - image: "registry.domain.com/*"
"#,
        );
        if let Some(annotation) = annotation {
            policy["metadata"]["annotations"] =
                json!({ AUTOGEN_CONTROLLERS_ANNOTATION: annotation });
        }
        policy
    }

    #[test]
    fn pod_rule_gets_template_and_cronjob_rules() {
        let policy = registries_policy(None);
        let rules = compute_rules(&policy);
        assert_eq!(
            names(&rules),
            [
                "validate-registries",
                "autogen-validate-registries",
                "autogen-cronjob-validate-registries"
            ]
        );
        let expected_template = json!({
            "name": "autogen-validate-registries",
            "match": {"any": [{"resources": {"kinds": TEMPLATE_KINDS}}]},
            "validate": {
                "failureAction": "Enforce",
                "message": "Images may only come from our internal enterprise registry.",
                "pattern": {"spec": {"template": {"spec": {"containers": [
                    {"image": "registry.domain.com/*"}
                ]}}}}
            }
        });
        assert_eq!(rules[1], expected_template);
        let expected_cronjob = json!({
            "name": "autogen-cronjob-validate-registries",
            "match": {"any": [{"resources": {"kinds": ["batch/*/CronJob"]}}]},
            "validate": {
                "failureAction": "Enforce",
                "message": "Images may only come from our internal enterprise registry.",
                "pattern": {"spec": {"jobTemplate": {"spec": {"template": {"spec": {
                    "containers": [{"image": "registry.domain.com/*"}]
                }}}}}}
            }
        });
        assert_eq!(rules[2], expected_cronjob);
        assert_eq!(generate_rules(&policy), rules[1..]);
        assert_eq!(
            controllers(&policy).unwrap(),
            [
                "DaemonSet",
                "Deployment",
                "Job",
                "ReplicaSet",
                "ReplicationController",
                "StatefulSet",
                "CronJob"
            ]
        );
    }

    /// Annotation value → (generated rule names, kinds of the `autogen-` rule, controllers()).
    #[test]
    fn annotation_selects_controllers() {
        type Case = (
            &'static str,
            &'static [&'static str],
            &'static [&'static str],
            Option<&'static [&'static str]>,
        );
        let cases: &[Case] = &[
            ("none", &[], &[], None),
            (
                "Deployment",
                &["autogen-validate-registries"],
                &["apps/*/Deployment"],
                Some(&["Deployment"]),
            ),
            (
                "StatefulSet,Deployment",
                &["autogen-validate-registries"],
                &["apps/*/Deployment", "apps/*/StatefulSet"],
                Some(&["Deployment", "StatefulSet"]),
            ),
            (
                "Deployment,CronJob",
                &[
                    "autogen-validate-registries",
                    "autogen-cronjob-validate-registries",
                ],
                &["apps/*/Deployment"],
                Some(&["Deployment", "CronJob"]),
            ),
            (
                "CronJob",
                &["autogen-cronjob-validate-registries"],
                &[],
                Some(&["CronJob"]),
            ),
            // A custom controller embedding a Pod template (documented for OpenKruise).
            (
                "CloneSet",
                &["autogen-validate-registries"],
                &["CloneSet"],
                Some(&["CloneSet"]),
            ),
            // Kyverno drops custom kinds once a standard controller is named (issue #7446).
            (
                "CloneSet,Deployment",
                &["autogen-validate-registries"],
                &["apps/*/Deployment"],
                Some(&["Deployment"]),
            ),
            // Names are not trimmed: " StatefulSet" is not a known controller.
            (
                "Deployment, StatefulSet",
                &["autogen-validate-registries"],
                &["apps/*/Deployment"],
                Some(&["Deployment"]),
            ),
            // The legacy value `all` means every controller.
            (
                "all",
                &[
                    "autogen-validate-registries",
                    "autogen-cronjob-validate-registries",
                ],
                &TEMPLATE_KINDS,
                Some(&[
                    "DaemonSet",
                    "Deployment",
                    "Job",
                    "ReplicaSet",
                    "ReplicationController",
                    "StatefulSet",
                    "CronJob",
                ]),
            ),
            // An empty annotation selects nothing.
            ("", &[], &[], None),
        ];
        for (annotation, expected_names, expected_kinds, expected_controllers) in cases {
            let policy = registries_policy(Some(annotation));
            let generated = generate_rules(&policy);
            assert_eq!(
                names(&generated),
                *expected_names,
                "annotation {annotation:?}"
            );
            if let Some(rule) = generated
                .iter()
                .find(|r| rule_name(r) == "autogen-validate-registries")
            {
                assert_eq!(
                    rule["match"]["any"][0]["resources"]["kinds"],
                    json!(expected_kinds),
                    "annotation {annotation:?}"
                );
            }
            assert_eq!(
                controllers(&policy),
                expected_controllers.map(|c| c.iter().map(|s| s.to_string()).collect()),
                "annotation {annotation:?}"
            );
            let mut expected_all = vec!["validate-registries"];
            expected_all.extend(expected_names.iter());
            assert_eq!(names(&compute_rules(&policy)), expected_all);
        }
    }

    /// Rules whose match/exclude Kyverno considers not applicable to controllers switch autogen
    /// off for the whole policy — even when the annotation asks for controllers.
    #[test]
    fn filters_that_prevent_autogen() {
        let blocks = [
            json!({"match": {"any": [{"resources": {"kinds": ["Pod"], "names": ["web-*"]}}]}}),
            json!({"match": {"resources": {"kinds": ["Pod"], "name": "web"}}}),
            json!({"match": {"all": [{"resources": {"kinds": ["Pod"],
                "selector": {"matchLabels": {"app": "web"}}}}]}}),
            json!({"match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                   "exclude": {"any": [{"resources": {"annotations":
                       {"policy.test/require-requests-limits": "skip"}}}]}}),
            json!({"match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                   "exclude": {"resources": {"selector": {}}}}),
            // Pod together with other kinds.
            json!({"match": {"any": [{"resources": {"kinds": ["Pod", "Deployment"]}}]}}),
            json!({"match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                   "exclude": {"any": [{"resources": {"kinds": ["Pod", "Deployment"]}}]}}),
            // Kyverno only recognises the bare `Pod` spelling when deciding (issue #2415).
            json!({"match": {"any": [{"resources": {"kinds": ["v1/Pod"]}}]}}),
            // No Pod or controller kind at all.
            json!({"match": {"any": [{"resources": {"kinds": ["Namespace"]}}]}}),
        ];
        for block in blocks {
            for annotation in [None, Some("Deployment")] {
                let mut rule = block.clone();
                rule["name"] = json!("check");
                rule["validate"] = json!({"pattern": {"spec": {"hostNetwork": false}}});
                let mut policy = json!({
                    "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
                    "metadata": {"name": "p"},
                    "spec": {"rules": [rule.clone()]}
                });
                if let Some(annotation) = annotation {
                    policy["metadata"]["annotations"] =
                        json!({ AUTOGEN_CONTROLLERS_ANNOTATION: annotation });
                }
                assert_eq!(compute_rules(&policy), vec![rule], "block {block}");
                assert!(generate_rules(&policy).is_empty());
                assert_eq!(controllers(&policy), None);
            }
        }
    }

    #[test]
    fn one_unsupported_rule_disables_autogen_for_the_policy() {
        let pod_rule = json!({
            "name": "pods", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
            "validate": {"pattern": {"spec": {"hostNetwork": false}}}
        });
        let blockers = [
            json!({"name": "gen", "match": {"any": [{"resources": {"kinds": ["Namespace"]}}]},
                   "generate": {"kind": "ConfigMap", "name": "x", "data": {}}}),
            json!({"name": "json-patch", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                   "mutate": {"patchesJson6902": "- op: add\n  path: /metadata/labels/a\n  value: b"}}),
            json!({"name": "foreach-json-patch",
                   "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                   "mutate": {"foreach": [{"list": "request.object.spec.containers",
                       "patchesJson6902": "- op: remove\n  path: /spec/x"}]}}),
            json!({"name": "named", "match": {"any": [{"resources": {"kinds": ["Pod"],
                   "names": ["a"]}}]}, "validate": {"deny": {}}}),
        ];
        for blocker in blockers {
            let policy = json!({"metadata": {"name": "p"},
                                "spec": {"rules": [pod_rule.clone(), blocker.clone()]}});
            assert_eq!(
                names(&compute_rules(&policy)),
                ["pods", rule_name(&blocker)]
            );
        }
    }

    #[test]
    fn namespaces_and_exclusions_of_pods_are_carried_over() {
        let policy = policy(
            r#"
metadata: {name: p}
spec:
  rules:
  - name: no-host-network
    match:
      any:
      - resources:
          kinds: [Pod]
          namespaces: [prod-*]
          operations: [CREATE]
    exclude:
      any:
      - resources:
          kinds: [Pod]
          namespaces: [kube-system]
      - subjects:
        - kind: User
          name: admin
    validate:
      pattern: {spec: {=(hostNetwork): false}}
"#,
        );
        let rules = compute_rules(&policy);
        let template = find(&rules, "autogen-no-host-network");
        assert_eq!(
            template["match"],
            json!({"any": [{"resources": {"kinds": TEMPLATE_KINDS,
                "namespaces": ["prod-*"], "operations": ["CREATE"]}}]})
        );
        // Only the exclude filter that names Pod is rewritten for template controllers ...
        assert_eq!(
            template["exclude"],
            json!({"any": [
                {"resources": {"kinds": TEMPLATE_KINDS, "namespaces": ["kube-system"]}},
                {"subjects": [{"kind": "User", "name": "admin"}]}
            ]})
        );
        // ... while the CronJob rule puts CronJob into every filter.
        let cronjob = find(&rules, "autogen-cronjob-no-host-network");
        assert_eq!(
            cronjob["exclude"],
            json!({"any": [
                {"resources": {"kinds": ["batch/*/CronJob"], "namespaces": ["kube-system"]}},
                {"subjects": [{"kind": "User", "name": "admin"}],
                 "resources": {"kinds": ["batch/*/CronJob"]}}
            ]})
        );
    }

    #[test]
    fn rules_that_do_not_qualify_are_skipped_individually() {
        let policy = policy(
            r#"
metadata: {name: p}
spec:
  rules:
  - name: namespaces
    match: {any: [{resources: {kinds: [Namespace]}}]}
    validate: {pattern: {metadata: {labels: {team: "?*"}}}}
  - name: pods-but-exclude-deployments
    match: {any: [{resources: {kinds: [Pod]}}]}
    exclude: {any: [{resources: {kinds: [Deployment]}}]}
    validate: {pattern: {spec: {hostPID: false}}}
  - name: manifests
    match: {any: [{resources: {kinds: [Pod]}}]}
    validate: {manifests: {attestors: []}}
  - name: autogen-stale
    match: {any: [{resources: {kinds: [Deployment]}}]}
    validate: {pattern: {spec: {x: y}}}
  - name: pods
    match: {resources: {kinds: [Pod]}}
    validate: {pattern: {spec: {hostIPC: false}}}
"#,
        );
        // The author's `autogen-*` rule gives way to the generated ones.
        assert_eq!(
            names(&compute_rules(&policy)),
            [
                "namespaces",
                "pods-but-exclude-deployments",
                "manifests",
                "pods",
                "autogen-pods",
                "autogen-cronjob-pods"
            ]
        );
        let generated = generate_rules(&policy);
        assert_eq!(
            generated[0]["match"],
            json!({"resources": {"kinds": TEMPLATE_KINDS}})
        );
        assert_eq!(
            generated[1]["match"],
            json!({"resources": {"kinds": ["batch/*/CronJob"]}})
        );
    }

    #[test]
    fn policy_without_generated_rules_keeps_its_autogen_named_rules() {
        let policy = policy(
            r#"
metadata: {name: p}
spec:
  rules:
  - name: manifests
    match: {any: [{resources: {kinds: [Pod]}}]}
    validate: {manifests: {attestors: []}}
  - name: autogen-manifests
    match: {any: [{resources: {kinds: [Deployment]}}]}
    validate: {manifests: {attestors: []}}
"#,
        );
        assert_eq!(
            names(&compute_rules(&policy)),
            ["manifests", "autogen-manifests"]
        );
    }

    #[test]
    fn deny_preconditions_context_and_messages_are_rewritten() {
        let policy = policy(
            r#"
metadata: {name: p}
spec:
  rules:
  - name: limit-containers
    match: {any: [{resources: {kinds: [Pod]}}]}
    context:
    - name: count
      variable:
        jmesPath: length(request.object.spec.containers)
    preconditions:
      all:
      - key: "{{ request.object.metadata.labels.tier || '' }}"
        operator: Equals
        value: web
      - key: "{{ request.oldObject.spec.nodeName || '' }}"
        operator: Equals
        value: ""
    validate:
      message: "{{ request.object.metadata.name }} has too many containers."
      deny:
        conditions:
          any:
          - key: "{{ request.object.spec.containers[] | length(@) }}"
            operator: GreaterThan
            value: "{{ count }}"
"#,
        );
        let rules = generate_rules(&policy);
        assert_eq!(
            rules[0],
            json!({
                "name": "autogen-limit-containers",
                "context": [{"name": "count", "variable":
                    {"jmesPath": "length(request.object.spec.template.spec.containers)"}}],
                "match": {"any": [{"resources": {"kinds": TEMPLATE_KINDS}}]},
                "preconditions": {"all": [
                    {"key": "{{ request.object.spec.template.metadata.labels.tier || '' }}",
                     "operator": "Equals", "value": "web"},
                    {"key": "{{ request.oldObject.spec.template.spec.nodeName || '' }}",
                     "operator": "Equals", "value": ""}
                ]},
                "validate": {
                    "message":
                        "{{ request.object.spec.template.metadata.name }} has too many containers.",
                    "deny": {"conditions": {"any": [{
                        "key": "{{ request.object.spec.template.spec.containers[] | length(@) }}",
                        "operator": "GreaterThan", "value": "{{ count }}"
                    }]}}
                }
            })
        );
        assert_eq!(
            rules[1]["validate"]["deny"]["conditions"]["any"][0]["key"],
            "{{ request.object.spec.jobTemplate.spec.template.spec.containers[] | length(@) }}"
        );
        assert_eq!(
            rules[1]["preconditions"]["all"][0]["key"],
            "{{ request.object.spec.jobTemplate.spec.template.metadata.labels.tier || '' }}"
        );
    }

    #[test]
    fn foreach_validation_lists_are_rewritten_not_wrapped() {
        let policy = policy(
            r#"
metadata: {name: disallow-latest-tag}
spec:
  rules:
  - name: require-image-tag
    match: {any: [{resources: {kinds: [Pod]}}]}
    validate:
      message: "An image tag is required."
      foreach:
      - list: "request.object.spec.containers"
        pattern: {image: "*:*"}
"#,
        );
        let rules = generate_rules(&policy);
        assert_eq!(
            rules[0]["validate"],
            json!({"message": "An image tag is required.", "foreach": [
                {"list": "request.object.spec.template.spec.containers",
                 "pattern": {"image": "*:*"}}
            ]})
        );
        assert_eq!(
            rules[1]["validate"]["foreach"][0]["list"],
            "request.object.spec.jobTemplate.spec.template.spec.containers"
        );
    }

    #[test]
    fn pod_security_rule_is_extended() {
        let policy = policy(
            r#"
metadata: {name: pod-security}
spec:
  rules:
  - name: restricted
    match: {all: [{resources: {kinds: [Pod]}}]}
    validate:
      failureAction: Enforce
      podSecurity:
        level: baseline
        version: v1.24
        exclude:
        - controlName: SELinux
          restrictedField: spec.containers[*].securityContext.seLinuxOptions.role
          images: [nginx]
          values: [baz]
"#,
        );
        let rules = compute_rules(&policy);
        assert_eq!(
            names(&rules),
            [
                "restricted",
                "autogen-restricted",
                "autogen-cronjob-restricted"
            ]
        );
        assert_eq!(rules[1]["validate"], policy["spec"]["rules"][0]["validate"]);
        assert_eq!(
            rules[1]["match"],
            json!({"all": [{"resources": {"kinds": TEMPLATE_KINDS}}]})
        );
        // Kyverno's own test: computing for a Deployment yields the rule and its autogen rule.
        assert_eq!(
            names(&compute_rules_for_kind(&policy, "Deployment")),
            ["restricted", "autogen-restricted"]
        );
    }

    #[test]
    fn any_pattern_and_assert_are_wrapped() {
        let policy = policy(
            r#"
metadata: {name: p}
spec:
  rules:
  - name: any
    match: {any: [{resources: {kinds: [Pod]}}]}
    validate:
      anyPattern:
      - spec: {runtimeClassName: gvisor}
      - metadata: {labels: {sandboxed: "true"}}
  - name: assert
    match: {any: [{resources: {kinds: [Pod]}}]}
    validate:
      assert:
        object:
          spec:
            (serviceAccountName == 'default'): false
"#,
        );
        let rules = generate_rules(&policy);
        assert_eq!(
            names(&rules),
            [
                "autogen-any",
                "autogen-cronjob-any",
                "autogen-assert",
                "autogen-cronjob-assert"
            ]
        );
        assert_eq!(
            rules[0]["validate"],
            json!({"anyPattern": [
                {"spec": {"template": {"spec": {"runtimeClassName": "gvisor"}}}},
                {"spec": {"template": {"metadata": {"labels": {"sandboxed": "true"}}}}}
            ]})
        );
        assert_eq!(
            rules[1]["validate"]["anyPattern"][0],
            json!({"spec": {"jobTemplate": {"spec": {"template": {"spec":
                {"runtimeClassName": "gvisor"}}}}}})
        );
        assert_eq!(
            rules[2]["validate"]["assert"],
            json!({"object": {"spec": {"template": {"spec":
                {"(serviceAccountName == 'default')": false}}}}})
        );
        assert_eq!(
            rules[3]["validate"]["assert"],
            json!({"object": {"spec": {"jobTemplate": {"spec": {"template": {"spec":
                {"(serviceAccountName == 'default')": false}}}}}}})
        );
    }

    #[test]
    fn cel_expressions_use_the_cel_rewrite() {
        let policy = policy(
            r#"
metadata: {name: disallow-host-path}
spec:
  rules:
  - name: host-path
    match: {any: [{resources: {kinds: [Pod]}}]}
    validate:
      failureAction: Enforce
      cel:
        expressions:
        - expression: "!has(object.spec.volumes) || object.spec.volumes.all(v, !has(v.hostPath))"
          message: "HostPath volumes are forbidden."
"#,
        );
        let rules = generate_rules(&policy);
        assert_eq!(
            rules[0]["validate"]["cel"]["expressions"][0]["expression"],
            "!has(object.spec.template.spec.volumes) || \
             object.spec.template.spec.volumes.all(v, !has(v.hostPath))"
        );
        assert_eq!(rules[0]["validate"]["failureAction"], "Enforce");
        assert_eq!(
            rules[1]["validate"]["cel"]["expressions"][0]["expression"],
            "!has(object.spec.jobTemplate.spec.template.spec.volumes) || \
             object.spec.jobTemplate.spec.template.spec.volumes.all(v, !has(v.hostPath))"
        );
    }

    #[test]
    fn mutate_patches_are_wrapped() {
        let policy = policy(
            r#"
metadata: {name: p}
spec:
  rules:
  - name: add-label
    match: {any: [{resources: {kinds: [Pod]}}]}
    mutate:
      patchStrategicMerge:
        metadata:
          labels:
            +(owner): "{{ request.object.metadata.namespace }}"
  - name: pull-always
    match: {any: [{resources: {kinds: [Pod]}}]}
    mutate:
      foreach:
      - list: request.object.spec.containers
        patchStrategicMerge:
          spec:
            containers:
            - (name): "{{ element.name }}"
              imagePullPolicy: Always
"#,
        );
        let rules = generate_rules(&policy);
        assert_eq!(
            rules[0]["mutate"],
            json!({"patchStrategicMerge": {"spec": {"template": {"metadata": {"labels":
                {"+(owner)": "{{ request.object.spec.template.metadata.namespace }}"}}}}}})
        );
        assert_eq!(
            rules[1]["mutate"]["patchStrategicMerge"]["spec"]["jobTemplate"]["spec"]["template"]
                ["metadata"]["labels"]["+(owner)"],
            "{{ request.object.spec.jobTemplate.spec.template.metadata.namespace }}"
        );
        assert_eq!(
            rules[2]["mutate"],
            json!({"foreach": [{
                "list": "request.object.spec.template.spec.containers",
                "patchStrategicMerge": {"spec": {"template": {"spec": {"containers": [
                    {"(name)": "{{ element.name }}", "imagePullPolicy": "Always"}
                ]}}}}
            }]})
        );
    }

    #[test]
    fn verify_images_rules_are_extended() {
        let policy = policy(
            r#"
metadata: {name: check-image}
spec:
  rules:
  - name: check-image
    match: {resources: {kinds: [Pod]}}
    imageExtractors:
      Pod:
      - path: /spec/containers/*/image
    verifyImages:
    - imageReferences: ["*"]
      attestors:
      - count: 1
        entries:
        - keyless: {subject: "*@example.com"}
"#,
        );
        // Kyverno's own case: computing for a CronJob adds only the CronJob rule.
        let rules = compute_rules_for_kind(&policy, "CronJob");
        assert_eq!(
            names(&rules),
            ["check-image", "autogen-cronjob-check-image"]
        );
        assert_eq!(
            rules[1],
            json!({
                "name": "autogen-cronjob-check-image",
                "match": {"resources": {"kinds": ["batch/*/CronJob"]}},
                "verifyImages": policy["spec"]["rules"][0]["verifyImages"]
            })
        );
        assert_eq!(
            names(&compute_rules_for_kind(&policy, "Deployment")),
            ["check-image", "autogen-check-image"]
        );
        assert_eq!(
            find(
                &compute_rules_for_kind(&policy, "Deployment"),
                "autogen-check-image"
            )["match"],
            json!({"resources": {"kinds": ["apps/*/Deployment"]}})
        );
        // Pods, and kinds outside the controller set, see only the written rules.
        for kind in ["Pod", "Namespace"] {
            assert_eq!(
                names(&compute_rules_for_kind(&policy, kind)),
                ["check-image"]
            );
        }
    }

    #[test]
    fn long_names_are_cut_at_63_characters() {
        let mut policy = registries_policy(None);
        policy["spec"]["rules"][0]["name"] =
            json!("too-long-this-rule-name-will-be-truncated-to-63-characters");
        assert_eq!(
            names(&generate_rules(&policy)),
            [
                "autogen-too-long-this-rule-name-will-be-truncated-to-63-charact",
                "autogen-cronjob-too-long-this-rule-name-will-be-truncated-to-63"
            ]
        );
    }

    #[test]
    fn message_references_follow_the_wrapped_pattern() {
        assert_eq!(
            shift_references(
                "must equal $(pattern/spec/x) now",
                "spec/template",
                "pattern"
            ),
            "must equal $(pattern/spec/template/spec/x) now"
        );
        assert_eq!(
            shift_references("$(anyPattern/1/spec/x)", "spec/template", "anyPattern"),
            "$(anyPattern/1/spec/template/spec/x)"
        );
        // Escaped references stay untouched.
        assert_eq!(
            shift_references(r"keep \$(pattern/x)", "spec/template", "pattern"),
            r"keep \$(pattern/x)"
        );
    }

    #[test]
    fn kind_names_are_read_like_kyverno() {
        for (entry, kind) in [
            ("Pod", "Pod"),
            ("v1/Pod", "Pod"),
            ("Pod/exec", "Pod"),
            ("Pod.status", "Pod"),
            ("v1/Pod/status", "Pod"),
            ("apps/v1/Deployment", "Deployment"),
            ("apps/v1/Deployment/scale", "Deployment"),
            ("*/Pod", "Pod"),
            ("a/b/c/d/e", ""),
        ] {
            assert_eq!(kind_name(entry), kind, "{entry}");
        }
    }

    #[test]
    fn deeply_nested_rules_do_not_overflow() {
        let mut nested = json!("request.object.spec.x");
        for _ in 0..10_000 {
            nested = Value::Array(vec![nested]);
        }
        let mut rule = Value::Object(Map::from_iter([("context".to_owned(), nested)]));
        replace_request_paths(&mut rule, replacements(Target::Template, false));
        let mut inner = &rule["context"];
        while let Value::Array(items) = inner {
            inner = &items[0];
        }
        assert_eq!(inner, "request.object.spec.template.spec.x");
        // Dropping a 10,000-level value recurses in serde_json; leak it in the test instead.
        std::mem::forget(rule);
    }

    /// Kyverno's policy library: result rows that name `autogen-*` rules, and rows checking a
    /// Pod-only rule against a controller (which Kyverno's CLI resolves to the autogen rule),
    /// must find those rules in `compute_rules`.
    #[test]
    fn conformance_suites_name_only_generated_rules() {
        let suites = crate::library_files(&crate::conformance_corpus(), &|path| {
            path.ends_with(".kyverno-test/kyverno-test.yaml")
        });
        let mut autogen_rows = 0;
        let mut controller_rows = 0;
        let mut failures = Vec::new();
        for suite_path in &suites {
            let suite: Value =
                serde_yaml_ng::from_str(&std::fs::read_to_string(suite_path).unwrap()).unwrap();
            let dir = suite_path.parent().unwrap();
            let mut policies = std::collections::HashMap::new();
            for file in array(suite.get("policies"))
                .iter()
                .filter_map(Value::as_str)
            {
                let Ok(text) = std::fs::read_to_string(dir.join(file)) else {
                    continue;
                };
                for document in serde_yaml_ng::Deserializer::from_str(&text) {
                    let Ok(doc) = <Value as serde::Deserialize>::deserialize(document) else {
                        continue;
                    };
                    let api = doc["apiVersion"].as_str().unwrap_or_default();
                    let kind = doc["kind"].as_str().unwrap_or_default();
                    if api.starts_with("kyverno.io/")
                        && (kind == "ClusterPolicy" || kind == "Policy")
                    {
                        let name = doc["metadata"]["name"].as_str().unwrap_or_default();
                        policies.insert(name.to_owned(), doc);
                    }
                }
            }
            for row in array(suite.get("results")) {
                let policy_ref = row["policy"].as_str().unwrap_or_default();
                let policy_name = policy_ref.rsplit('/').next().unwrap_or_default();
                let Some(policy) = policies.get(policy_name) else {
                    continue;
                };
                let rule = row["rule"].as_str().unwrap_or_default();
                let kind = row["kind"].as_str().unwrap_or_default();
                let computed = compute_rules(policy);
                let computed_names = names(&computed);
                let expected = if is_autogen_rule_name(rule) {
                    autogen_rows += 1;
                    rule.to_owned()
                } else {
                    let Some(written) = policy_rules(policy).iter().find(|r| rule_name(r) == rule)
                    else {
                        continue;
                    };
                    let match_kinds = block_kinds(&written["match"]);
                    let checked = matches!(row["result"].as_str(), Some("pass" | "fail"));
                    if !checked
                        || !DEFAULT_CONTROLLERS.contains(&kind)
                        || !contains_kind(&match_kinds, "Pod")
                        || contains_kind(&match_kinds, kind)
                    {
                        continue;
                    }
                    controller_rows += 1;
                    if kind == CRONJOB {
                        autogen_rule_name("autogen-cronjob", rule)
                    } else {
                        autogen_rule_name("autogen", rule)
                    }
                };
                if !computed_names.contains(&expected.as_str()) {
                    failures.push(format!(
                        "{}: {kind} row for {expected}; computed {computed_names:?}",
                        suite_path.display()
                    ));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        // The corpus has 7 rows naming autogen rules and over 250 controller rows.
        assert!(autogen_rows >= 7, "only {autogen_rows} autogen rows found");
        assert!(
            controller_rows >= 250,
            "only {controller_rows} controller rows found"
        );
    }
}
