//! Strategic merge of an already preprocessed patch into a resource, with the semantics of
//! kustomize's kyaml merge (which Kyverno uses), not those of the API server's
//! `strategicpatch` package:
//!
//! - maps merge key by key; `null` in the patch deletes; a `null` left in the resource is
//!   dropped as well;
//! - scalars and lists without a merge strategy are replaced by the patch's value;
//! - lists with a merge strategy in the built-in schema merge by their keys; elements from the
//!   patch come first (in patch order), then the resource's other elements (with several
//!   keys, e.g. ports, elements the resource already had stay in the resource's order);
//! - elements of a keyed list without any key value are not matched: the patch's are dropped,
//!   the resource's are kept (kyaml would match them against the first keyed element);
//! - `$patch: replace | delete | merge` on maps; `$retainKeys`, `$deleteFromPrimitiveList` and
//!   `$setElementOrder` are not directives for kyaml and stay ordinary keys.

use serde_json::{Map, Value};

use super::schema::{self, Schema};
use super::{MutateError, MAX_DEPTH};
use crate::json::{field_mut, Lookup};

/// Merges `patch` into `resource`.
pub(crate) fn merge_document(resource: &Value, patch: &Value) -> Result<Value, MutateError> {
    merge_into(resource.clone(), patch)
}

/// Merges `patch` into `resource`, consuming it (nothing of it is kept on error).
pub(crate) fn merge_into(resource: Value, patch: &Value) -> Result<Value, MutateError> {
    let mut path = Vec::new();
    let walked = walk(Some(resource), Some(patch), None, &mut path, 0)?;
    walked
        .value
        .ok_or_else(|| MutateError::new(&[], "the patch deletes the whole resource"))
}

/// One walked node: its new value (`None` clears it) and whether that value is the
/// destination node updated in place (kyaml mutates destination nodes, which matters when
/// list elements are put back together).
struct Walked {
    value: Option<Value>,
    in_place: bool,
}

