//! Anchor preprocessing of a `patchStrategicMerge` overlay against the resource, as Kyverno does
//! it before handing the patch to the strategic merge:
//!
//! - `+(key)`: kept (without the anchor) when the resource lacks `key`, dropped otherwise;
//! - `(key)` conditional and `<(key)` global anchors in a map: every one must match the
//!   resource (with validate's pattern semantics), else the whole patch is dropped;
//! - in a list of maps, an element with anchors is tried against every resource element: a
//!   conditional mismatch skips that element, a match produces a patch element carrying the
//!   resource element's `name` (so it merges into it); an element with a global anchor must
//!   match at least one resource element or the whole patch is dropped;
//! - finally anchors are removed: condition keys with scalar values disappear, ones with
//!   structured values lose their parentheses, and maps or lists left without content go too.
//!
//! Kyverno's quirks are kept on purpose: one working copy of an anchored list element is shared
//! by all resource elements (an `+(key)` decided on the first element stays decided), and list
//! elements are deleted by their original index while the list shrinks.

use serde_json::{Map, Value};

use super::{MutateError, MAX_DEPTH};
use crate::json::Lookup;
use crate::pattern::{parse_anchor, AnchorKind, Pattern, PatternOutcome};

/// Why preprocessing stopped early.
enum Stop {
    /// A conditional anchor did not match.
    Condition,
    /// A global anchor did not match.
    Global,
    /// The overlay cannot be applied.
    Fatal(MutateError),
}

/// Preprocesses `overlay` against `resource`; the result is the patch to merge (`{}` when an
/// anchor condition decided that nothing applies).
pub(crate) fn preprocess(overlay: &Value, resource: &Value) -> Result<Value, MutateError> {
    let mut patch = overlay.clone();
    let mut path = Vec::new();
    match walk(&mut patch, Some(resource), &mut path, 0) {
        Ok(()) => {
            let Value::Object(map) = &mut patch else {
                return Err(MutateError::new(
                    &[],
                    "patchStrategicMerge must be an object",
                ));
            };
            delete_condition_elements(map);
            Ok(patch)
        }
        Err(Stop::Condition | Stop::Global) => Ok(Value::Object(Map::new())),
        Err(Stop::Fatal(err)) => Err(err),
    }
}

