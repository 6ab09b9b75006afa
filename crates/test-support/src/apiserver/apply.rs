//! Server-side apply (`application/apply-patch+yaml`), approximated.
//!
//! The fake keeps, per object, the last configuration each field manager applied (separately for
//! the main resource and for `/status`). Applying a configuration:
//! 1. reports a conflict for every field the configuration sets to a value different from the live
//!    one while another *apply* manager's configuration also sets it (unless `force=true`, which
//!    takes the field away from that manager);
//! 2. removes from the live object the fields the manager applied last time but omits now, unless
//!    another apply manager's configuration still holds them;
//! 3. merges the configuration into the live object: maps field by field, keyed lists
//!    (`x-kubernetes-list-type: map` / built-in keyed lists, see [`super::lists`]) element by
//!    element, sets as a union, atomic lists and scalars replaced; `null` deletes a field.
//!
//! What differs from kube-apiserver: ownership is not tracked for writes that are not applies
//! (PUT, merge/JSON patches), so they never cause apply conflicts and never share ownership;
//! `metadata.managedFields` is not written.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::lists::{element_key, ListType, ListTypes, Seg};

/// One step of a field path: a map key, or a keyed-list element identified by its key.
#[derive(Clone, Debug, PartialEq)]
enum PathElem {
    Field(String),
    Element(ListType, Value),
}

type FieldPath = Vec<PathElem>;

/// Renders `.spec.containers[name="app"].image` the way kube-apiserver names fields in conflicts.
fn render(path: &[PathElem]) -> String {
    let mut out = String::new();
    for elem in path {
        match elem {
            PathElem::Field(name) => {
                out.push('.');
                out.push_str(name);
            }
            PathElem::Element(ListType::Map(keys), Value::Array(values)) => {
                let parts: Vec<String> = keys
                    .iter()
                    .zip(values)
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                out.push_str(&format!("[{}]", parts.join(",")));
            }
            PathElem::Element(_, value) => out.push_str(&format!("[{value}]")),
        }
    }
    out
}

fn schema_path(path: &[PathElem]) -> Vec<Seg> {
    path.iter()
        .map(|e| match e {
            PathElem::Field(name) => Seg::Field(name.clone()),
            PathElem::Element(..) => Seg::Item,
        })
        .collect()
}

/// The leaves of a configuration: scalars, atomic lists and empty maps, plus the key fields of
/// keyed-list elements (so an element is owned even when only its key is applied).
fn leaves(
    value: &Value,
    path: &mut FieldPath,
    types: &ListTypes<'_>,
    out: &mut Vec<(FieldPath, Value)>,
) {
    match value {
        Value::Object(fields) => {
            // An empty map sets nothing, so it owns nothing.
            for (key, child) in fields {
                path.push(PathElem::Field(key.clone()));
                leaves(child, path, types, out);
                path.pop();
            }
        }
        Value::Array(items) => {
            let elements: Vec<&Value> = items.iter().collect();
            let list_type = types.list_type(&schema_path(path), &elements);
            if list_type == ListType::Atomic {
                out.push((path.clone(), value.clone()));
                return;
            }
            for item in items {
                let Some(key) = element_key(&list_type, item) else {
                    continue;
                };
                path.push(PathElem::Element(list_type.clone(), key));
                match (&list_type, item) {
                    (ListType::Map(_), Value::Object(_)) => leaves(item, path, types, out),
                    _ => out.push((path.clone(), item.clone())),
                }
                path.pop();
            }
        }
        other => out.push((path.clone(), other.clone())),
    }
}

fn value_at<'v>(value: &'v Value, path: &[PathElem]) -> Option<&'v Value> {
    let mut current = value;
    for elem in path {
        current = match elem {
            PathElem::Field(name) => current.get(name)?,
            PathElem::Element(list_type, key) => current
                .as_array()?
                .iter()
                .find(|item| element_key(list_type, item).as_ref() == Some(key))?,
        };
    }
    Some(current)
}

