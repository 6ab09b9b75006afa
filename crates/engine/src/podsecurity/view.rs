//! A borrowed, read-only view of a pod (metadata + spec) as the checks see it.
//!
//! Kyverno runs the checks not only on the real pod but also on two synthetic pods when it
//! applies exclusions (one with a single placeholder container, one with only the containers
//! whose image matches). The view lets all three be expressed without cloning any JSON.

use crate::json::Lookup;
use serde_json::{Map, Value};

/// Stands in for an absent object.
pub(crate) static NULL: Value = Value::Null;

/// Which container list of the pod spec a container comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ListKind {
    Init,
    Regular,
    Ephemeral,
}

impl ListKind {
    /// The pod spec field holding this list.
    pub(crate) fn field(self) -> &'static str {
        match self {
            ListKind::Init => "initContainers",
            ListKind::Regular => "containers",
            ListKind::Ephemeral => "ephemeralContainers",
        }
    }

    pub(crate) fn from_field(field: &str) -> Option<ListKind> {
        match field {
            "initContainers" => Some(ListKind::Init),
            "containers" => Some(ListKind::Regular),
            "ephemeralContainers" => Some(ListKind::Ephemeral),
            _ => None,
        }
    }
}

/// One container together with its position in the (possibly synthetic) pod.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ContainerRef<'a> {
    pub kind: ListKind,
    pub index: usize,
    pub value: &'a Value,
}

impl<'a> ContainerRef<'a> {
    pub(crate) fn name(&self) -> &'a str {
        str_field(self.value, "name").unwrap_or("")
    }

    pub(crate) fn image(&self) -> &'a str {
        str_field(self.value, "image").unwrap_or("")
    }

    /// Field path of this container followed by `rest` (dot-separated, may be empty).
    pub(crate) fn path(&self, rest: &str) -> String {
        if rest.is_empty() {
            format!("spec.{}[{}]", self.kind.field(), self.index)
        } else {
            format!("spec.{}[{}].{}", self.kind.field(), self.index, rest)
        }
    }

    /// The container's `securityContext`, when set to an object.
    pub(crate) fn security_context(&self) -> Option<&'a Map<String, Value>> {
        obj_field(self.value, "securityContext")
    }
}

/// The pod as the checks read it.
#[derive(Debug)]
pub(crate) struct PodView<'a> {
    /// Pod metadata (only `annotations` is read).
    pub metadata: &'a Value,
    /// Pod spec; only pod-level fields are read from it, containers come from `containers`.
    pub spec: &'a Value,
    /// Containers in the order Kubernetes visits them: init, regular, ephemeral.
    pub containers: Vec<ContainerRef<'a>>,
}

impl<'a> PodView<'a> {
    /// The real pod.
    pub(crate) fn full(metadata: &'a Value, spec: &'a Value) -> Self {
        let mut containers = Vec::new();
        for kind in [ListKind::Init, ListKind::Regular, ListKind::Ephemeral] {
            if let Some(list) = spec.field(kind.field()).and_then(Value::as_array) {
                containers.extend(list.iter().enumerate().map(|(index, value)| ContainerRef {
                    kind,
                    index,
                    value,
                }));
            }
        }
        PodView {
            metadata,
            spec,
            containers,
        }
    }

    /// Kyverno's pod for a pod-level exclusion: the real pod with its containers replaced by
    /// one placeholder container (no init or ephemeral containers).
    pub(crate) fn with_placeholder_container(&self, placeholder: &'a Value) -> PodView<'a> {
        PodView {
            metadata: self.metadata,
            spec: self.spec,
            containers: vec![ContainerRef {
                kind: ListKind::Regular,
                index: 0,
                value: placeholder,
            }],
        }
    }

    /// Kyverno's pod for a container-level exclusion: no pod-level fields and no annotations,
    /// only the containers whose image matches, re-indexed within their lists.
    pub(crate) fn only_containers(&self, keep: impl Fn(&ContainerRef<'a>) -> bool) -> PodView<'a> {
        let mut containers = Vec::new();
        for kind in [ListKind::Init, ListKind::Regular, ListKind::Ephemeral] {
            let kept = self
                .containers
                .iter()
                .filter(|c| c.kind == kind && keep(c))
                .enumerate()
                .map(|(index, c)| ContainerRef {
                    kind,
                    index,
                    value: c.value,
                });
            containers.extend(kept);
        }
        PodView {
            metadata: &NULL,
            spec: &NULL,
            containers,
        }
    }

    /// Name of the container at `index` of list `kind`, if there is one.
    pub(crate) fn container_name(&self, kind: ListKind, index: usize) -> Option<&'a str> {
        self.containers
            .iter()
            .find(|c| c.kind == kind && c.index == index)
            .map(|c| c.name())
    }

    /// The pod-level `securityContext`, when set to an object.
    pub(crate) fn security_context(&self) -> Option<&'a Map<String, Value>> {
        obj_field(self.spec, "securityContext")
    }

    /// Pod annotations as (key, value) pairs sorted by key; non-string values are skipped.
    pub(crate) fn annotations(&self) -> Vec<(&'a str, &'a str)> {
        let mut out: Vec<(&str, &str)> = obj_field(self.metadata, "annotations")
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.as_str(), v)))
                    .collect()
            })
            .unwrap_or_default();
        out.sort_unstable();
        out
    }

    pub(crate) fn annotation(&self, key: &str) -> Option<&'a str> {
        obj_field(self.metadata, "annotations")
            .and_then(|m| m.field(key))
            .and_then(Value::as_str)
    }

    /// `spec.os.name == "windows"`: several restricted checks exempt such pods from v1.25.
    pub(crate) fn is_windows(&self) -> bool {
        obj_field(self.spec, "os").and_then(|os| map_str(os, "name")) == Some("windows")
    }

    /// `spec.hostUsers == false`: the pod runs in a user namespace.
    pub(crate) fn in_user_namespace(&self) -> bool {
        self.spec.field("hostUsers").and_then(Value::as_bool) == Some(false)
    }
}

/// `value[key]` when it is an object (a non-nil struct pointer in the Go types).
pub(crate) fn obj_field<'a>(value: &'a Value, key: &str) -> Option<&'a Map<String, Value>> {
    value.field(key).and_then(Value::as_object)
}

pub(crate) fn str_field<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.field(key).and_then(Value::as_str)
}

pub(crate) fn map_obj<'a>(
    map: &'a Map<String, Value>,
    key: &str,
) -> Option<&'a Map<String, Value>> {
    map.field(key).and_then(Value::as_object)
}

pub(crate) fn map_str<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    map.field(key).and_then(Value::as_str)
}

pub(crate) fn map_bool(map: &Map<String, Value>, key: &str) -> Option<bool> {
    map.field(key).and_then(Value::as_bool)
}

/// An integer field; JSON numbers written as `80.0` count as integers too.
pub(crate) fn map_int(map: &Map<String, Value>, key: &str) -> Option<i64> {
    let v = map.field(key)?;
    v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
            .map(|f| f as i64)
    })
}

/// A list of strings; entries that are not strings are skipped.
pub(crate) fn map_str_list<'a>(map: &'a Map<String, Value>, key: &str) -> Vec<&'a str> {
    map.field(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}