impl Walked {
    fn new(value: Option<Value>) -> Self {
        Walked {
            value,
            in_place: false,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Map,
    List,
    Scalar,
}

impl Kind {
    fn of(value: &Value) -> Option<Kind> {
        match value {
            Value::Null => None,
            Value::Object(_) => Some(Kind::Map),
            Value::Array(_) => Some(Kind::List),
            _ => Some(Kind::Scalar),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Map => "MappingNode",
            Kind::List => "SequenceNode",
            Kind::Scalar => "ScalarNode",
        }
    }
}

fn is_missing_or_null(value: Option<&Value>) -> bool {
    matches!(value, None | Some(Value::Null))
}

fn walk(
    dest: Option<Value>,
    src: Option<&Value>,
    schema: Option<Schema>,
    path: &mut Vec<String>,
    depth: usize,
) -> Result<Walked, MutateError> {
    if depth > MAX_DEPTH {
        return Err(MutateError::new(
            path,
            format!("document is nested deeper than {MAX_DEPTH} levels"),
        ));
    }
    // Nested objects that declare their own apiVersion and kind carry their own schema.
    let schema = schema.or_else(|| embedded_schema(dest.as_ref()).or_else(|| embedded_schema(src)));
    if src.is_none() {
        if let Some(value) = dest
            .as_ref()
            .filter(|d| !needs_normalizing(d, schema, depth))
        {
            // Nothing in the patch and nothing kyaml would tidy up: keep the subtree as it is.
            let in_place = value.is_object();
            return Ok(Walked {
                value: dest,
                in_place,
            });
        }
    }
    let kind = dest
        .as_ref()
        .and_then(Kind::of)
        .or_else(|| src.and_then(Kind::of));
    let Some(kind) = kind else {
        // Both sides are missing or null: the field goes away.
        return Ok(Walked::new(None));
    };
    for side in [dest.as_ref(), src].into_iter().flatten() {
        if let Some(other) = Kind::of(side) {
            if other != kind {
                return Err(MutateError::new(
                    path,
                    format!(
                        "wrong node kind: expected {} but got {}",
                        kind.name(),
                        other.name()
                    ),
                ));
            }
        }
    }
    match kind {
        Kind::Scalar => Ok(Walked::new(match (src, dest) {
            (Some(Value::Null), _) => None,
            // Walking a value against itself (a map the patch adds) needs no copy.
            // (Floats excluded: `0.0 == -0.0` yet they print differently.)
            (Some(value), Some(dest)) if dest == *value && !value.is_f64() => Some(dest),
            (Some(value), _) => Some(value.clone()),
            (None, dest) => dest,
        })),
        Kind::Map => visit_map(dest, src, schema, path, depth),
        Kind::List => visit_list(dest, src, schema, path, depth),
    }
}

fn embedded_schema(value: Option<&Value>) -> Option<Schema> {
    let map = value?.as_object()?;
    let api_version = map.field("apiVersion")?.as_str()?;
    let kind = map.field("kind")?.as_str()?;
    if api_version.is_empty() || kind.is_empty() {
        return None;
    }
    schema::for_kind(api_version, kind)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Directive {
    Merge,
    Replace,
    Delete,
}

const DIRECTIVE_KEY: &str = "$patch";

/// Reads and removes a `$patch` directive; an unknown value is an error and stays in place.
fn take_directive(map: &mut Map<String, Value>) -> Result<Directive, String> {
    let Some(value) = map.get(DIRECTIVE_KEY) else {
        return Ok(Directive::Merge);
    };
    let text = scalar_text(value);
    let directive = match text.as_str() {
        "merge" => Directive::Merge,
        "replace" => Directive::Replace,
        "delete" => Directive::Delete,
        other => return Err(format!("unknown patch strategy '{other}'")),
    };
    map.shift_remove(DIRECTIVE_KEY);
    Ok(directive)
}

fn visit_map(
    dest: Option<Value>,
    src: Option<&Value>,
    schema: Option<Schema>,
    path: &mut Vec<String>,
    depth: usize,
) -> Result<Walked, MutateError> {
    if is_missing_or_null(dest.as_ref()) {
        // The patch adds the map: it becomes the destination and is walked against itself,
        // which drops its nulls and applies nested directives.
        let Some(Value::Object(origin)) = src else {
            return Ok(Walked::new(None));
        };
        let mut own = origin.clone();
        if !own.contains_key(DIRECTIVE_KEY) {
            let merged = walk_fields(own, Some(origin), schema, path, depth)?;
            return Ok(Walked::new(Some(Value::Object(merged))));
        }
        if take_directive(&mut own) == Ok(Directive::Delete) {
            return Ok(Walked::new(None));
        }
        let snapshot = own.clone();
        let merged = walk_fields(own, Some(&snapshot), schema, path, depth)?;
        return Ok(Walked::new(Some(Value::Object(merged))));
    }
    let Some(Value::Object(dest)) = dest else {
        return Ok(Walked::new(dest));
    };
    let origin = match src {
        Some(Value::Null) => return Ok(Walked::new(None)),
        Some(Value::Object(map)) => Some(map),
        _ => None,
    };
    let mut elided;
    let mut directive = Directive::Merge;
    let mut origin_ref = origin;
    if let Some(map) = origin.filter(|m| m.contains_key(DIRECTIVE_KEY)) {
        elided = map.clone();
        directive = take_directive(&mut elided).map_err(|reason| MutateError::new(path, reason))?;
        origin_ref = Some(&elided);
    }
    match directive {
        Directive::Delete => Ok(Walked::new(None)),
        Directive::Replace => {
            let replacement = origin_ref.cloned().unwrap_or_default();
            let merged = walk_fields(replacement, origin_ref, schema, path, depth)?;
            Ok(Walked::new(Some(Value::Object(merged))))
        }
        Directive::Merge => {
            let merged = walk_fields(dest, origin_ref, schema, path, depth)?;
            Ok(Walked {
                value: Some(Value::Object(merged)),
                in_place: true,
            })
        }
    }
}

/// Walks every field of either side; existing fields keep their position and new ones are
/// appended in sorted order, as kyaml's field setter does. Fields only the resource has can
/// only be tidied (nulls dropped, keyed lists normalized), so they are done first, in place.
fn walk_fields(
    mut dest: Map<String, Value>,
    src: Option<&Map<String, Value>>,
    schema: Option<Schema>,
    path: &mut Vec<String>,
    depth: usize,
) -> Result<Map<String, Value>, MutateError> {
    // Patches are small: a scan beats hashing the name.
    let in_src = |name: &str| src.is_some_and(|m| m.keys().any(|k| k == name));
    let mut cleared = false;
    for (name, value) in dest.iter_mut() {
        if in_src(name) {
            continue;
        }
        let child_schema = schema.and_then(|s| s.field(name));
        if !needs_normalizing(value, child_schema, depth + 1) {
            continue;
        }
        path.push(name.clone());
        let walked = walk(
            Some(std::mem::take(value)),
            None,
            child_schema,
            path,
            depth + 1,
        );
        path.pop();
        // `Value::Null` marks a field to drop: a walk never yields `Some(Null)`.
        *value = walked?.value.unwrap_or(Value::Null);
        cleared |= value.is_null();
    }
    if cleared {
        dest.retain(|name, value| !value.is_null() || in_src(name));
    }
    let Some(src) = src else {
        return Ok(dest);
    };
    let mut fields: Vec<(&String, &Value)> = src.iter().collect();
    fields.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (name, patch) in fields {
        let child_schema = schema.and_then(|s| s.field(name));
        path.push(name.clone());
        let walked = match field_mut(&mut dest, name) {
            Some(slot) => {
                let walked = walk(
                    Some(std::mem::take(slot)),
                    Some(patch),
                    child_schema,
                    path,
                    depth + 1,
                );
                match walked {
                    Ok(Walked {
                        value: Some(value), ..
                    }) => {
                        *slot = value;
                        Ok(None)
                    }
                    Ok(Walked { value: None, .. }) => Ok(Some(None)),
                    Err(e) => Err(e),
                }
            }
            None => walk(None, Some(patch), child_schema, path, depth + 1).map(|w| Some(w.value)),
        };
        path.pop();
        // `Some(value)`: the field was missing or is to go (`None`).
        match walked? {
            None => {}
            Some(Some(value)) => {
                dest.insert(name.clone(), value);
            }
            Some(None) => {
                dest.shift_remove(name.as_str());
            }
        }
    }
    Ok(dest)
}

/// Whether walking `value` against no patch could change it: kyaml drops nulls and rebuilds
/// keyed lists even where the patch says nothing. `false` means the walk leaves `value` as it
/// is; `true` may be conservative.
fn needs_normalizing(value: &Value, schema: Option<Schema>, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return true;
    }
    let schema = schema.or_else(|| embedded_schema(Some(value)));
    match value {
        Value::Null => true,
        Value::Object(map) => map.iter().any(|(name, child)| {
            needs_normalizing(child, schema.and_then(|s| s.field(name)), depth + 1)
        }),
        Value::Array(items) => {
            let list = match schema {
                Some(Schema::List(list)) if list.merge => list,
                _ => return false,
            };
            if items.is_empty() {
                return false;
            }
            let element_schema = schema.and_then(Schema::element);
            match list.keys {
                // A set of primitives stays as it is when its members are distinct.
                [] => !items.iter().enumerate().all(|(i, item)| {
                    item.as_str().is_some_and(|s| !s.is_empty())
                        && items.get(..i).is_some_and(|before| !before.contains(item))
                }),
                [key] => match element_keys(items, key) {
                    None => true,
                    Some(_) => items
                        .iter()
                        .any(|item| needs_normalizing(item, element_schema, depth + 1)),
                },
                // Several keys (ports): every element has a value for every key and no two
                // elements share all of them, so no tuples unify and each element is taken
                // out and put back in its place — the list stays as it is.
                keys => {
                    !all_keyed_and_distinct(items, keys)
                        || items
                            .iter()
                            .any(|item| needs_normalizing(item, element_schema, depth + 1))
                }
            }
        }
        _ => false,
    }
}

/// Whether every element is a map with a non-empty scalar value for each of `keys` and no two
/// elements have the same values for all of them.
fn all_keyed_and_distinct(items: &[Value], keys: &[&str]) -> bool {
    let mut tuples: Vec<Vec<String>> = Vec::with_capacity(items.len());
    for item in items {
        let Some(map) = item.as_object() else {
            return false;
        };
        let mut tuple = Vec::with_capacity(keys.len());
        for key in keys {
            let text = match map.field(key) {
                None | Some(Value::Null | Value::Array(_) | Value::Object(_)) => return false,
                Some(scalar) => scalar_text(scalar),
            };
            if text.is_empty() {
                return false;
            }
            tuple.push(text);
        }
        if tuples.contains(&tuple) {
            return false;
        }
        tuples.push(tuple);
    }
    true
}

/// The key texts of a list whose elements are all maps with a distinct, non-empty scalar
/// value for `key`; `None` for any other list.
fn element_keys(items: &[Value], key: &str) -> Option<Vec<String>> {
    let mut texts: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let text = match item.as_object()?.field(key)? {
            Value::Null | Value::Array(_) | Value::Object(_) => return None,
            scalar => scalar_text(scalar),
        };
        if text.is_empty() || texts.contains(&text) {
            return None;
        }
        texts.push(text);
    }
    Some(texts)
}

fn visit_list(
    dest: Option<Value>,
    src: Option<&Value>,
    schema: Option<Schema>,
    path: &mut Vec<String>,
    depth: usize,
) -> Result<Walked, MutateError> {
    let list_schema = match schema {
        Some(Schema::List(list)) if list.merge => list,
        _ => {
            // Not associative: the patch's list (or null) wins when it has one.
            return Ok(Walked::new(match src {
                Some(Value::Null) => None,
                Some(value) => Some(value.clone()),
                None => dest,
            }));
        }
    };
    let dest_items = if is_missing_or_null(dest.as_ref()) {
        match src {
            Some(Value::Array(items)) => items.clone(),
            _ => return Ok(Walked::new(None)),
        }
    } else {
        if matches!(src, Some(Value::Null)) {
            return Ok(Walked::new(None));
        }
        match dest {
            Some(Value::Array(items)) => items,
            other => return Ok(Walked::new(other)),
        }
    };
    let src_items = match src {
        Some(Value::Array(items)) => Some(items.as_slice()),
        _ => None,
    };
    let element_schema = schema.and_then(Schema::element);
    let merged = merge_associative(
        dest_items,
        src_items,
        list_schema.keys,
        element_schema,
        path,
        depth,
    )?;
    Ok(Walked::new(Some(Value::Array(merged))))
}

/// The text kyaml compares list keys by: a scalar's literal, `""` for maps and lists.
pub(crate) fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".to_owned(),
        Value::Array(_) | Value::Object(_) => String::new(),
    }
}

