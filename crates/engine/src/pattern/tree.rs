//! The compiled pattern tree: keys' anchors and scalar operators parsed once.

use serde_json::Value;

use super::anchor::{parse_anchor, AnchorKind};
use super::value::ScalarPattern;
use super::PatternError;
use crate::wildcard::has_wildcard;

/// Deepest pattern nesting accepted. Real policies stay far below; the limit keeps compiling and
/// evaluating (which recurse along the pattern) clear of the stack.
pub const MAX_DEPTH: usize = 100;

#[derive(Debug, Clone)]
pub enum Node {
    Map(MapNode),
    Array(ArrayNode),
    Scalar(ScalarPattern),
}

#[derive(Debug, Clone)]
pub struct MapNode {
    /// In the order they are evaluated: conditional, existence, equality and negation
    /// anchors, sorted by their written key; then global anchors, then keys whose value holds
    /// anchors, then the rest (in pattern order). One list, walked on every check.
    pub entries: Vec<Entry>,
    /// This is `metadata.labels` / `metadata.annotations`: keys with wildcards are matched
    /// against the resource's keys.
    pub wildcard_keys: bool,
}

#[derive(Debug, Clone)]
pub struct Entry {
    /// The key as written, anchor included.
    pub raw_key: String,
    /// The key looked up in the resource (anchor removed; `+(k)` stays as written, as in
    /// Kyverno's validate).
    pub key: String,
    /// `key` holds `*` or `?` (looked at only under `metadata.labels`/`annotations`).
    pub key_has_wildcard: bool,
    pub kind: EntryKind,
    pub node: Node,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Plain,
    /// A plain key whose value is `"*"`: the field must be present and not null.
    Present,
    Conditional,
    Equality,
    Existence,
    Negation,
    Global,
}

#[derive(Debug, Clone)]
pub enum ArrayNode {
    /// `[]`: never matches.
    Empty,
    /// First element is an object: every resource element is checked against it.
    OfMaps(Box<MapNode>),
    /// First element is a scalar: every resource element must match it (the rest are ignored).
    OfScalars(ScalarPattern),
    /// First element is a list: resource elements are checked position by position.
    Positional(Vec<Node>),
}

