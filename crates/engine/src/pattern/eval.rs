//! Evaluates a compiled pattern against a resource, following Kyverno's rules for anchors,
//! skips and failures.
//!
//! Outcome rules, per object in the pattern:
//! 1. Anchors `()`, `^()`, `=()`, `X()` run first (sorted by written key), then global anchors
//!    `<()`, then keys whose value holds anchors, then the remaining keys.
//! 2. A conditional `()` or global `<()` anchor whose value does not match (or, for `()`, whose
//!    key is missing) skips this object at once. A global skip keeps going up through every
//!    enclosing object: the whole rule is skipped.
//! 3. A conditional skip coming up from below (e.g. every element of a list skipped) is
//!    remembered; a failure anywhere ends the check as a failure. If something skipped and
//!    nothing else in the object matched, the object is skipped; otherwise it passes.
//! 4. In a list of objects each element is checked (a global skip only skips its element); the
//!    list fails on the first failing element and is skipped only if every element was skipped.

use crate::json::Lookup;
use serde_json::{Map, Value};

use super::tree::{ArrayNode, Entry, EntryKind, MapNode, Node};
use super::value::{describe_value, ScalarPattern};
use crate::wildcard::wildcard_match;

/// Why a pattern did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    Fail {
        path: String,
        detail: String,
    },
    /// `global`: raised by a `<()` anchor, which skips the rule from anywhere outside a list.
    Skip {
        path: String,
        detail: String,
        global: bool,
    },
}

/// The result of checking one part of a resource. A mismatch is boxed so that the result is a
/// single word: it is returned and passed on at every level of the walk, and nearly every
/// check passes.
pub type Checked = Result<(), Box<Mismatch>>;

/// A position in the resource, rendered only when a mismatch is reported.
#[derive(Clone, Copy)]
pub struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    segment: Segment<'a>,
}

#[derive(Clone, Copy)]
enum Segment<'a> {
    Root,
    Key(&'a str),
    Index(usize),
}

impl<'a> Path<'a> {
    pub fn root() -> Path<'static> {
        Path {
            parent: None,
            segment: Segment::Root,
        }
    }

    fn key(&'a self, key: &'a str) -> Path<'a> {
        Path {
            parent: Some(self),
            segment: Segment::Key(key),
        }
    }

    fn index(&'a self, index: usize) -> Path<'a> {
        Path {
            parent: Some(self),
            segment: Segment::Index(index),
        }
    }

    /// Kyverno's form: `/spec/containers/0/image/`.
    fn render(&self) -> String {
        let mut parts = Vec::new();
        let mut node = Some(self);
        while let Some(p) = node {
            match p.segment {
                Segment::Root => {}
                Segment::Key(k) => parts.push(k.to_owned()),
                Segment::Index(i) => parts.push(i.to_string()),
            }
            node = p.parent;
        }
        parts.reverse();
        let mut out = String::from("/");
        for part in parts {
            out.push_str(&part);
            out.push('/');
        }
        out
    }
}

#[cold]
fn fail(path: &Path<'_>, detail: String) -> Box<Mismatch> {
    Box::new(Mismatch::Fail {
        path: path.render(),
        detail,
    })
}

/// Checks `value` (`None` when absent) against `node`.
pub fn check(node: &Node, value: Option<&Value>, path: &Path<'_>) -> Checked {
    match node {
        Node::Map(map) => match value {
            Some(Value::Object(object)) => check_map(map, object, path),
            other => Err(fail(
                path,
                format!("got {}, want an object", describe_value(other)),
            )),
        },
        Node::Array(array) => match value {
            Some(Value::Array(items)) => check_array(array, items, path),
            other => Err(fail(
                path,
                format!("got {}, want a list", describe_value(other)),
            )),
        },
        Node::Scalar(scalar) => check_scalar(scalar, value, path),
    }
}