/// An element's values for the merge keys; `""` where a key is missing or null.
fn key_values(element: &Value, keys: &[&str]) -> Vec<String> {
    keys.iter()
        .map(|key| match element.get(*key) {
            None | Some(Value::Null) => String::new(),
            Some(value) => scalar_text(value),
        })
        .collect()
}

/// kyaml's `validateKeys`: the keys that have a value in any tuple of `all` (all keys when
/// none has), with this tuple's values for them.
fn valid_keys<'k>(
    all: &[Vec<String>],
    values: &[String],
    keys: &[&'k str],
) -> (Vec<&'k str>, Vec<String>) {
    let valid: Vec<bool> = (0..keys.len())
        .map(|i| all.iter().any(|t| t.get(i).is_some_and(|v| !v.is_empty())))
        .collect();
    if !valid.contains(&true) {
        return (keys.to_vec(), values.to_vec());
    }
    let mut out_keys = Vec::new();
    let mut out_values = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        if valid.get(i).copied().unwrap_or(false) {
            out_keys.push(*key);
            out_values.push(values.get(i).cloned().unwrap_or_default());
        }
    }
    (out_keys, out_values)
}

/// kyaml's `mergeValues`: tuples that agree wherever both have a value (and share at least one
/// value) are the same element, e.g. a port with and without its default protocol.
fn merge_tuples(tuples: &mut [Vec<String>]) {
    for i in 0..tuples.len() {
        for j in 0..tuples.len() {
            let (Some(a), Some(b)) = (tuples.get(i), tuples.get(j)) else {
                continue;
            };
            if let Some(merged) = unify(a, b) {
                if let Some(slot) = tuples.get_mut(i) {
                    slot.clone_from(&merged);
                }
                if let Some(slot) = tuples.get_mut(j) {
                    *slot = merged;
                }
            }
        }
    }
}

