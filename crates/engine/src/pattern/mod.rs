//! Kyverno `validate.pattern` matching over plain JSON values.
//!
//! A pattern is an overlay of the resource: every field it names must match. Keys may carry
//! anchors (`(k)` conditional, `=(k)` equality, `^(k)` existence, `X(k)` negation, `<(k)` global),
//! string values may use operators (`!`, `|`, `&`, `>`, `<`, `>=`, `<=`, `a-b`, `a!-b`),
//! wildcards (`*`, `?`), quantities (`1Gi`, `100m`) and durations (`1h30m`), and `$(./path)`
//! references to other pattern fields. [`Pattern::compile`] parses all of that once;
//! [`Pattern::validate`] then checks resources without re-parsing.
//!
//! The result is [`PatternOutcome`]: `Pass`, `Fail` (with Kyverno's path form
//! `/spec/containers/0/image/`) or `Skip` (a conditional or global anchor did not hold, so the
//! rule does not apply). [`PatternError`] is reserved for patterns Kyverno would reject.

mod anchor;
mod eval;
mod reference;
mod tree;
mod value;

#[cfg(test)]
mod tests;

use serde_json::Value;

pub use crate::wildcard::{has_wildcard, wildcard_match};
pub use anchor::{parse_anchor, Anchor, AnchorKind};
pub use tree::MAX_DEPTH;
pub(crate) use value::{split_range, ScalarPattern};

/// A pattern that cannot be used: unsupported anchor, malformed existence anchor, unresolvable
/// `$(...)` reference, or nesting deeper than [`MAX_DEPTH`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct PatternError {
    /// Where in the pattern, e.g. `spec.containers[0].^(ports)`.
    pub path: String,
    pub reason: String,
}

impl PatternError {
    fn new(path: &[String], reason: impl Into<String>) -> PatternError {
        PatternError {
            path: dotted_path(path),
            reason: reason.into(),
        }
    }
}

/// `["spec", "containers", "0", "image"]` → `spec.containers[0].image`.
fn dotted_path(path: &[String]) -> String {
    let mut out = String::new();
    for segment in path {
        if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            out.push('[');
            out.push_str(segment);
            out.push(']');
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(segment);
        }
    }
    if out.is_empty() {
        out.push_str("pattern");
    }
    out
}

/// The result of checking a resource against a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternOutcome {
    Pass,
    /// The resource does not match. `path` is in Kyverno's form
    /// (`/spec/containers/0/securityContext/privileged/`), `detail` says what was found and
    /// wanted.
    Fail {
        path: String,
        detail: String,
    },
    /// A conditional or global anchor did not hold: the rule does not apply to this resource.
    Skip {
        path: String,
        detail: String,
    },
}

/// A compiled validation pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    root: tree::Node,
}

impl Pattern {
    /// Parses anchors, operators and references once. Odd strings are literals, as in Kyverno;
    /// only patterns Kyverno rejects are errors.
    pub fn compile(pattern: &Value) -> Result<Pattern, PatternError> {
        // Check the depth before anything recursive touches the pattern.
        check_depth(pattern)?;
        let resolved =
            reference::resolve_references(pattern).map_err(|(path, reason)| PatternError {
                path: if path.is_empty() {
                    "pattern".to_owned()
                } else {
                    path
                },
                reason,
            })?;
        let root = tree::Node::compile(&resolved, &mut Vec::new(), false)?;
        Ok(Pattern { root })
    }

    /// Checks `resource` against the pattern.
    pub fn validate(&self, resource: &Value) -> PatternOutcome {
        match eval::check(&self.root, Some(resource), &eval::Path::root()) {
            Ok(()) => PatternOutcome::Pass,
            Err(mismatch) => match *mismatch {
                eval::Mismatch::Fail { path, detail } => PatternOutcome::Fail { path, detail },
                eval::Mismatch::Skip { path, detail, .. } => PatternOutcome::Skip { path, detail },
            },
        }
    }
}

/// Compiles `pattern` and checks `resource` against it.
pub fn validate_pattern(resource: &Value, pattern: &Value) -> Result<PatternOutcome, PatternError> {
    Ok(Pattern::compile(pattern)?.validate(resource))
}

/// Rejects patterns nested deeper than [`MAX_DEPTH`] without recursing.
fn check_depth(pattern: &Value) -> Result<(), PatternError> {
    let mut stack: Vec<(&Value, usize)> = vec![(pattern, 0)];
    while let Some((value, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Err(PatternError {
                path: "pattern".to_owned(),
                reason: format!("pattern is nested deeper than {MAX_DEPTH} levels"),
            });
        }
        match value {
            Value::Object(map) => stack.extend(map.values().map(|v| (v, depth + 1))),
            Value::Array(items) => stack.extend(items.iter().map(|v| (v, depth + 1))),
            _ => {}
        }
    }
    Ok(())
}