fn check_scalar(scalar: &ScalarPattern, value: Option<&Value>, path: &Path<'_>) -> Checked {
    // A scalar pattern against a list applies to every element (an empty list passes).
    if let Some(Value::Array(items)) = value {
        return match items.iter().position(|item| !scalar.matches(Some(item))) {
            None => Ok(()),
            Some(i) => Err(fail(
                path,
                format!(
                    "element {i}: got {}, want {}",
                    describe_value(items.get(i)),
                    scalar.describe()
                ),
            )),
        };
    }
    if scalar.matches(value) {
        Ok(())
    } else {
        Err(fail(
            path,
            format!("got {}, want {}", describe_value(value), scalar.describe()),
        ))
    }
}

/// Tracks what happened to the parts of one object or list.
#[derive(Default)]
struct Tally {
    matched: usize,
    skipped: Option<Box<Mismatch>>,
    any_global: bool,
}

impl Tally {
    /// Records a nested result of an object's field; failures and global skips are returned
    /// to end the check.
    fn record(&mut self, result: Checked) -> Checked {
        match result {
            Err(skip) if matches!(*skip, Mismatch::Skip { global: true, .. }) => Err(skip),
            other => self.record_element(other),
        }
    }

    /// Records a nested result of a list element: any skip only skips that element.
    fn record_element(&mut self, result: Checked) -> Checked {
        match result {
            Ok(()) => {
                self.matched += 1;
                Ok(())
            }
            Err(skip) if matches!(*skip, Mismatch::Skip { .. }) => {
                self.any_global |= matches!(*skip, Mismatch::Skip { global: true, .. });
                self.skipped.get_or_insert(skip);
                Ok(())
            }
            Err(failure) => Err(failure),
        }
    }

    fn finish(self) -> Checked {
        match self.skipped {
            Some(mut skip) if self.matched == 0 => {
                if let Mismatch::Skip { global, .. } = &mut *skip {
                    *global = self.any_global;
                }
                Err(skip)
            }
            _ => Ok(()),
        }
    }
}

fn check_map(map: &MapNode, object: &Map<String, Value>, path: &Path<'_>) -> Checked {
    // Kyverno cannot expand wildcard keys when a value is not a string.
    let expand = map.wildcard_keys && object.values().all(Value::is_string);
    let mut tally = Tally::default();
    for entry in &map.entries {
        let key = if expand && entry.key_has_wildcard {
            resolve_wildcard_key(entry, object)
        } else {
            entry.key.as_str()
        };
        let here = path.key(key);
        let value = object.field(key);
        match entry.kind {
            EntryKind::Conditional => {
                let result = match value {
                    None => Err(fail(&here, "field is missing".to_owned())),
                    Some(v) => check(&entry.node, Some(v), &here),
                };
                match result {
                    Ok(()) => tally.matched += 1,
                    Err(inner) => return Err(into_skip(inner, &entry.raw_key, false)),
                }
            }
            EntryKind::Global => match value {
                None => tally.matched += 1,
                Some(v) => match check(&entry.node, Some(v), &here) {
                    Ok(()) => tally.matched += 1,
                    Err(inner) => return Err(into_skip(inner, &entry.raw_key, true)),
                },
            },
            EntryKind::Equality => match value {
                None => tally.matched += 1,
                Some(v) => tally.record(check(&entry.node, Some(v), &here))?,
            },
            EntryKind::Negation => {
                if value.is_some() {
                    return Err(fail(
                        &here,
                        format!("field is not allowed ({})", entry.raw_key),
                    ));
                }
                tally.matched += 1;
            }
            EntryKind::Existence => match value {
                None => tally.matched += 1,
                Some(v) => {
                    check_existence(&entry.node, v, &here)?;
                    tally.matched += 1;
                }
            },
            // "*" only requires the field to be present and not null.
            EntryKind::Present => match value {
                Some(v) if !v.is_null() => tally.matched += 1,
                _ => return Err(fail(path, format!("field {key} is required (want \"*\")"))),
            },
            EntryKind::Plain => tally.record(check(&entry.node, value, &here))?,
        }
    }
    tally.finish()
}