fn unify(a: &[String], b: &[String]) -> Option<Vec<String>> {
    if a.len() != b.len() {
        return None;
    }
    let mut common = false;
    let mut out = Vec::with_capacity(a.len());
    for (x, y) in a.iter().zip(b) {
        if x == y {
            common = true;
            out.push(x.clone());
        } else if !x.is_empty() && !y.is_empty() {
            return None;
        } else if x.is_empty() {
            out.push(y.clone());
        } else {
            out.push(x.clone());
        }
    }
    common.then_some(out)
}

/// kyaml's element lookup: the first element whose key fields have exactly these texts (for
/// primitive lists, the first element with this text).
fn find_element(list: &[Value], keys: &[&str], values: &[String]) -> Option<usize> {
    if keys.first().is_none_or(|k| k.is_empty()) {
        let wanted = values.first().map(String::as_str).unwrap_or_default();
        return list.iter().position(|e| scalar_text(e) == wanted);
    }
    list.iter().position(|element| {
        element.is_object()
            && keys.iter().zip(values).all(|(key, value)| {
                element
                    .get(*key)
                    .is_some_and(|field| scalar_text(field) == *value)
            })
    })
}

fn is_empty_map(value: &Value) -> bool {
    matches!(value, Value::Object(map) if map.is_empty())
}