fn walk(
    pattern: &mut Value,
    resource: Option<&Value>,
    path: &mut Vec<String>,
    depth: usize,
) -> Result<(), Stop> {
    if depth > MAX_DEPTH {
        return Err(Stop::Fatal(MutateError::new(
            path,
            format!("overlay is nested deeper than {MAX_DEPTH} levels"),
        )));
    }
    match pattern {
        Value::Object(map) => walk_map(map, resource, path, depth),
        Value::Array(list) => {
            if list.first().is_some_and(Value::is_object) {
                walk_list_of_maps(list, resource, path, depth)
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

fn resource_field<'r>(resource: Option<&'r Value>, key: &str) -> Option<&'r Value> {
    resource?.as_object()?.field(key)
}

fn walk_map(
    map: &mut Map<String, Value>,
    resource: Option<&Value>,
    path: &mut Vec<String>,
    depth: usize,
) -> Result<(), Stop> {
    handle_add_if_not_present(map, resource);
    validate_conditions(map, resource)?;
    for (key, child) in map.iter_mut() {
        if parse_anchor(key).is_some_and(|a| is_processed_anchor(a.kind)) {
            continue;
        }
        // Only maps and lists of maps hold anything to preprocess.
        if !matches!(child, Value::Object(_) | Value::Array(_)) {
            continue;
        }
        path.push(key.clone());
        let result = walk(child, resource_field(resource, key), path, depth + 1);
        path.pop();
        result?;
    }
    Ok(())
}

/// Anchors preprocessing consumes; the others (`=()`, `^()`, `X()`) stay literal keys.
fn is_processed_anchor(kind: AnchorKind) -> bool {
    matches!(
        kind,
        AnchorKind::Conditional | AnchorKind::Global | AnchorKind::AddIfNotPresent
    )
}

fn is_condition(kind: AnchorKind) -> bool {
    matches!(kind, AnchorKind::Conditional | AnchorKind::Global)
}

fn contains_condition(raw: &str) -> bool {
    parse_anchor(raw).is_some_and(|a| is_condition(a.kind))
}

/// Renames `from` to `to` in place; if `to` already exists the earlier entry wins.
fn rename_key(map: &mut Map<String, Value>, from: &str, to: &str) {
    let entries = std::mem::take(map);
    for (key, value) in entries {
        let key = if key == from { to.to_owned() } else { key };
        if !map.contains_key(&key) {
            map.insert(key, value);
        }
    }
}

/// `+(key)`: dropped when the resource has `key`, unwrapped otherwise. Returns how many
/// such anchors the map had.
fn handle_add_if_not_present(map: &mut Map<String, Value>, resource: Option<&Value>) -> usize {
    let anchors: Vec<(String, String)> = map
        .keys()
        .filter_map(|raw| {
            let anchor = parse_anchor(raw)?;
            (anchor.kind == AnchorKind::AddIfNotPresent)
                .then(|| (raw.clone(), anchor.key.to_owned()))
        })
        .collect();
    for (raw, key) in &anchors {
        if resource_field(resource, key).is_some() {
            map.shift_remove(raw);
        } else {
            rename_key(map, raw, key);
        }
    }
    anchors.len()
}

/// Checks the global anchors, then the conditional ones, of one map.
fn validate_conditions(map: &mut Map<String, Value>, resource: Option<&Value>) -> Result<(), Stop> {
    for kind in [AnchorKind::Global, AnchorKind::Conditional] {
        let stop = || {
            if kind == AnchorKind::Global {
                Stop::Global
            } else {
                Stop::Condition
            }
        };
        let anchors: Vec<(String, String)> = map
            .keys()
            .filter_map(|raw| {
                let anchor = parse_anchor(raw)?;
                (anchor.kind == kind).then(|| (raw.clone(), anchor.key.to_owned()))
            })
            .collect();
        for (raw, key) in anchors {
            let Some(resource_value) = resource_field(resource, &key) else {
                return Err(stop());
            };
            let Some(pattern_value) = map.get_mut(&raw) else {
                continue;
            };
            if let Value::Object(inner) = pattern_value {
                if handle_add_if_not_present(inner, Some(resource_value)) > 0 {
                    continue;
                }
            }
            if !condition_holds(pattern_value, resource_value) {
                return Err(stop());
            }
        }
    }
    Ok(())
}

/// Kyverno compares scalars on both sides as their text and structured values as JSON.
fn as_condition_operand(value: &Value) -> Value {
    match value {
        Value::Object(_) | Value::Array(_) => value.clone(),
        scalar => Value::String(super::merge::scalar_text(scalar)),
    }
}

fn condition_holds(pattern: &Value, resource: &Value) -> bool {
    match Pattern::compile(&as_condition_operand(pattern)) {
        Ok(compiled) => compiled.validate(&as_condition_operand(resource)) == PatternOutcome::Pass,
        Err(_) => false,
    }
}

fn is_nil_or_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(map) => map.is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

/// Whether `node` holds an anchor accepted by `accept` anywhere; string values that look like
/// condition anchors count too, as in Kyverno.
fn has_anchors(node: &Value, accept: fn(AnchorKind) -> bool) -> bool {
    match node {
        Value::Object(map) => map.iter().any(|(key, value)| {
            parse_anchor(key).is_some_and(|a| accept(a.kind))
                || (!is_nil_or_empty(value) && has_anchors(value, accept))
        }),
        Value::String(s) => contains_condition(s),
        Value::Array(items) => items.iter().any(|item| has_anchors(item, accept)),
        _ => false,
    }
}

fn walk_list_of_maps(
    list: &mut Vec<Value>,
    resource: Option<&Value>,
    path: &mut Vec<String>,
    depth: usize,
) -> Result<(), Stop> {
    let resource_elements: &[Value] = match resource {
        None | Some(Value::Null) => &[],
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(Stop::Fatal(MutateError::new(
                path,
                "wrong node kind: expected SequenceNode in the resource",
            )))
        }
    };
    // Matched elements are appended; the original ones stay as they are.
    let original_count = list.len();
    for index in 0..original_count {
        let Some(element) = list.get(index) else {
            break;
        };
        if !has_anchors(element, is_processed_anchor) {
            continue;
        }
        let has_global = has_anchors(element, |k| k == AnchorKind::Global);
        let mut copy = element.clone();
        let mut global_passed = false;
        let mut global_failed = false;
        path.push(index.to_string());
        for resource_element in resource_elements {
            match walk(&mut copy, Some(resource_element), path, depth + 1) {
                Err(Stop::Condition) => continue,
                Err(Stop::Global) => global_failed = true,
                Err(fatal) => {
                    path.pop();
                    return Err(fatal);
                }
                Ok(()) if has_global => global_passed = true,
                Ok(()) => add_named_element(list, &copy, resource_element),
            }
        }
        if resource.is_none() {
            match walk(&mut copy, None, path, depth + 1) {
                Err(Stop::Condition) => {
                    path.pop();
                    continue;
                }
                Err(other) => {
                    path.pop();
                    return Err(other);
                }
                Ok(()) if has_global => global_passed = true,
                Ok(()) => {}
            }
        }
        path.pop();
        if !global_passed && global_failed {
            return Err(Stop::Global);
        }
    }
    Ok(())
}

/// A matched anchored element becomes a plain patch element named after the resource element,
/// so the merge applies it to that element. Elements without a `name` are left alone.
fn add_named_element(list: &mut Vec<Value>, element: &Value, resource_element: &Value) {
    let Some(name) = resource_field(Some(resource_element), "name") else {
        return;
    };
    if is_nil_or_empty(name) {
        return;
    }
    let mut node = element.clone();
    if delete_anchors(&mut node, true) {
        return;
    }
    if let Value::Object(map) = &mut node {
        map.insert("name".to_owned(), name.clone());
        list.push(node);
    }
}

fn delete_condition_elements(map: &mut Map<String, Value>) {
    let remove: Vec<bool> = map
        .iter_mut()
        .map(|(key, value)| delete_anchors(value, contains_condition(key)))
        .collect();
    retain_flagged(map, &remove);
}

/// Drops the entries of `map` whose flag (by position) is set.
fn retain_flagged(map: &mut Map<String, Value>, remove: &[bool]) {
    if !remove.contains(&true) {
        return;
    }
    let mut position = 0;
    map.retain(|_, _| {
        let keep = !remove.get(position).copied().unwrap_or(false);
        position += 1;
        keep
    });
}

/// Removes anchors below `node`; returns whether `node` itself should go (only anchors, or
/// nothing at all, were left).
fn delete_anchors(node: &mut Value, delete_scalar: bool) -> bool {
    match node {
        Value::Object(map) => delete_anchors_in_map(map),
        Value::Array(list) => delete_anchors_in_list(list),
        _ => delete_scalar,
    }
}

fn delete_anchors_in_map(map: &mut Map<String, Value>) -> bool {
    let anchors: Vec<String> = map
        .keys()
        .filter(|k| contains_condition(k))
        .cloned()
        .collect();
    let mut anchors_left = false;
    for raw in anchors {
        let remove = map.get_mut(&raw).is_some_and(|v| delete_anchors(v, true));
        if remove {
            map.shift_remove(&raw);
        } else {
            anchors_left = true;
        }
    }
    if anchors_left {
        let remaining: Vec<(String, String)> = map
            .keys()
            .filter_map(|raw| {
                let anchor = parse_anchor(raw).filter(|a| is_condition(a.kind))?;
                Some((raw.clone(), anchor.key.to_owned()))
            })
            .collect();
        for (raw, key) in remaining {
            rename_key(map, &raw, &key);
        }
    }
    let remove: Vec<bool> = map
        .values_mut()
        .map(|value| delete_anchors(value, false))
        .collect();
    retain_flagged(map, &remove);
    !remove.contains(&false)
}

/// Kyverno walks a snapshot of the list and deletes by the snapshot's index from the live,
/// shrinking list; this keeps that behaviour (an out-of-range delete does nothing). An element
/// is only changed when its own index comes up, so until then the live element (or, once
/// deleted early, the stashed one) still is the snapshot's.
fn delete_anchors_in_list(list: &mut Vec<Value>) -> bool {
    let was_empty = list.is_empty();
    let count = list.len();
    let mut live: Vec<(usize, Value)> = std::mem::take(list).into_iter().enumerate().collect();
    let mut stashed: Vec<(usize, Value)> = Vec::new();
    for index in 0..count {
        let remove = match live.iter_mut().find(|(id, _)| *id == index) {
            Some((_, element)) => {
                has_anchors(element, is_processed_anchor) || delete_anchors(element, false)
            }
            None => match stashed.iter().position(|(id, _)| *id == index) {
                Some(at) => {
                    let (_, mut original) = stashed.swap_remove(at);
                    has_anchors(&original, is_processed_anchor)
                        || delete_anchors(&mut original, false)
                }
                None => false,
            },
        };
        if remove && index < live.len() {
            let (id, element) = live.remove(index);
            if id > index {
                stashed.push((id, element));
            }
        }
    }
    *list = live.into_iter().map(|(_, v)| v).collect();
    list.is_empty() && !was_empty
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pre(overlay: Value, resource: Value) -> Value {
        preprocess(&overlay, &resource).unwrap()
    }

    #[test]
    fn add_if_not_present_keeps_only_missing_keys() {
        let got = pre(
            json!({"metadata": {"annotations": {"+(a)": "1", "+(b)": "2"}}}),
            json!({"metadata": {"annotations": {"a": "0"}}}),
        );
        assert_eq!(got, json!({"metadata": {"annotations": {"b": "2"}}}));
    }

    #[test]
    fn failed_top_level_condition_drops_the_patch() {
        let got = pre(
            json!({"metadata": {"labels": {"(env)": "prod", "tier": "x"}}}),
            json!({"metadata": {"labels": {"env": "dev"}}}),
        );
        assert_eq!(got, json!({}));
        let missing = pre(
            json!({"metadata": {"labels": {"(env)": "prod", "tier": "x"}}}),
            json!({"metadata": {}}),
        );
        assert_eq!(missing, json!({}));
    }

    #[test]
    fn anchored_list_elements_become_named_elements() {
        let got = pre(
            json!({"spec": {"containers": [{"(image)": "*:latest", "imagePullPolicy": "Always"}]}}),
            json!({"spec": {"containers": [
                {"name": "a", "image": "nginx:latest"},
                {"name": "b", "image": "nginx:1.25"},
                {"name": "c", "image": "redis:latest"}]}}),
        );
        assert_eq!(
            got,
            json!({"spec": {"containers": [
                {"imagePullPolicy": "Always", "name": "a"},
                {"imagePullPolicy": "Always", "name": "c"}]}})
        );
    }

    #[test]
    fn global_anchor_in_list_needs_one_match() {
        let overlay = json!({
            "metadata": {"annotations": {"+(safe)": "true"}},
            "spec": {"volumes": [{"<(emptyDir)": {}}]}
        });
        let with = pre(
            overlay.clone(),
            json!({"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}}),
        );
        assert_eq!(with, json!({"metadata": {"annotations": {"safe": "true"}}}));
        let without = pre(
            overlay.clone(),
            json!({"spec": {"volumes": [{"name": "v", "hostPath": {"path": "/x"}}]}}),
        );
        assert_eq!(without, json!({}));
        let no_volumes = pre(overlay, json!({"spec": {}}));
        assert_eq!(no_volumes, json!({}));
    }

    #[test]
    fn nested_conditional_with_add_anchor() {
        let got = pre(
            json!({"spec": {"volumes": [{"(emptyDir)": {"+(sizeLimit)": "20Mi"}, "name": "*"}]}}),
            json!({"spec": {"volumes": [{"emptyDir": {}, "name": "vol02"}]}}),
        );
        assert_eq!(
            got,
            json!({"spec": {"volumes": [{"emptyDir": {"sizeLimit": "20Mi"}, "name": "vol02"}]}})
        );
    }

    #[test]
    fn empty_maps_are_pruned_from_the_patch() {
        let got = pre(
            json!({"spec": {"securityContext": {}, "hostNetwork": false}}),
            json!({"spec": {}}),
        );
        assert_eq!(got, json!({"spec": {"hostNetwork": false}}));
    }
}