/// Under `metadata.labels` / `metadata.annotations`, a key with wildcards stands for the first
/// resource key it matches (or itself when none does).
fn resolve_wildcard_key<'a>(entry: &'a Entry, object: &'a Map<String, Value>) -> &'a str {
    object
        .keys()
        .find(|k| wildcard_match(&entry.key, k))
        .map_or(entry.key.as_str(), String::as_str)
}

fn into_skip(mut inner: Box<Mismatch>, anchor: &str, global: bool) -> Box<Mismatch> {
    let (Mismatch::Fail { path, detail } | Mismatch::Skip { path, detail, .. }) = &mut *inner;
    let (path, detail) = (std::mem::take(path), std::mem::take(detail));
    *inner = Mismatch::Skip {
        path,
        detail: format!("{anchor} not satisfied: {detail}"),
        global,
    };
    inner
}

/// `^(key)`: each pattern element must be matched by at least one resource element.
fn check_existence(node: &Node, value: &Value, path: &Path<'_>) -> Checked {
    let Value::Array(items) = value else {
        return Err(fail(
            path,
            format!(
                "got {}, but ^() only applies to lists",
                describe_value(Some(value))
            ),
        ));
    };
    let Node::Array(ArrayNode::Positional(wanted)) = node else {
        return Err(fail(path, "^() pattern must be a list".to_owned()));
    };
    for (i, want) in wanted.iter().enumerate() {
        if !matches!(want, Node::Map(_)) {
            return Err(fail(
                path,
                format!("^() pattern element {i} must be an object"),
            ));
        }
        let found = items
            .iter()
            .enumerate()
            .any(|(j, item)| check(want, Some(item), &path.index(j)).is_ok());
        if !found {
            return Err(fail(path, "no element matches the ^() pattern".to_owned()));
        }
    }
    Ok(())
}

fn check_array(array: &ArrayNode, items: &[Value], path: &Path<'_>) -> Checked {
    match array {
        ArrayNode::Empty => Err(fail(path, "the pattern list is empty".to_owned())),
        ArrayNode::OfScalars(scalar) => {
            match items.iter().position(|item| !scalar.matches(Some(item))) {
                None => Ok(()),
                Some(i) => Err(fail(
                    path,
                    format!(
                        "element {i}: got {}, want {}",
                        describe_value(items.get(i)),
                        scalar.describe()
                    ),
                )),
            }
        }
        ArrayNode::OfMaps(map) => {
            let mut tally = Tally::default();
            for (i, item) in items.iter().enumerate() {
                // Long lists of objects are where a pattern walk spends its time.
                if let Err(expired) = crate::deadline::check_after_work() {
                    return Err(fail(path, expired));
                }
                let here = path.index(i);
                let result = match item {
                    Value::Object(object) => check_map(map, object, &here),
                    other => Err(fail(
                        &here,
                        format!("got {}, want an object", describe_value(Some(other))),
                    )),
                };
                tally.record_element(result)?;
            }
            tally.finish().map_err(|skip| as_list_skip(skip, path))
        }
        ArrayNode::Positional(nodes) => {
            if items.len() < nodes.len() {
                return Err(fail(
                    path,
                    format!(
                        "got a list of {} item(s), want at least {}",
                        items.len(),
                        nodes.len()
                    ),
                ));
            }
            let mut tally = Tally::default();
            for (i, (node, item)) in nodes.iter().zip(items).enumerate() {
                tally.record_element(check(node, Some(item), &path.index(i)))?;
            }
            tally.finish().map_err(|skip| as_list_skip(skip, path))
        }
    }
}

/// Every element was skipped: report the list itself, keeping the first element's reason.
fn as_list_skip(mut skip: Box<Mismatch>, path: &Path<'_>) -> Box<Mismatch> {
    let (detail, global) = match &mut *skip {
        Mismatch::Skip { detail, global, .. } => (std::mem::take(detail), *global),
        Mismatch::Fail { detail, .. } => (std::mem::take(detail), false),
    };
    *skip = Mismatch::Skip {
        path: path.render(),
        detail,
        global,
    };
    skip
}