/// kyaml's field matcher as the element setter uses it: an empty value matches any value.
fn field_matches(element: &Value, key: &str, value: &str) -> bool {
    if element.is_null() {
        return false;
    }
    if key.is_empty() {
        return !element.is_object() && !element.is_array() && scalar_text(element) == value;
    }
    match element.get(key) {
        Some(field) => value.is_empty() || scalar_text(field) == value,
        None => false,
    }
}

/// kyaml's element setter: drops null and empty-map elements, replaces every element matching
/// the keys with `element` (or removes them when `element` is `None`), and appends `element`
/// when nothing matched. With no values, non-matching elements are dropped too.
fn set_element(list: &mut Vec<Value>, element: Option<&Value>, keys: &[&str], values: &[String]) {
    let keys: &[&str] = if keys.is_empty() { &[""] } else { keys };
    let mapping_setter = keys.first().is_some_and(|k| !k.is_empty())
        && values.first().is_some_and(|v| !v.is_empty());
    let mut found_any = false;
    let mut kept = Vec::with_capacity(list.len() + 1);
    for item in list.drain(..) {
        if item.is_null() || is_empty_map(&item) {
            continue;
        }
        if !item.is_object() && mapping_setter {
            kept.push(item);
            continue;
        }
        let mut matched: Option<bool> = None;
        let mut found = true;
        for (j, key) in keys.iter().enumerate() {
            if let Some(value) = values.get(j) {
                matched = Some(field_matches(&item, key, value));
            }
            if matched != Some(true) {
                found = false;
                break;
            }
        }
        if !found {
            if !values.is_empty() {
                kept.push(item);
            }
            continue;
        }
        found_any = true;
        if let Some(element) = element {
            kept.push(element.clone());
        }
    }
    *list = kept;
    if let Some(element) = element.filter(|e| !e.is_null()) {
        if !found_any {
            list.push(element.clone());
        }
    }
}

/// kyaml's `appendListNode`: puts the resource's elements into the merged list by key.
fn append_by_key(target: &mut Vec<Value>, source: &[Value], keys: &[&str]) {
    for element in source {
        if keys.first().is_none_or(|k| k.is_empty()) {
            set_element(target, Some(element), &[""], &[scalar_text(element)]);
            continue;
        }
        let mut values = Vec::new();
        for key in keys {
            match element.get(*key) {
                None => target.push(element.clone()),
                Some(value) => values.push(scalar_text(value)),
            }
        }
        if keys.len() > 1 {
            // Several keys: the element is moved to the end rather than duplicated.
            set_element(target, None, keys, &values);
        }
        set_element(target, Some(element), keys, &values);
    }
}