fn remove_at(value: &mut Value, path: &[PathElem]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut current = value;
    for elem in parent_path {
        let next = match elem {
            PathElem::Field(name) => current.get_mut(name),
            PathElem::Element(list_type, key) => current.as_array_mut().and_then(|items| {
                items
                    .iter_mut()
                    .find(|item| element_key(list_type, item).as_ref() == Some(key))
            }),
        };
        match next {
            Some(next) => current = next,
            None => return,
        }
    }
    match last {
        PathElem::Field(name) => {
            if let Some(fields) = current.as_object_mut() {
                fields.remove(name);
            }
        }
        PathElem::Element(list_type, key) => {
            if let Some(items) = current.as_array_mut() {
                items.retain(|item| element_key(list_type, item).as_ref() != Some(key));
            }
        }
    }
}

/// Walks the previous configuration against the new one and removes from `live` what the manager
/// dropped and no other manager holds.
fn prune(
    live: &mut Value,
    previous: &Value,
    config: Option<&Value>,
    path: &mut FieldPath,
    ctx: &Ctx<'_>,
) {
    match previous {
        Value::Object(fields) if !fields.is_empty() => {
            for (key, prev_child) in fields {
                path.push(PathElem::Field(key.clone()));
                let cfg_child = config.and_then(|c| c.get(key));
                prune_child(live, prev_child, cfg_child, path, ctx);
                path.pop();
            }
        }
        Value::Array(items) => {
            let elements: Vec<&Value> = items.iter().collect();
            let list_type = ctx.types.list_type(&schema_path(path), &elements);
            if list_type == ListType::Atomic {
                return;
            }
            for item in items {
                let Some(key) = element_key(&list_type, item) else {
                    continue;
                };
                let cfg_item = config.and_then(Value::as_array).and_then(|c| {
                    c.iter()
                        .find(|i| element_key(&list_type, i).as_ref() == Some(&key))
                });
                path.push(PathElem::Element(list_type.clone(), key));
                prune_child(live, item, cfg_item, path, ctx);
                path.pop();
            }
        }
        _ => {}
    }
}

fn prune_child(
    live: &mut Value,
    previous: &Value,
    config: Option<&Value>,
    path: &mut FieldPath,
    ctx: &Ctx<'_>,
) {
    if config.is_none() && !ctx.others_hold(path) {
        remove_at(live, path);
    } else {
        prune(live, previous, config, path, ctx);
    }
}

/// Merges an applied configuration into the live object.
fn merge(live: &mut Value, config: &Value, path: &mut Vec<Seg>, types: &ListTypes<'_>) {
    match config {
        Value::Object(fields) => {
            if !live.is_object() {
                *live = Value::Object(Map::new());
            }
            let Value::Object(live_fields) = live else {
                return;
            };
            for (key, value) in fields {
                if value.is_null() {
                    live_fields.remove(key);
                    continue;
                }
                path.push(Seg::Field(key.clone()));
                merge(
                    live_fields.entry(key.clone()).or_insert(Value::Null),
                    value,
                    path,
                    types,
                );
                path.pop();
            }
        }
        Value::Array(items) => {
            let elements: Vec<&Value> = items.iter().collect();
            let list_type = types.list_type(path, &elements);
            if list_type == ListType::Atomic || !live.is_array() {
                *live = config.clone();
                return;
            }
            let Value::Array(live_items) = live else {
                return;
            };
            path.push(Seg::Item);
            for item in items {
                let Some(key) = element_key(&list_type, item) else {
                    continue;
                };
                match live_items
                    .iter_mut()
                    .find(|l| element_key(&list_type, l).as_ref() == Some(&key))
                {
                    Some(existing) => merge(existing, item, path, types),
                    None => live_items.push(item.clone()),
                }
            }
            path.pop();
        }
        other => *live = other.clone(),
    }
}

struct Ctx<'a> {
    types: &'a ListTypes<'a>,
    others: Vec<&'a Value>,
}

impl Ctx<'_> {
    fn others_hold(&self, path: &[PathElem]) -> bool {
        self.others.iter().any(|o| value_at(o, path).is_some())
    }
}

/// The applied configurations of one object, by (field manager, subresource).
pub(crate) type Appliers = BTreeMap<(String, String), Value>;

