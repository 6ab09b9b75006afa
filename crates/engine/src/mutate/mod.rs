//! Kyverno `mutate` rules over plain JSON values.
//!
//! Primitives:
//! - [`strategic_merge`]: `patchStrategicMerge` — anchors (`(k)`, `<(k)`, `+(k)`, anchors on list
//!   elements) are resolved against the resource first, then the patch is merged with the
//!   semantics of kustomize's kyaml (which Kyverno uses): built-in kinds merge their keyed lists
//!   (containers by `name`, ports by `containerPort`/`protocol`, …), custom resources replace
//!   lists, `$patch: replace | delete | merge` directives apply to maps.
//! - [`json6902`]: `patchesJson6902` with Kyverno's patch options.
//! - [`diff`]: the RFC 6902 patch between two documents, for the admission response.
//!
//! Rule level ([`mutate_rule`], [`mutate_existing`]): variable substitution, `foreach` (with
//! `order`, nested lists, per-element context and preconditions) and `targets`, reporting
//! pass/skip/error the way Kyverno does. What the surrounding engine provides (variables,
//! context entries, preconditions) comes through [`MutateEnv`].

mod diff;
mod jsonpatch;
mod merge;
mod preprocess;
mod rule;
mod schema;

#[cfg(test)]
mod tests;

use serde_json::Value;

pub use diff::{diff, escape_token, PatchOp, PatchOperation};
pub(crate) use rule::SavedKeys;
pub use rule::{
    mutate_existing, mutate_rule, set_request_object, success_message, MutateEnv, MutateOutcome,
    MutateStatus, ProviderEnv, StandardEnv, TargetOutcome,
};

/// Deepest nesting of resources and overlays the mutate code walks.
pub const MAX_DEPTH: usize = 128;

/// A patch that cannot be applied: where (a JSON pointer into the resource or patch) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.path, .reason))]
pub struct MutateError {
    /// JSON pointer, e.g. `/spec/containers`; empty for the whole document.
    pub path: String,
    pub reason: String,
}

fn render(path: &str, reason: &str) -> String {
    if path.is_empty() {
        reason.to_owned()
    } else {
        format!("{reason} (at {path})")
    }
}

impl MutateError {
    pub(crate) fn new(path: &[String], reason: impl Into<String>) -> Self {
        MutateError {
            path: pointer(path),
            reason: reason.into(),
        }
    }
}

/// `["spec", "a/b"]` → `/spec/a~1b`.
pub(crate) fn pointer(path: &[String]) -> String {
    path.iter()
        .map(|token| format!("/{}", escape_token(token)))
        .collect()
}

/// Rejects documents nested deeper than [`MAX_DEPTH`] (a node below that depth) without
/// recursing. Only objects and arrays are stacked: a scalar is too deep exactly when the
/// non-empty container holding it is at the limit.
fn check_depth(value: &Value, what: &str) -> Result<(), MutateError> {
    fn is_container(value: &&Value) -> bool {
        matches!(value, Value::Object(_) | Value::Array(_))
    }
    let mut stack: Vec<(&Value, usize)> = vec![(value, 0)];
    while let Some((value, depth)) = stack.pop() {
        let has_children = match value {
            Value::Object(map) => !map.is_empty(),
            Value::Array(items) => !items.is_empty(),
            _ => false,
        };
        if has_children && depth + 1 > MAX_DEPTH {
            return Err(MutateError {
                path: String::new(),
                reason: format!("{what} is nested deeper than {MAX_DEPTH} levels"),
            });
        }
        match value {
            Value::Object(map) => {
                stack.extend(map.values().filter(is_container).map(|v| (v, depth + 1)));
            }
            Value::Array(items) => {
                stack.extend(items.iter().filter(is_container).map(|v| (v, depth + 1)));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Applies a `patchStrategicMerge` overlay (variables already substituted) to `resource`.
/// When a conditional or global anchor does not hold, the resource comes back unchanged.
pub fn strategic_merge(resource: &Value, overlay: &Value) -> Result<Value, MutateError> {
    check_depth(resource, "resource")?;
    check_depth(overlay, "patchStrategicMerge")?;
    let patch = preprocess::preprocess(overlay, resource)?;
    merge::merge_document(resource, &patch)
}

/// [`strategic_merge`] into a resource the caller gives up (nothing of it is kept on error).
pub(crate) fn strategic_merge_into(resource: Value, overlay: &Value) -> Result<Value, MutateError> {
    check_depth(&resource, "resource")?;
    check_depth(overlay, "patchStrategicMerge")?;
    let patch = preprocess::preprocess(overlay, &resource)?;
    merge::merge_into(resource, &patch)
}

/// [`json6902`] on a resource the caller gives up (nothing of it is kept on error).
pub(crate) fn json6902_into(resource: Value, patches: &str) -> Result<Value, MutateError> {
    check_depth(&resource, "resource")?;
    jsonpatch::apply_to(resource, patches)
}

/// Applies a `patchesJson6902` text (YAML or JSON list of operations, variables already
/// substituted) to `resource`.
pub fn json6902(resource: &Value, patches: &str) -> Result<Value, MutateError> {
    check_depth(resource, "resource")?;
    jsonpatch::apply(resource, patches)
}
