//! What the engine evaluates: one resource operation, with who asked and where it lives.

use crate::json::Lookup;
use std::collections::BTreeMap;

use serde_json::Value;

/// The admission operation a rule is evaluated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

impl Operation {
    /// The wire spelling used by Kubernetes and in Kyverno's `request.operation`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }

    /// Parses the wire spelling (case-insensitive, as values files are written by hand).
    pub fn parse(text: &str) -> Option<Operation> {
        match text.to_ascii_uppercase().as_str() {
            "CREATE" => Some(Operation::Create),
            "UPDATE" => Some(Operation::Update),
            "DELETE" => Some(Operation::Delete),
            "CONNECT" => Some(Operation::Connect),
            _ => None,
        }
    }
}

/// Group, version and kind of the resource under evaluation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct GroupVersionKind {
    pub group: String,
    pub version: String,
    pub kind: String,
}

impl GroupVersionKind {
    /// Reads `apiVersion` and `kind` of an object (`apps/v1` → group `apps`, version `v1`).
    pub fn of(object: &Value) -> GroupVersionKind {
        let api_version = object
            .field("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let kind = object
            .field("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let (group, version) = match api_version.split_once('/') {
            Some((group, version)) => (group, version),
            None => ("", api_version),
        };
        GroupVersionKind {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
        }
    }
}

/// The requesting user as the API server describes it, plus the RBAC roles bound to them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserInfo {
    pub username: String,
    pub uid: String,
    pub groups: Vec<String>,
    /// Namespaced roles as `namespace:name`.
    pub roles: Vec<String>,
    pub cluster_roles: Vec<String>,
}

impl UserInfo {
    /// True when nothing is known about the user (offline evaluation without a userinfo file).
    pub fn is_empty(&self) -> bool {
        self.username.is_empty()
            && self.uid.is_empty()
            && self.groups.is_empty()
            && self.roles.is_empty()
            && self.cluster_roles.is_empty()
    }
}

/// One resource operation to evaluate policies against.
#[derive(Debug, Clone)]
pub struct Request {
    pub operation: Operation,
    /// The new object; `Value::Null` for DELETE.
    pub object: Value,
    /// The previous object for UPDATE and DELETE.
    pub old_object: Option<Value>,
    pub kind: GroupVersionKind,
    /// `exec`, `status`, `ephemeralcontainers`, …; empty for the main resource.
    pub subresource: String,
    pub user: UserInfo,
    /// Labels of the resource's namespace, for `namespaceSelector`; `None` when unknown.
    pub namespace_labels: Option<BTreeMap<String, String>>,
    pub dry_run: bool,
}

impl Request {
    /// A CREATE of `object` by an unknown user: what `bylaw apply` and background scans evaluate.
    pub fn create(object: Value) -> Request {
        let kind = GroupVersionKind::of(&object);
        Request {
            operation: Operation::Create,
            object,
            old_object: None,
            kind,
            subresource: String::new(),
            user: UserInfo::default(),
            namespace_labels: None,
            dry_run: false,
        }
    }

    /// The object rules look at: the new object, or the old one for DELETE.
    pub fn resource(&self) -> &Value {
        match (&self.operation, &self.old_object) {
            (Operation::Delete, Some(old)) => old,
            _ => &self.object,
        }
    }

    pub fn name(&self) -> &str {
        metadata_str(self.resource(), "name")
    }

    pub fn namespace(&self) -> &str {
        metadata_str(self.resource(), "namespace")
    }
}

/// A string field of `metadata`, or "" when absent.
pub fn metadata_str<'a>(object: &'a Value, field: &str) -> &'a str {
    object
        .field("metadata")
        .and_then(|m| m.field(field))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// A string map of `metadata` (labels or annotations); non-string values are skipped.
pub fn metadata_map(object: &Value, field: &str) -> BTreeMap<String, String> {
    object
        .field("metadata")
        .and_then(|m| m.field(field))
        .and_then(Value::as_object)
        .map(|map| {
            map.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}
