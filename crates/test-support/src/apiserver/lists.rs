//! How a list field merges: atomically, as a set, or as a map keyed by some fields. Strategic merge
//! patch and server-side apply both need it. Custom resources declare it in their schema
//! (`x-kubernetes-list-type`, `x-kubernetes-list-map-keys`); for built-in types the fake knows the
//! common keyed lists by field name (containers by name, conditions by type, …).

use serde_json::Value;

use super::resources::ResourceType;

/// One step from an object's root to a field: a map key, or "an element of this list".
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Seg {
    Field(String),
    Item,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ListType {
    Atomic,
    Set,
    Map(Vec<String>),
}

/// Keyed lists of built-in types, by field name, with their merge keys.
const BUILTIN_KEYED_LISTS: &[(&str, &[&str])] = &[
    ("containers", &["name"]),
    ("initContainers", &["name"]),
    ("ephemeralContainers", &["name"]),
    ("volumes", &["name"]),
    ("env", &["name"]),
    ("imagePullSecrets", &["name"]),
    ("volumeMounts", &["mountPath"]),
    ("volumeDevices", &["devicePath"]),
    ("conditions", &["type"]),
    ("ownerReferences", &["uid"]),
    ("hostAliases", &["ip"]),
    ("webhooks", &["name"]),
    ("resourceClaims", &["name"]),
    (
        "topologySpreadConstraints",
        &["topologyKey", "whenUnsatisfiable"],
    ),
];

/// Resolves the list type of a field for one resource type.
pub(crate) struct ListTypes<'a> {
    schema: Option<&'a Value>,
}

impl<'a> ListTypes<'a> {
    pub fn for_resource(resource: &'a ResourceType) -> Self {
        ListTypes {
            schema: if resource.crd.is_some() {
                resource.schema.as_ref()
            } else {
                None
            },
        }
    }

    /// Whether the type is a custom resource (its lists default to atomic).
    fn is_custom(&self) -> bool {
        self.schema.is_some()
    }

    pub fn list_type(&self, path: &[Seg], elements: &[&Value]) -> ListType {
        if path.len() == 2 && path.first() == Some(&Seg::Field("metadata".to_string())) {
            match path.get(1) {
                Some(Seg::Field(f)) if f == "finalizers" => return ListType::Set,
                Some(Seg::Field(f)) if f == "ownerReferences" => {
                    return ListType::Map(vec!["uid".to_string()])
                }
                _ => {}
            }
        }
        if self.is_custom() {
            return self.schema_list_type(path);
        }
        let Some(Seg::Field(field)) = path.last() else {
            return ListType::Atomic;
        };
        if field == "ports" {
            // Container ports are keyed by containerPort, service ports by port (each with protocol).
            let key = if elements.iter().any(|e| e.get("containerPort").is_some()) {
                "containerPort"
            } else {
                "port"
            };
            if elements.iter().all(|e| e.get(key).is_some()) {
                return ListType::Map(vec![key.to_string(), "protocol".to_string()]);
            }
            return ListType::Atomic;
        }
        match BUILTIN_KEYED_LISTS.iter().find(|(name, _)| name == field) {
            Some((_, keys)) => ListType::Map(keys.iter().map(|k| k.to_string()).collect()),
            None => ListType::Atomic,
        }
    }

    fn schema_list_type(&self, path: &[Seg]) -> ListType {
        let Some(mut schema) = self.schema else {
            return ListType::Atomic;
        };
        for seg in path {
            let next = match seg {
                Seg::Field(name) => schema
                    .get("properties")
                    .and_then(|p| p.get(name))
                    .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object())),
                Seg::Item => schema.get("items"),
            };
            match next {
                Some(s) => schema = s,
                None => return ListType::Atomic,
            }
        }
        match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("set") => ListType::Set,
            Some("map") => ListType::Map(
                schema
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|keys| {
                        keys.iter()
                            .filter_map(|k| k.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            _ => ListType::Atomic,
        }
    }
}

/// The identity of a list element under a list type, or `None` for atomic lists.
pub(crate) fn element_key(list_type: &ListType, element: &Value) -> Option<Value> {
    match list_type {
        ListType::Atomic => None,
        ListType::Set => Some(element.clone()),
        ListType::Map(keys) => {
            // A missing `protocol` defaults to TCP in Kubernetes; treat it so for identity.
            let parts: Vec<Value> = keys
                .iter()
                .map(|k| match element.get(k) {
                    Some(v) => v.clone(),
                    None if k == "protocol" => Value::String("TCP".to_string()),
                    None => Value::Null,
                })
                .collect();
            Some(Value::Array(parts))
        }
    }
}
