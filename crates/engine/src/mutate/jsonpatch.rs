//! `patchesJson6902`: an RFC 6902 patch given as YAML or JSON text, applied with the options
//! Kyverno passes to its JSON patch library: negative array indices count from the end,
//! removing a missing path does nothing, and `add` creates missing parents (objects, or arrays
//! when the next path token is an index or `-`, padded with nulls).

use serde_json::{Map, Value};

use super::MutateError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Remove,
    Replace,
    Move,
    Copy,
    Test,
}

#[derive(Debug, Clone)]
struct Operation {
    op: Op,
    path: String,
    from: Option<String>,
    value: Option<Value>,
}

fn decode_error(reason: impl Into<String>) -> MutateError {
    MutateError {
        path: String::new(),
        reason: format!("failed to decode patches: {}", reason.into()),
    }
}

/// Parses the patch text: JSON when it starts with `[`, YAML otherwise.
fn decode(text: &str) -> Result<Vec<Operation>, MutateError> {
    let document: Value = if text.starts_with('[') {
        serde_json::from_str(text).map_err(|e| decode_error(e.to_string()))?
    } else {
        serde_yaml_ng::from_str(text).map_err(|e| MutateError {
            path: String::new(),
            reason: format!("failed to convert patchesJson6902 to JSON: {e}"),
        })?
    };
    let Value::Array(items) = document else {
        return Err(decode_error("a JSON patch must be a list of operations"));
    };
    items.iter().map(decode_operation).collect()
}

fn decode_operation(item: &Value) -> Result<Operation, MutateError> {
    let Value::Object(map) = item else {
        return Err(decode_error(format!(
            "invalid operation {item}: not an object"
        )));
    };
    let invalid = |why: &str| decode_error(format!("invalid operation {item}: {why}"));
    let op = match map.get("op").and_then(Value::as_str) {
        Some("add") => Op::Add,
        Some("remove") => Op::Remove,
        Some("replace") => Op::Replace,
        Some("move") => Op::Move,
        Some("copy") => Op::Copy,
        Some("test") => Op::Test,
        _ => return Err(invalid("unsupported operation")),
    };
    let value = map.get("value").cloned();
    if matches!(op, Op::Add | Op::Replace) && value.is_none() {
        return Err(invalid("failed to decode 'value'"));
    }
    let from = map.get("from").and_then(Value::as_str).map(str::to_owned);
    if matches!(op, Op::Move | Op::Copy) && from.is_none() {
        return Err(invalid("failed to decode 'from'"));
    }
    let Some(path) = map.get("path").and_then(Value::as_str) else {
        return Err(invalid("failed to decode 'path'"));
    };
    Ok(Operation {
        op,
        path: path.to_owned(),
        from,
        value,
    })
}

/// How many decoded patch texts each thread keeps.
const DECODED_CACHE_SIZE: usize = 256;

thread_local! {
    /// Recently decoded patch texts: the same rule produces the same text for resources that
    /// look alike (e.g. one per container index), and YAML parsing dominates applying.
    static DECODED: std::cell::RefCell<std::collections::HashMap<String, std::rc::Rc<[Operation]>>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

fn decode_cached(text: &str) -> Result<std::rc::Rc<[Operation]>, MutateError> {
    if let Some(hit) = DECODED.with(|cache| cache.borrow().get(text).cloned()) {
        return Ok(hit);
    }
    let operations: std::rc::Rc<[Operation]> = decode(text)?.into();
    DECODED.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.len() >= DECODED_CACHE_SIZE {
            cache.clear();
        }
        cache.insert(text.to_owned(), operations.clone());
    });
    Ok(operations)
}

/// Applies a `patchesJson6902` text to `resource`.
pub(crate) fn apply(resource: &Value, text: &str) -> Result<Value, MutateError> {
    apply_to(resource.clone(), text)
}

/// Applies a `patchesJson6902` text to `resource`, consuming it (nothing of it is kept on
/// error).
pub(crate) fn apply_to(mut doc: Value, text: &str) -> Result<Value, MutateError> {
    let operations = decode_cached(text)?;
    for operation in operations.iter() {
        apply_operation(&mut doc, operation)?;
    }
    Ok(doc)
}

fn fail(path: &str, reason: impl Into<String>) -> MutateError {
    MutateError {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// Splits a JSON pointer into unescaped tokens (`~1` is `/`, `~0` is `~`).
fn tokens(path: &str) -> Result<Vec<String>, MutateError> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(fail(path, "a JSON pointer must start with '/'"));
    };
    Ok(rest.split('/').map(unescape).collect())
}