/// Merges an associative list: by `keys`, or by value for a list of primitives (`keys` empty).
fn merge_associative(
    mut dest: Vec<Value>,
    src: Option<&[Value]>,
    keys: &[&str],
    element_schema: Option<Schema>,
    path: &mut Vec<String>,
    depth: usize,
) -> Result<Vec<Value>, MutateError> {
    if let ([key], Some(src)) = (keys, src) {
        if let Some(merged) = merge_distinct(&mut dest, src, key, element_schema, path, depth)? {
            return Ok(merged);
        }
    }
    let primitive = keys.is_empty();
    let keys: &[&str] = if primitive { &[""] } else { keys };
    // The patch's elements first, then the resource's, each key tuple once. Elements without
    // any key value are left where they are (see the module docs).
    let mut tuples: Vec<Vec<String>> = Vec::new();
    for element in src.unwrap_or_default().iter().chain(dest.iter()) {
        let tuple = if primitive {
            vec![scalar_text(element)]
        } else {
            key_values(element, keys)
        };
        if (!primitive && tuple.iter().all(String::is_empty)) || tuples.contains(&tuple) {
            continue;
        }
        tuples.push(tuple);
    }
    if keys.len() > 1 {
        merge_tuples(&mut tuples);
    }
    if tuples.is_empty() {
        return Ok(dest);
    }
    let mut items: Vec<Value> = Vec::new();
    let mut last_keys: Vec<&str> = keys.to_vec();
    for tuple in &tuples {
        let (valid, values) = valid_keys(&tuples, tuple, keys);
        let (lookup_keys, lookup_values) =
            valid_keys(std::slice::from_ref(&values), &values, &valid);
        let dest_pos = find_element(&dest, &lookup_keys, &lookup_values);
        let src_element =
            src.and_then(|s| find_element(s, &lookup_keys, &lookup_values).and_then(|i| s.get(i)));
        path.push(values.join(","));
        let walked = walk(
            dest_pos.and_then(|p| dest.get(p).cloned()),
            src_element,
            element_schema,
            path,
            depth + 1,
        );
        path.pop();
        let walked = walked?;
        last_keys.clone_from(&valid);
        let Some(mut value) = walked.value.filter(|v| !v.is_null() && !is_empty_map(v)) else {
            set_element(&mut dest, None, &valid, &values);
            continue;
        };
        if let Value::Object(map) = &mut value {
            for (key, text) in valid.iter().zip(&values) {
                if !text.is_empty() && !map.contains_key(*key) {
                    map.insert((*key).to_owned(), Value::String(text.clone()));
                }
            }
        }
        if walked.in_place {
            if let Some(slot) = dest_pos.and_then(|p| dest.get_mut(p)) {
                *slot = value.clone();
            }
        }
        set_element(&mut items, Some(&value), &valid, &values);
    }
    append_by_key(&mut items, &dest, &last_keys);
    Ok(items)
}

/// The common case of a list merged by one key, without cloning: every element on both sides
/// is a map with a distinct, non-empty key value and the patch has no `$patch` directives.
/// Then kyaml's result is the patch's elements (merged into the resource's) in patch order,
/// followed by the resource's other elements. `None` (with `dest` untouched) for other lists.
fn merge_distinct(
    dest: &mut Vec<Value>,
    src: &[Value],
    key: &str,
    element_schema: Option<Schema>,
    path: &mut Vec<String>,
    depth: usize,
) -> Result<Option<Vec<Value>>, MutateError> {
    if src
        .iter()
        .any(|e| e.as_object().is_some_and(|m| m.contains_key(DIRECTIVE_KEY)))
    {
        return Ok(None);
    }
    let (Some(src_keys), Some(dest_keys)) = (element_keys(src, key), element_keys(dest, key))
    else {
        return Ok(None);
    };
    let mut slots: Vec<Option<Value>> = dest.drain(..).map(Some).collect();
    let mut merged = Vec::with_capacity(slots.len() + src.len());
    for (text, element) in src_keys.iter().zip(src) {
        let current = dest_keys
            .iter()
            .position(|t| t == text)
            .and_then(|p| slots.get_mut(p))
            .and_then(Option::take);
        path.push(text.clone());
        let walked = walk(current, Some(element), element_schema, path, depth + 1);
        path.pop();
        push_merged(&mut merged, walked?.value, key, text);
    }
    for (text, slot) in dest_keys.iter().zip(slots) {
        let Some(current) = slot else {
            continue;
        };
        path.push(text.clone());
        let walked = walk(Some(current), None, element_schema, path, depth + 1);
        path.pop();
        push_merged(&mut merged, walked?.value, key, text);
    }
    Ok(Some(merged))
}