impl Node {
    pub fn compile(
        value: &Value,
        path: &mut Vec<String>,
        in_metadata_tag: bool,
    ) -> Result<Node, PatternError> {
        if path.len() > MAX_DEPTH {
            return Err(PatternError::new(
                path,
                format!("pattern is nested deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(match value {
            Value::Object(map) => Node::Map(MapNode::compile(map, path, in_metadata_tag)?),
            Value::Array(items) => Node::Array(ArrayNode::compile(items, path)?),
            scalar => Node::Scalar(ScalarPattern::compile(scalar).unwrap_or(ScalarPattern::Null)),
        })
    }

    /// Whether any key at or below this node carries an anchor.
    pub fn has_anchors(&self) -> bool {
        match self {
            Node::Scalar(_) => false,
            Node::Map(map) => map.has_anchors(),
            Node::Array(ArrayNode::OfMaps(map)) => map.has_anchors(),
            Node::Array(ArrayNode::Positional(items)) => items.iter().any(Node::has_anchors),
            Node::Array(ArrayNode::Empty | ArrayNode::OfScalars(_)) => false,
        }
    }
}

impl MapNode {
    fn compile(
        map: &serde_json::Map<String, Value>,
        path: &mut Vec<String>,
        wildcard_keys: bool,
    ) -> Result<MapNode, PatternError> {
        let mut anchors = Vec::new();
        let (mut globals, mut nested, mut plain) = (Vec::new(), Vec::new(), Vec::new());
        for (raw_key, value) in map {
            let anchor = parse_anchor(raw_key);
            let (kind, key) = match anchor {
                None => (EntryKind::Plain, raw_key.as_str()),
                Some(a) => match a.kind {
                    AnchorKind::Conditional => (EntryKind::Conditional, a.key),
                    AnchorKind::Equality => (EntryKind::Equality, a.key),
                    AnchorKind::Existence => (EntryKind::Existence, a.key),
                    AnchorKind::Negation => (EntryKind::Negation, a.key),
                    AnchorKind::Global => (EntryKind::Global, a.key),
                    AnchorKind::AddIfNotPresent => {
                        path.push(raw_key.clone());
                        let err = PatternError::new(
                            path,
                            "the add-if-not-present anchor +() is only valid in mutate rules",
                        );
                        path.pop();
                        return Err(err);
                    }
                },
            };
            path.push(raw_key.clone());
            if kind == EntryKind::Existence {
                match value {
                    Value::Array(items) if !items.is_empty() => {}
                    Value::Array(_) => {
                        let err = PatternError::new(
                            path,
                            "the existence anchor ^() needs at least one list element",
                        );
                        path.pop();
                        return Err(err);
                    }
                    _ => {
                        let err =
                            PatternError::new(path, "the existence anchor ^() must hold a list");
                        path.pop();
                        return Err(err);
                    }
                }
            }
            // Wildcard keys are expanded only directly under metadata.labels/annotations.
            let child_is_metadata_tag = wildcard_keys_parent(path)
                && (key == "labels" || key == "annotations")
                && value.is_object();
            let node = match (kind, value) {
                // Every element of an existence list must be found, so keep them all.
                (EntryKind::Existence, Value::Array(items)) => {
                    compile_all(items, path).map(|nodes| Node::Array(ArrayNode::Positional(nodes)))
                }
                _ => Node::compile(value, path, child_is_metadata_tag),
            };
            path.pop();
            let node = node?;
            let kind = match (kind, &node) {
                (EntryKind::Plain, Node::Scalar(scalar)) if scalar.is_star() => EntryKind::Present,
                _ => kind,
            };
            let entry = Entry {
                raw_key: raw_key.clone(),
                key: key.to_owned(),
                key_has_wildcard: has_wildcard(key),
                kind,
                node,
            };
            match kind {
                EntryKind::Conditional
                | EntryKind::Equality
                | EntryKind::Existence
                | EntryKind::Negation => {
                    anchors.push(entry);
                }
                EntryKind::Global => globals.push(entry),
                EntryKind::Plain if entry.node.has_anchors() => nested.push(entry),
                EntryKind::Plain | EntryKind::Present => plain.push(entry),
            }
        }
        anchors.sort_by(|a, b| a.raw_key.cmp(&b.raw_key));
        let mut entries = anchors;
        entries.append(&mut globals);
        entries.append(&mut nested);
        entries.append(&mut plain);
        Ok(MapNode {
            entries,
            wildcard_keys: wildcard_keys
                && map.values().all(Value::is_string)
                && map.keys().any(|k| has_wildcard(k)),
        })
    }

    fn has_anchors(&self) -> bool {
        self.entries.iter().any(|e| {
            !matches!(e.kind, EntryKind::Plain | EntryKind::Present) || e.node.has_anchors()
        })
    }
}

/// Whether the map at `path` (whose last segment is the key just pushed) is a `metadata` map.
fn wildcard_keys_parent(path: &[String]) -> bool {
    let len = path.len();
    len >= 2
        && path
            .get(len - 2)
            .is_some_and(|k| super::anchor::strip_anchor(k) == "metadata")
}

impl ArrayNode {
    fn compile(items: &[Value], path: &mut Vec<String>) -> Result<ArrayNode, PatternError> {
        let Some(first) = items.first() else {
            return Ok(ArrayNode::Empty);
        };
        Ok(match first {
            Value::Object(_) => {
                path.push("0".to_owned());
                let node = Node::compile(first, path, false);
                path.pop();
                let node = node?;
                check_rest(items, path)?;
                match node {
                    Node::Map(map) => ArrayNode::OfMaps(Box::new(map)),
                    _ => ArrayNode::Empty,
                }
            }
            Value::Array(_) => ArrayNode::Positional(compile_all(items, path)?),
            scalar => {
                check_rest(items, path)?;
                ArrayNode::OfScalars(ScalarPattern::compile(scalar).unwrap_or(ScalarPattern::Null))
            }
        })
    }
}

fn compile_all(items: &[Value], path: &mut Vec<String>) -> Result<Vec<Node>, PatternError> {
    let mut nodes = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        path.push(i.to_string());
        let node = Node::compile(item, path, false);
        path.pop();
        nodes.push(node?);
    }
    Ok(nodes)
}

/// Only the first element of such a list is used, but the others must still be valid patterns.
fn check_rest(items: &[Value], path: &mut Vec<String>) -> Result<(), PatternError> {
    for (i, item) in items.iter().enumerate().skip(1) {
        path.push(i.to_string());
        let node = Node::compile(item, path, false);
        path.pop();
        node?;
    }
    Ok(())
}