/// The outcome of applying: the new live object and the updated applied configurations, or the
/// conflicts `(manager, field)`.
pub(crate) fn apply(
    live: &Value,
    config: &Value,
    appliers: &Appliers,
    manager: &str,
    subresource: &str,
    force: bool,
    types: &ListTypes<'_>,
) -> Result<(Value, Appliers), Vec<(String, String)>> {
    let me = (manager.to_string(), subresource.to_string());
    let mut appliers = appliers.clone();

    let mut config_leaves = Vec::new();
    leaves(config, &mut Vec::new(), types, &mut config_leaves);
    let mut conflicts = Vec::new();
    for (path, value) in &config_leaves {
        let differs = value_at(live, path).is_some_and(|live_value| live_value != value);
        if !differs {
            continue;
        }
        for (owner, owned) in appliers.iter_mut() {
            if *owner == me || value_at(owned, path).is_none() {
                continue;
            }
            if force {
                remove_at(owned, path);
            } else {
                conflicts.push((owner.0.clone(), render(path)));
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
    }

    let mut result = live.clone();
    if let Some(previous) = appliers.get(&me) {
        let ctx = Ctx {
            types,
            others: appliers
                .iter()
                .filter(|(k, _)| **k != me)
                .map(|(_, v)| v)
                .collect(),
        };
        prune(&mut result, previous, Some(config), &mut Vec::new(), &ctx);
    }
    merge(&mut result, config, &mut Vec::new(), types);
    appliers.insert(me, config.clone());
    Ok((result, appliers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::resources::Registry;
    use serde_json::json;

    fn deployments() -> std::sync::Arc<crate::apiserver::resources::ResourceType> {
        Registry::with_builtins()
            .by_path("apps", "v1", "deployments")
            .expect("built in")
    }

    #[test]
    fn omitted_fields_are_removed_unless_another_manager_holds_them() {
        let rt = deployments();
        let types = ListTypes::for_resource(&rt);
        let first = json!({ "spec": { "replicas": 2, "template": { "spec": { "containers": [
            { "name": "app", "image": "a:1" }, { "name": "side", "image": "s:1" } ] } } } });
        let (live, appliers) = apply(&json!({}), &first, &Appliers::new(), "a", "", false, &types)
            .expect("no conflict");
        let other = json!({ "spec": { "template": { "spec": { "containers": [ { "name": "side", "image": "s:1" } ] } } } });
        let (live, appliers) =
            apply(&live, &other, &appliers, "b", "", false, &types).expect("same value");
        let second = json!({ "spec": { "template": { "spec": { "containers": [ { "name": "app", "image": "a:2" } ] } } } });
        let (live, _) =
            apply(&live, &second, &appliers, "a", "", false, &types).expect("no conflict");
        assert_eq!(
            live,
            json!({ "spec": { "template": { "spec": { "containers": [
                { "name": "app", "image": "a:2" }, { "name": "side", "image": "s:1" } ] } } } })
        );
    }

    #[test]
    fn changing_a_field_another_manager_applied_conflicts_unless_forced() {
        let rt = deployments();
        let types = ListTypes::for_resource(&rt);
        let (live, appliers) = apply(
            &json!({}),
            &json!({ "spec": { "replicas": 2 } }),
            &Appliers::new(),
            "a",
            "",
            false,
            &types,
        )
        .expect("first apply");
        let conflicts = apply(
            &live,
            &json!({ "spec": { "replicas": 3 } }),
            &appliers,
            "b",
            "",
            false,
            &types,
        )
        .expect_err("conflict");
        assert_eq!(
            conflicts,
            vec![("a".to_string(), ".spec.replicas".to_string())]
        );
        let (live, appliers) = apply(
            &live,
            &json!({ "spec": { "replicas": 3 } }),
            &appliers,
            "b",
            "",
            true,
            &types,
        )
        .expect("forced");
        assert_eq!(live, json!({ "spec": { "replicas": 3 } }));
        // Manager "a" lost the field: dropping it from a's next apply leaves it alone.
        let (live, _) = apply(
            &live,
            &json!({ "spec": {} }),
            &appliers,
            "a",
            "",
            false,
            &types,
        )
        .expect("apply");
        assert_eq!(live, json!({ "spec": { "replicas": 3 } }));
    }
}