/// Appends a merged element unless it came out empty, restoring its key when the merge lost it.
fn push_merged(list: &mut Vec<Value>, value: Option<Value>, key: &str, text: &str) {
    let Some(mut value) = value.filter(|v| !v.is_null() && !is_empty_map(v)) else {
        return;
    };
    if let Value::Object(map) = &mut value {
        if !map.contains_key(key) {
            map.insert(key.to_owned(), Value::String(text.to_owned()));
        }
    }
    list.push(value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn merge(resource: Value, patch: Value) -> Value {
        merge_document(&resource, &patch).unwrap()
    }

    /// Where the shortcut says a multi-key list needs no tidying, the full associative merge
    /// against no patch must give the list back unchanged; where it does not, the merge is run.
    #[test]
    fn keyed_lists_with_distinct_full_keys_are_left_as_they_are() {
        let keys = ["containerPort", "protocol"];
        let lists = [
            json!([{"containerPort": 8080, "protocol": "TCP"}]),
            json!([{"containerPort": 53, "protocol": "UDP"}, {"containerPort": 53, "protocol": "TCP"},
                   {"name": "x", "containerPort": 80, "protocol": "TCP"}]),
            json!([{"protocol": "TCP", "containerPort": 443}, {"containerPort": 80, "protocol": "TCP"}]),
        ];
        for list in lists {
            let Value::Array(items) = list else {
                unreachable!()
            };
            assert!(all_keyed_and_distinct(&items, &keys), "{items:?}");
            let merged =
                merge_associative(items.clone(), None, &keys, None, &mut Vec::new(), 0).unwrap();
            assert_eq!(merged, items);
        }
        // A missing key, a duplicate tuple or a non-map element needs the full merge.
        for list in [
            json!([{"containerPort": 8080}]),
            json!([{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 80, "protocol": "TCP"}]),
            json!([{"containerPort": 80, "protocol": ""}]),
            json!(["80"]),
        ] {
            let Value::Array(items) = list else {
                unreachable!()
            };
            assert!(!all_keyed_and_distinct(&items, &keys), "{items:?}");
        }
        // Through a whole merge: a container's ports survive an unrelated patch unchanged.
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [
            {"name": "a", "ports": [{"containerPort": 9090, "protocol": "TCP"},
                                    {"containerPort": 8080, "protocol": "TCP"}]}]}});
        let got = merge(pod.clone(), json!({"metadata": {"labels": {"x": "1"}}}));
        assert_eq!(got["spec"], pod["spec"]);
    }

    #[test]
    fn maps_merge_and_null_deletes() {
        let got = merge(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "labels": {"x": "1", "y": "2"}}}),
            json!({"metadata": {"labels": {"x": null, "z": "3"}}}),
        );
        assert_eq!(
            got,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "labels": {"y": "2", "z": "3"}}})
        );
    }

    #[test]
    fn containers_merge_by_name_and_new_ones_come_first() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [
            {"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}});
        let got = merge(
            pod,
            json!({"spec": {"containers": [{"name": "c", "image": "c:1"}, {"name": "b", "image": "b:2"}]}}),
        );
        assert_eq!(
            got["spec"]["containers"],
            json!([{"name": "c", "image": "c:1"}, {"name": "b", "image": "b:2"}, {"name": "a", "image": "a:1"}])
        );
    }

    #[test]
    fn custom_resource_lists_are_replaced() {
        let wf = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "spec": {"templates": [
            {"name": "a", "container": {"image": "x"}}]}});
        let got = merge(
            wf,
            json!({"spec": {"templates": [{"name": "a", "container": {"resources": {}}}]}}),
        );
        assert_eq!(
            got["spec"]["templates"],
            json!([{"name": "a", "container": {"resources": {}}}])
        );
    }

    #[test]
    fn type_clash_is_an_error_with_the_path() {
        let err = merge_document(
            &json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": "a"}]}}),
            &json!({"spec": {"containers": {"name": "a"}}}),
        )
        .unwrap_err();
        assert_eq!(err.path, "/spec/containers");
        assert!(err.reason.contains("wrong node kind"), "{err}");
    }

    #[test]
    fn finalizers_merge_as_a_set() {
        let got = merge(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"finalizers": ["a", "b"]}}),
            json!({"metadata": {"finalizers": ["c", "a"]}}),
        );
        assert_eq!(got["metadata"]["finalizers"], json!(["c", "a", "b"]));
    }
}
