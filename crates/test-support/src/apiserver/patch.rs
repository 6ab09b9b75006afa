//! PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch.
//!
//! Strategic merge patch is approximated: it is a merge patch in which keyed lists of built-in types
//! (containers and volumes by name, conditions by type, … see [`super::lists`]) merge element by
//! element, `$patch: delete` removes a list element, `$patch: replace` replaces a map or list, and
//! `metadata.finalizers` merges as a set. Other directives (`$setElementOrder`, `$retainKeys`,
//! `$deleteFromPrimitiveList`) are dropped without effect. As on a real server, custom resources do
//! not accept strategic merge patch (415).

use serde_json::{Map, Value};

use super::lists::{element_key, ListType, ListTypes, Seg};

/// RFC 7386: maps merge recursively, `null` deletes, anything else replaces.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(fields) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target_fields) = target {
        for (key, value) in fields {
            if value.is_null() {
                target_fields.remove(key);
            } else {
                merge_patch(
                    target_fields.entry(key.clone()).or_insert(Value::Null),
                    value,
                );
            }
        }
    }
}

/// RFC 6902, with kube-apiserver's reading of `test`: a missing path equals `null` (kube-runtime's
/// finalizer helper relies on it). Operations apply in order; the first failure fails the patch.
pub(crate) fn json_patch(target: &mut Value, patch: &Value) -> Result<(), String> {
    let Value::Array(operations) = patch else {
        return Err("a JSON patch must be an array of operations".to_string());
    };
    for operation in operations {
        let is_null_test = operation.get("op").and_then(Value::as_str) == Some("test")
            && operation.get("value").is_some_and(Value::is_null);
        if is_null_test {
            let path = operation
                .get("path")
                .and_then(Value::as_str)
                .unwrap_or_default();
            match target.pointer(path) {
                None | Some(Value::Null) => continue,
                Some(found) => {
                    return Err(format!("testing value {path} failed: {found} is not null"))
                }
            }
        }
        let single: json_patch::Patch =
            serde_json::from_value(Value::Array(vec![operation.clone()]))
                .map_err(|e| format!("invalid JSON patch operation {operation}: {e}"))?;
        json_patch::patch(target, &single).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn directive(value: &Value) -> Option<&str> {
    value.get("$patch").and_then(Value::as_str)
}

fn is_directive_key(key: &str) -> bool {
    key.starts_with('$')
        || key.starts_with("$setElementOrder/")
        || key.starts_with("$deleteFromPrimitiveList/")
}

fn strip_directives(value: &Value) -> Value {
    match value {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .filter(|(k, _)| !is_directive_key(k))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

/// Strategic merge patch (approximated, see the module doc).
pub(crate) fn strategic_merge_patch(target: &mut Value, patch: &Value, types: &ListTypes<'_>) {
    let mut path = Vec::new();
    strategic_merge(target, patch, types, &mut path);
}

fn strategic_merge(target: &mut Value, patch: &Value, types: &ListTypes<'_>, path: &mut Vec<Seg>) {
    match patch {
        Value::Object(fields) => {
            if directive(patch) == Some("replace") {
                *target = strip_directives(patch);
                return;
            }
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let Value::Object(target_fields) = target else {
                return;
            };
            for (key, value) in fields {
                if is_directive_key(key) {
                    continue;
                }
                if value.is_null() || directive(value) == Some("delete") {
                    target_fields.remove(key);
                    continue;
                }
                path.push(Seg::Field(key.clone()));
                let slot = target_fields.entry(key.clone()).or_insert(Value::Null);
                strategic_merge(slot, value, types, path);
                path.pop();
            }
        }
        Value::Array(items) => {
            let elements: Vec<&Value> = items.iter().collect();
            let list_type = types.list_type(path, &elements);
            if list_type == ListType::Atomic
                || items.iter().any(|i| directive(i) == Some("replace"))
            {
                *target = Value::Array(
                    items
                        .iter()
                        .filter(|i| directive(i) != Some("replace"))
                        .map(strip_directives)
                        .collect(),
                );
                return;
            }
            if !target.is_array() {
                *target = Value::Array(Vec::new());
            }
            let Value::Array(target_items) = target else {
                return;
            };
            path.push(Seg::Item);
            for item in items {
                let Some(key) = element_key(&list_type, item) else {
                    continue;
                };
                let existing = target_items
                    .iter()
                    .position(|t| element_key(&list_type, t).as_ref() == Some(&key));
                match (directive(item), existing) {
                    (Some("delete"), Some(index)) => {
                        target_items.remove(index);
                    }
                    (Some("delete"), None) => {}
                    (_, Some(index)) => {
                        if let Some(slot) = target_items.get_mut(index) {
                            strategic_merge(slot, item, types, path);
                        }
                    }
                    (_, None) => target_items.push(strip_directives(item)),
                }
            }
            path.pop();
        }
        other => *target = other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::resources::Registry;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut doc = json!({ "a": { "b": 1, "c": 2 }, "list": [1, 2], "gone": true });
        merge_patch(
            &mut doc,
            &json!({ "a": { "b": null, "d": 3 }, "list": [3], "gone": null }),
        );
        assert_eq!(doc, json!({ "a": { "c": 2, "d": 3 }, "list": [3] }));
    }

    #[test]
    fn json_patch_tests_a_missing_path_as_null() {
        let mut doc = json!({ "metadata": { "name": "x" } });
        let patch = json!([
            { "op": "test", "path": "/metadata/finalizers", "value": null },
            { "op": "add", "path": "/metadata/finalizers", "value": ["f"] },
        ]);
        json_patch(&mut doc, &patch).expect("a missing path tests as null");
        assert_eq!(doc["metadata"]["finalizers"], json!(["f"]));
        assert!(
            json_patch(&mut doc, &patch).is_err(),
            "now present: the test fails"
        );
    }

    #[test]
    fn strategic_merge_merges_containers_by_name() {
        let registry = Registry::with_builtins();
        let pods = registry
            .by_path("", "v1", "pods")
            .expect("pods are built in");
        let types = ListTypes::for_resource(&pods);
        let mut pod = json!({ "spec": { "containers": [
            { "name": "app", "image": "app:1" },
            { "name": "sidecar", "image": "proxy:1" },
        ], "tolerations": [{ "key": "a" }] } });
        let patch = json!({ "spec": { "containers": [
            { "name": "app", "image": "app:2" },
            { "name": "sidecar", "$patch": "delete" },
            { "name": "new", "image": "new:1" },
        ], "tolerations": [{ "key": "b" }] } });
        strategic_merge_patch(&mut pod, &patch, &types);
        assert_eq!(
            pod,
            json!({ "spec": { "containers": [
                { "name": "app", "image": "app:2" },
                { "name": "new", "image": "new:1" },
            ], "tolerations": [{ "key": "b" }] } })
        );
    }
}