fn unescape(token: &str) -> String {
    let mut out = String::with_capacity(token.len());
    let mut chars = token.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.peek() {
                Some('1') => {
                    chars.next();
                    out.push('/');
                    continue;
                }
                Some('0') => {
                    chars.next();
                    out.push('~');
                    continue;
                }
                _ => {}
            }
        }
        out.push(c);
    }
    out
}

/// An array index as the patch library reads it; negative ones count from the end.
fn array_index(token: &str, len: usize) -> Option<usize> {
    let idx: i64 = token.parse().ok()?;
    let len = i64::try_from(len).ok()?;
    let idx = if idx < 0 { idx + len } else { idx };
    if idx < 0 || idx >= len {
        return None;
    }
    usize::try_from(idx).ok()
}

fn child<'v>(container: &'v Value, token: &str) -> Option<&'v Value> {
    match container {
        Value::Object(map) => map.get(token),
        Value::Array(items) => items.get(array_index(token, items.len())?),
        _ => None,
    }
}

fn child_mut<'v>(container: &'v mut Value, token: &str) -> Option<&'v mut Value> {
    match container {
        Value::Object(map) => map.get_mut(token),
        Value::Array(items) => {
            let idx = array_index(token, items.len())?;
            items.get_mut(idx)
        }
        _ => None,
    }
}

/// The container holding the last token of `parts`, if every step exists and is a container.
fn parent_mut<'v>(doc: &'v mut Value, parents: &[String]) -> Option<&'v mut Value> {
    let mut current = doc;
    for token in parents {
        current = child_mut(current, token)?;
        if !current.is_object() && !current.is_array() {
            return None;
        }
    }
    Some(current)
}

/// Inserts into an object (replacing) or an array (shifting), per RFC 6902 `add`.
fn add_to(container: &mut Value, key: &str, value: Value, path: &str) -> Result<(), MutateError> {
    match container {
        Value::Object(map) => {
            map.insert(key.to_owned(), value);
            Ok(())
        }
        Value::Array(items) => {
            if key == "-" {
                items.push(value);
                return Ok(());
            }
            let idx: i64 = key
                .parse()
                .map_err(|_| fail(path, format!("value was not a proper array index: '{key}'")))?;
            let size = i64::try_from(items.len() + 1).unwrap_or(i64::MAX);
            let idx = if idx < 0 && idx >= -size {
                idx + size
            } else {
                idx
            };
            let idx = usize::try_from(idx)
                .ok()
                .filter(|i| *i <= items.len())
                .ok_or_else(|| fail(path, format!("unable to access invalid index: {key}")))?;
            items.insert(idx, value);
            Ok(())
        }
        _ => Err(fail(
            path,
            "add operation does not apply: the parent is not an object or array",
        )),
    }
}

fn is_index_token(token: &str) -> Option<i64> {
    if token == "-" {
        return Some(0);
    }
    token.parse::<i64>().ok()
}

/// Creates missing parents of `parts`' last token, as the patch library's
/// `EnsurePathExistsOnAdd` does.
fn ensure_path(doc: &mut Value, parts: &[String], path: &str) -> Result<(), MutateError> {
    let mut current = doc;
    for (position, token) in parts.iter().enumerate() {
        let Some(next) = parts.get(position + 1) else {
            return Ok(());
        };
        let mut lookup = token.clone();
        if child(current, token).is_none() {
            if let (Value::Array(items), Ok(idx)) = (&mut *current, token.parse::<usize>()) {
                while items.len() < idx {
                    items.push(Value::Null);
                }
            }
            let created = match is_index_token(next) {
                Some(idx) => {
                    if idx < -1 {
                        return Err(fail(
                            path,
                            format!(
                                "unable to ensure path for negative index other than -1: {idx}"
                            ),
                        ));
                    }
                    let pad = usize::try_from(idx.max(0)).unwrap_or(0);
                    Value::Array(vec![Value::Null; pad])
                }
                None => Value::Object(Map::new()),
            };
            add_to(current, token, created, path)?;
            if let (Value::Array(items), "-") = (&*current, token.as_str()) {
                lookup = items.len().saturating_sub(1).to_string();
            }
        }
        current = match child_mut(current, &lookup) {
            Some(next_value) if next_value.is_object() || next_value.is_array() => next_value,
            Some(_) => {
                return Err(fail(
                    path,
                    format!("add operation does not apply: \"{token}\" is not an object or array"),
                ))
            }
            None => {
                return Err(fail(
                    path,
                    "add operation does not apply: doc is missing path",
                ));
            }
        };
    }
    Ok(())
}

fn split_last(parts: &[String]) -> (&[String], &str) {
    match parts.split_last() {
        Some((last, parents)) => (parents, last.as_str()),
        None => (&[], ""),
    }
}

