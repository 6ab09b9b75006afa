//! The labels that tie a generated (downstream) object to the policy, rule and trigger that
//! produced it, and to its clone source. The keys are Kyverno's, so downstream objects created
//! by Kyverno are recognised after a migration; only `app.kubernetes.io/managed-by` says
//! `bylaw`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::ResourceRef;
use crate::request::metadata_str;

/// `app.kubernetes.io/managed-by`.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The value bylaw writes under [`MANAGED_BY`].
pub const MANAGED_BY_BYLAW: &str = "bylaw";
/// Name of the generating policy.
pub const POLICY_NAME: &str = "generate.kyverno.io/policy-name";
/// Namespace of the generating policy (empty for a ClusterPolicy).
pub const POLICY_NAMESPACE: &str = "generate.kyverno.io/policy-namespace";
/// Name of the generating rule.
pub const RULE_NAME: &str = "generate.kyverno.io/rule-name";
/// API group of the trigger (empty for the core group).
pub const TRIGGER_GROUP: &str = "generate.kyverno.io/trigger-group";
/// API version of the trigger (`v1`).
pub const TRIGGER_VERSION: &str = "generate.kyverno.io/trigger-version";
/// Kind of the trigger.
pub const TRIGGER_KIND: &str = "generate.kyverno.io/trigger-kind";
/// Namespace of the trigger (empty when cluster-scoped).
pub const TRIGGER_NAMESPACE: &str = "generate.kyverno.io/trigger-namespace";
/// UID of the trigger.
pub const TRIGGER_UID: &str = "generate.kyverno.io/trigger-uid";
/// API group of a clone source.
pub const SOURCE_GROUP: &str = "generate.kyverno.io/source-group";
/// API version of a clone source.
pub const SOURCE_VERSION: &str = "generate.kyverno.io/source-version";
/// Kind of a clone source.
pub const SOURCE_KIND: &str = "generate.kyverno.io/source-kind";
/// Namespace of a clone source.
pub const SOURCE_NAMESPACE: &str = "generate.kyverno.io/source-namespace";
/// UID of a clone source.
pub const SOURCE_UID: &str = "generate.kyverno.io/source-uid";
/// Put (empty) on a clone source so that its changes can be traced to downstream objects.
pub const CLONE_SOURCE: &str = "generate.kyverno.io/clone-source";
/// Every key above except `managed-by` starts with this prefix.
pub const PREFIX: &str = "generate.kyverno.io/";

/// `apps/v1` → (`apps`, `v1`); `v1` → (``, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

/// The labels that identify the downstream objects of one rule for one trigger: what a
/// controller selects on to find (and delete) them.
pub fn downstream_selector(
    policy_name: &str,
    policy_namespace: &str,
    rule_name: &str,
    trigger: &Value,
) -> BTreeMap<String, String> {
    let text = |key: &str| trigger.get(key).and_then(Value::as_str).unwrap_or_default();
    let (group, version) = split_api_version(text("apiVersion"));
    [
        (MANAGED_BY, MANAGED_BY_BYLAW),
        (POLICY_NAME, policy_name),
        (POLICY_NAMESPACE, policy_namespace),
        (RULE_NAME, rule_name),
        (TRIGGER_GROUP, group),
        (TRIGGER_VERSION, version),
        (TRIGGER_KIND, text("kind")),
        (TRIGGER_NAMESPACE, metadata_str(trigger, "namespace")),
        (TRIGGER_UID, metadata_str(trigger, "uid")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// The labels a clone copy carries about its source.
pub fn source_labels(source: &ResourceRef, uid: &str) -> BTreeMap<String, String> {
    let (group, version) = split_api_version(&source.api_version);
    [
        (SOURCE_GROUP, group),
        (SOURCE_VERSION, version),
        (SOURCE_KIND, source.kind.as_str()),
        (SOURCE_NAMESPACE, source.namespace.as_str()),
        (SOURCE_UID, uid),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Adds `labels` to `metadata.labels` of `object`, overwriting keys it already has.
pub fn add_labels(object: &mut Value, labels: &BTreeMap<String, String>) {
    let Value::Object(root) = object else {
        return;
    };
    let metadata = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !metadata.is_object() {
        *metadata = Value::Object(Map::new());
    }
    let Value::Object(metadata) = metadata else {
        return;
    };
    let existing = metadata
        .entry("labels")
        .or_insert_with(|| Value::Object(Map::new()));
    if !existing.is_object() {
        *existing = Value::Object(Map::new());
    }
    if let Value::Object(existing) = existing {
        for (key, value) in labels {
            existing.insert(key.clone(), Value::String(value.clone()));
        }
    }
}

/// Removes what generation added to the labels of `object` (every `generate.kyverno.io/`
/// key and `app.kubernetes.io/managed-by`), dropping `labels` when nothing else is left — the
/// view in which a generated object is compared with an expected one, as Kyverno's CLI does.
pub fn strip_generate_labels(object: &mut Value) {
    let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let empty = match metadata.get_mut("labels").and_then(Value::as_object_mut) {
        Some(labels) => {
            labels.retain(|key, _| key != MANAGED_BY && !key.starts_with(PREFIX));
            labels.is_empty()
        }
        None => false,
    };
    if empty {
        metadata.shift_remove("labels");
    }
}
