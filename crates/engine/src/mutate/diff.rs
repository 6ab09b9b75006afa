//! A small, deterministic RFC 6902 patch between two documents, as the admission webhook
//! returns it. Objects are compared key by key (removals in the original's order, then changes,
//! then additions in the new order); lists keep their common prefix and suffix, patch the
//! overlapping middle element by element and add or remove the rest, so inserting one
//! container at the front is one `add`.

use serde::Serialize;
use serde_json::Value;

use super::MAX_DEPTH;

/// A JSON patch operation kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PatchOp {
    Add,
    Remove,
    Replace,
}

/// One RFC 6902 operation; `value` is absent for `remove`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PatchOperation {
    pub op: PatchOp,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

impl PatchOperation {
    fn add(path: String, value: &Value) -> Self {
        PatchOperation {
            op: PatchOp::Add,
            path,
            value: Some(value.clone()),
        }
    }

    fn remove(path: String) -> Self {
        PatchOperation {
            op: PatchOp::Remove,
            path,
            value: None,
        }
    }

    fn replace(path: String, value: &Value) -> Self {
        PatchOperation {
            op: PatchOp::Replace,
            path,
            value: Some(value.clone()),
        }
    }
}

/// The operations that turn `original` into `mutated`, applied in order.
pub fn diff(original: &Value, mutated: &Value) -> Vec<PatchOperation> {
    let mut ops = Vec::new();
    diff_into(original, mutated, &mut String::new(), &mut ops, 0);
    ops
}

/// Escapes one path token (`~` → `~0`, `/` → `~1`).
pub fn escape_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Appends `/token` (escaped) to `path`.
fn push_token(path: &mut String, token: &str) {
    path.push('/');
    for c in token.chars() {
        match c {
            '~' => path.push_str("~0"),
            '/' => path.push_str("~1"),
            c => path.push(c),
        }
    }
}

/// `path` followed by `/token`.
fn child_path(path: &str, token: &str) -> String {
    let mut child = path.to_owned();
    push_token(&mut child, token);
    child
}

/// Diffs two values at `path`, a buffer that is extended for children and put back, so equal
/// subtrees cost no allocation.
fn diff_into(
    original: &Value,
    mutated: &Value,
    path: &mut String,
    ops: &mut Vec<PatchOperation>,
    depth: usize,
) {
    if depth > MAX_DEPTH {
        if original != mutated {
            ops.push(PatchOperation::replace(path.clone(), mutated));
        }
        return;
    }
    match (original, mutated) {
        (Value::Object(old), Value::Object(new)) => {
            for key in old.keys().filter(|k| !new.contains_key(*k)) {
                ops.push(PatchOperation::remove(child_path(path, key)));
            }
            for (key, old_value) in old {
                if let Some(new_value) = new.get(key) {
                    let len = path.len();
                    push_token(path, key);
                    diff_into(old_value, new_value, path, ops, depth + 1);
                    path.truncate(len);
                }
            }
            for (key, new_value) in new.iter().filter(|(k, _)| !old.contains_key(*k)) {
                ops.push(PatchOperation::add(child_path(path, key), new_value));
            }
        }
        (Value::Array(old), Value::Array(new)) => diff_arrays(old, new, path, ops, depth),
        _ if original == mutated => {}
        _ => ops.push(PatchOperation::replace(path.clone(), mutated)),
    }
}

fn diff_arrays(
    old: &[Value],
    new: &[Value],
    path: &mut String,
    ops: &mut Vec<PatchOperation>,
    depth: usize,
) {
    let prefix = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let max_suffix = old.len().min(new.len()) - prefix;
    let suffix = old
        .iter()
        .rev()
        .zip(new.iter().rev())
        .take(max_suffix)
        .take_while(|(a, b)| a == b)
        .count();
    let old_middle = old.get(prefix..old.len() - suffix).unwrap_or_default();
    let new_middle = new.get(prefix..new.len() - suffix).unwrap_or_default();
    let common = old_middle.len().min(new_middle.len());
    for (offset, (a, b)) in old_middle.iter().zip(new_middle).enumerate() {
        let len = path.len();
        push_token(path, &(prefix + offset).to_string());
        diff_into(a, b, path, ops, depth + 1);
        path.truncate(len);
    }
    for (offset, value) in new_middle.iter().enumerate().skip(common) {
        ops.push(PatchOperation::add(
            format!("{path}/{}", prefix + offset),
            value,
        ));
    }
    for offset in (common..old_middle.len()).rev() {
        ops.push(PatchOperation::remove(format!(
            "{path}/{}",
            prefix + offset
        )));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(original: Value, mutated: Value) -> Vec<PatchOperation> {
        let ops = diff(&original, &mutated);
        let patch: json_patch::Patch =
            serde_json::from_value(serde_json::to_value(&ops).unwrap()).unwrap();
        let mut doc = original.clone();
        json_patch::patch(&mut doc, &patch).unwrap();
        assert_eq!(doc, mutated, "applying {ops:?}");
        ops
    }

    #[test]
    fn identical_documents_give_no_operations() {
        assert!(check(json!({"a": [1, {"b": 2}]}), json!({"a": [1, {"b": 2}]})).is_empty());
    }

    #[test]
    fn object_changes_are_minimal_and_ordered() {
        let ops = check(
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"x": 1}}),
            json!({"metadata": {"labels": {"a": "1", "c/d": "3"}}, "spec": {"x": 2}}),
        );
        assert_eq!(
            serde_json::to_value(&ops).unwrap(),
            json!([
                {"op": "remove", "path": "/metadata/labels/b"},
                {"op": "add", "path": "/metadata/labels/c~1d", "value": "3"},
                {"op": "replace", "path": "/spec/x", "value": 2}
            ])
        );
    }

    #[test]
    fn inserting_at_the_front_is_one_add() {
        let ops = check(
            json!({"c": [{"name": "a"}, {"name": "b"}]}),
            json!({"c": [{"name": "z"}, {"name": "a"}, {"name": "b"}]}),
        );
        assert_eq!(
            ops,
            vec![PatchOperation::add("/c/0".into(), &json!({"name": "z"}))]
        );
    }

    #[test]
    fn removals_run_from_the_back() {
        check(json!([1, 2, 3, 4, 5]), json!([1, 5]));
        check(json!([1, 2, 3]), json!([4, 5, 6, 7]));
        check(
            json!({"a": [1, {"b": [1, 2]}]}),
            json!({"a": [{"b": [2]}, 1]}),
        );
        check(json!({"a~b": 1}), json!({"a~b": 2, "x": null}));
        check(json!({"a": 1}), json!([1]));
    }
}