fn apply_operation(doc: &mut Value, operation: &Operation) -> Result<(), MutateError> {
    let path = operation.path.as_str();
    let parts = tokens(path)?;
    let value = operation.value.clone().unwrap_or(Value::Null);
    match operation.op {
        Op::Add => {
            if parts.is_empty() {
                return replace_root(doc, value, path);
            }
            ensure_path(doc, &parts, path)?;
            let (parents, key) = split_last(&parts);
            let container = parent_mut(doc, parents).ok_or_else(|| {
                fail(
                    path,
                    format!("add operation does not apply: doc is missing path: \"{path}\""),
                )
            })?;
            add_to(container, key, value, path)
        }
        Op::Remove => {
            let (parents, key) = split_last(&parts);
            let Some(container) = parent_mut(doc, parents) else {
                return Ok(());
            };
            remove_from(container, key, path).map(|_| ())
        }
        Op::Replace => {
            if parts.is_empty() {
                return replace_root(doc, value, path);
            }
            let (parents, key) = split_last(&parts);
            let container = parent_mut(doc, parents).ok_or_else(|| {
                fail(
                    path,
                    format!("replace operation does not apply: doc is missing path: {path}"),
                )
            })?;
            let slot = child_mut(container, key).ok_or_else(|| {
                fail(
                    path,
                    format!("replace operation does not apply: doc is missing key: {path}"),
                )
            })?;
            *slot = value;
            Ok(())
        }
        Op::Move | Op::Copy => {
            let from = operation.from.as_deref().unwrap_or("");
            if from.is_empty() && operation.op == Op::Move {
                return Err(fail(path, "unable to move entire document to another path"));
            }
            let from_parts = tokens(from)?;
            let (from_parents, from_key) = split_last(&from_parts);
            let source = parent_mut(doc, from_parents)
                .ok_or_else(|| fail(from, format!("doc is missing from path: {from}")))?;
            let moved = if operation.op == Op::Move {
                remove_from(source, from_key, from)?.ok_or_else(|| {
                    fail(from, format!("unable to get nonexistent key: {from_key}"))
                })?
            } else {
                child(source, from_key).cloned().ok_or_else(|| {
                    fail(from, format!("unable to get nonexistent key: {from_key}"))
                })?
            };
            let (parents, key) = split_last(&parts);
            let container = parent_mut(doc, parents)
                .ok_or_else(|| fail(path, format!("doc is missing destination path: {path}")))?;
            add_to(container, key, moved, path)
        }
        Op::Test => {
            let (parents, key) = split_last(&parts);
            let actual = if parts.is_empty() {
                Some(&*doc)
            } else {
                let container = parent_mut(doc, parents).ok_or_else(|| {
                    fail(
                        path,
                        format!("test operation does not apply: is missing path: {path}"),
                    )
                })?;
                child(container, key)
            };
            let passed = match actual {
                None => value.is_null(),
                Some(_) if value.is_null() => false,
                Some(actual) => *actual == value,
            };
            if passed {
                Ok(())
            } else {
                Err(fail(path, format!("testing value {path} failed")))
            }
        }
    }
}

fn replace_root(doc: &mut Value, value: Value, path: &str) -> Result<(), MutateError> {
    if !value.is_object() && !value.is_array() {
        return Err(fail(
            path,
            "the whole document can only be replaced by an object or array",
        ));
    }
    *doc = value;
    Ok(())
}

/// Removes and returns the value at `key`; a missing key or index is not an error.
fn remove_from(container: &mut Value, key: &str, path: &str) -> Result<Option<Value>, MutateError> {
    match container {
        Value::Object(map) => Ok(map.shift_remove(key)),
        Value::Array(items) => {
            let idx: i64 = key
                .parse()
                .map_err(|_| fail(path, format!("value was not a proper array index: '{key}'")))?;
            Ok(array_index(&idx.to_string(), items.len()).map(|i| items.remove(i)))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escapes_in_tokens() {
        assert_eq!(unescape("a~1b"), "a/b");
        assert_eq!(unescape("a~0b"), "a~b");
        assert_eq!(unescape("~01"), "~1");
        assert_eq!(unescape("~2"), "~2");
    }

    #[test]
    fn negative_indices_count_from_the_end() {
        assert_eq!(array_index("-1", 3), Some(2));
        assert_eq!(array_index("-4", 3), None);
        assert_eq!(array_index("3", 3), None);
    }

    #[test]
    fn add_creates_arrays_for_index_tokens() {
        let got = apply(&json!({}), "- op: add\n  path: /a/b/1/c\n  value: 1").unwrap();
        assert_eq!(got, json!({"a": {"b": [null, {"c": 1}]}}));
    }
}
