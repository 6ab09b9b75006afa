//! The expressions most policies write, answered without the interpreter: a path of fields
//! (`element.securityContext.runAsUser`), the same path flattened and projected
//! (`…capabilities.drop[]`, `request.object.spec.[initContainers, containers][].ports[].hostPort`),
//! literals, and alternatives joined by `||` (`request.operation || 'BACKGROUND'`).
//!
//! The interpreter moves a 72-byte result through a dispatch per node and collects a flattened
//! list twice (the flatten, then its projection); here a path is a loop over field names and
//! each flatten-and-project one pass over borrowed values. The answers are the interpreter's,
//! errors included. What this evaluator does not take on it hands back (`None`): a result that
//! is a scope, and any search that could do enough work to meet the interpreter's step limit or
//! its first look at the clock, so that limits and deadlines fall exactly where they do there.
//! Foreach lists are answered here too, borrowed as the interpreter borrows them.

use std::borrow::Cow;

use serde_json::Value;

use super::interp::copy_cost;
use super::parser::Ast;
use super::{JmespathError, Member, Scope};
use crate::json::Lookup;

/// Longest path, most `[]` stages and deepest nesting of `||` taken on: together they keep
/// the depth the interpreter would reach (about `MAX_NESTING + 2 × MAX_STAGES + 2 × MAX_PATH`)
/// under its limit of 64, so that no expression answered here is one it refuses as too deep.
const MAX_PATH: usize = 16;
const MAX_STAGES: usize = 8;
const MAX_NESTING: usize = 8;

/// Units of work below which the interpreter neither reads the clock nor meets its step limit
/// (its clock is read after 1024 units at the earliest).
const MAX_UNITS: usize = 1000;

/// An expression of one of the shapes above.
#[derive(Debug)]
pub(crate) enum Simple {
    /// `a.b.c`: the first name is looked up at the root.
    Path(Vec<String>),
    /// Flattens and projections of a path, as in `a.b[].c[].d`.
    Pipeline(Pipeline),
    Literal(Value),
    Or(Box<Simple>, Box<Simple>),
}

impl Simple {
    /// Whether every path the expression follows starts at the top-level name `root`
    /// (literals read nothing).
    pub(crate) fn reads_only(&self, root: &str) -> bool {
        match self {
            Simple::Path(names) | Simple::Pipeline(Pipeline { start: names, .. }) => {
                names.first().is_some_and(|first| first == root)
            }
            Simple::Literal(_) => true,
            Simple::Or(lhs, rhs) => lhs.reads_only(root) && rhs.reads_only(root),
        }
    }

    /// The simple form of `ast`, if it has one.
    pub(crate) fn of(ast: Ast) -> Option<Simple> {
        Self::within(ast, 0)
    }

    fn within(ast: Ast, nesting: usize) -> Option<Simple> {
        if nesting > MAX_NESTING {
            return None;
        }
        Some(match ast {
            Ast::Literal(value) => Simple::Literal(value),
            Ast::Or(lhs, rhs) => Simple::Or(
                Box::new(Self::within(*lhs, nesting + 1)?),
                Box::new(Self::within(*rhs, nesting + 1)?),
            ),
            projection @ Ast::Projection(..) => Simple::Pipeline(Pipeline::of(projection)?),
            other => Simple::Path(path(other)?),
        })
    }
}

/// The field names of `a.b.c`, parsed as `((a.b).c)`.
fn path(ast: Ast) -> Option<Vec<String>> {
    let mut names = Vec::new();
    let mut at = ast;
    loop {
        if names.len() >= MAX_PATH {
            return None;
        }
        match at {
            Ast::Field(name) => {
                names.push(name);
                break;
            }
            Ast::Subexpr(lhs, rhs) => match *rhs {
                Ast::Field(name) => {
                    names.push(name);
                    at = *lhs;
                }
                _ => return None,
            },
            _ => return None,
        }
    }
    names.reverse();
    Some(names)
}

/// `start.[fields…][].then[].then…`: a path, optionally a list of fields of what it leads to,
/// then one or more stages, each flattening the list before it one level and following a
/// (possibly empty) path from every element, nulls left out.
#[derive(Debug)]
pub(crate) struct Pipeline {
    start: Vec<String>,
    /// `.[x, y.z]`: paths from the value `start` leads to, missing ones null.
    fields: Option<Vec<Vec<String>>>,
    /// What each `[]` projects, in order; empty for `[]` at the end.
    stages: Vec<Vec<String>>,
}

impl Pipeline {
    fn of(ast: Ast) -> Option<Pipeline> {
        let mut stages = Vec::new();
        let mut at = ast;
        // `a[].b[].c` is `Projection(Flatten(Projection(Flatten(a), b)), c)`: peel from the outside.
        let source = loop {
            match at {
                Ast::Projection(lhs, rhs) => {
                    let Ast::Flatten(inner) = *lhs else {
                        return None;
                    };
                    if stages.len() == MAX_STAGES {
                        return None;
                    }
                    stages.push(match *rhs {
                        Ast::Identity => Vec::new(),
                        other => path(other)?,
                    });
                    at = *inner;
                }
                other => break other,
            }
        };
        stages.reverse();
        let (start, fields) = match source {
            Ast::Subexpr(lhs, rhs) => match *rhs {
                Ast::MultiList(items) if items.len() <= MAX_PATH => {
                    let fields = items.into_iter().map(path).collect::<Option<Vec<_>>>()?;
                    (path(*lhs)?, Some(fields))
                }
                rhs => (path(Ast::Subexpr(lhs, Box::new(rhs)))?, None),
            },
            other => (path(other)?, None),
        };
        Some(Pipeline {
            start,
            fields,
            stages,
        })
    }
}

static NULL: Value = Value::Null;

/// Where a path led.
#[derive(Clone, Copy)]
enum At<'a> {
    Value(&'a Value),
    /// `request` with names bound over it; only the interpreter turns one into a value.
    Scope(Scope<'a>),
}

/// A result: part of the document or the expression, or a flattened list of such parts.
enum Found<'a> {
    Value(&'a Value),
    List(Vec<&'a Value>),
    /// A flattened list that is an array of the document as it stands (`drop[]` over a list
    /// of strings): borrowed, but counted as the copy the interpreter makes of it.
    Flat(&'a Value),
}

impl Found<'_> {
    fn is_truthy(&self) -> bool {
        match self {
            Found::Value(value) => super::value::is_truthy(value),
            Found::List(items) => !items.is_empty(),
            Found::Flat(list) => super::value::is_truthy(list),
        }
    }
}

/// Why a search did not answer here: a field was missing (an error or a null, as the
/// interpreter's context decides), or the interpreter must answer.
enum Miss<'a> {
    NotFound(&'a str),
    Interpreter,
}

struct Search<'a> {
    root: At<'a>,
    /// Leading names of the first path followed that `root` already stands for (the
    /// `request.object` of a search from the request's object).
    skip: usize,
    /// An upper bound of the units the interpreter would count.
    units: usize,
}

fn root(data: Scope<'_>) -> At<'_> {
    if data.has_bindings() {
        At::Scope(data)
    } else {
        At::Value(data.document())
    }
}

fn not_found(key: &str) -> JmespathError {
    JmespathError::NotFound {
        key: key.to_owned(),
    }
}

/// Searches `data`; `None` when the interpreter must.
pub(crate) fn evaluate_ref<'a>(
    simple: &'a Simple,
    data: Scope<'a>,
) -> Option<Result<Cow<'a, Value>, JmespathError>> {
    let mut search = Search {
        root: root(data),
        skip: 0,
        units: 0,
    };
    let found = match search.eval(simple) {
        Ok(found) => found,
        Err(Miss::NotFound(key)) => return Some(Err(not_found(key))),
        Err(Miss::Interpreter) => return None,
    };
    Some(Ok(match found {
        Found::Value(value) => Cow::Borrowed(value),
        Found::List(items) => {
            search.copies(items.iter().copied())?;
            Cow::Owned(Value::Array(items.into_iter().cloned().collect()))
        }
        Found::Flat(list) => {
            if let Value::Array(items) = list {
                search.copies(items.iter())?;
            }
            Cow::Borrowed(list)
        }
    }))
}

/// The elements a foreach list yields from `data`, as `interp::evaluate_elements` finds them:
/// an array's items or the one value, all borrowed. `None` when the interpreter must.
pub(crate) fn elements<'a>(
    simple: &'a Simple,
    data: Scope<'a>,
) -> Option<Result<Vec<Cow<'a, Value>>, JmespathError>> {
    let search = Search {
        root: root(data),
        skip: 0,
        units: 0,
    };
    search.elements(simple)
}

/// [`elements`] of a path or pipeline that starts with `request.object`, searched from what
/// `request.object` is; `None` for any other shape or when the interpreter must.
pub(crate) fn elements_of_request_object<'a>(
    simple: &'a Simple,
    object: &'a Value,
) -> Option<Result<Vec<Cow<'a, Value>>, JmespathError>> {
    let (Simple::Path(start) | Simple::Pipeline(Pipeline { start, .. })) = simple else {
        return None;
    };
    if !matches!(start.as_slice(), [request, object, ..] if request == "request" && object == "object")
    {
        return None;
    }
    let search = Search {
        root: At::Value(object),
        skip: 2,
        units: 0,
    };
    search.elements(simple)
}

impl<'a> Search<'a> {
    fn elements(
        mut self,
        simple: &'a Simple,
    ) -> Option<Result<Vec<Cow<'a, Value>>, JmespathError>> {
        Some(Ok(match self.eval(simple) {
            Ok(Found::Value(Value::Array(items)) | Found::Flat(Value::Array(items))) => {
                items.iter().map(Cow::Borrowed).collect()
            }
            Ok(Found::Value(value) | Found::Flat(value)) => vec![Cow::Borrowed(value)],
            Ok(Found::List(items)) => items.into_iter().map(Cow::Borrowed).collect(),
            Err(Miss::NotFound(key)) => return Some(Err(not_found(key))),
            Err(Miss::Interpreter) => return None,
        }))
    }

    /// Counts the copy the interpreter makes of a list of `items`; `None` when that is enough
    /// work for it to look at its limits.
    fn copies<'i>(&mut self, items: impl Iterator<Item = &'i Value>) -> Option<()> {
        // The interpreter counts every node it copies.
        self.units += 1;
        for item in items {
            self.units += copy_cost(item);
            if self.units >= MAX_UNITS {
                return None;
            }
        }
        Some(())
    }

    fn charge(&mut self, units: usize) -> Result<(), Miss<'a>> {
        self.units += units;
        if self.units >= MAX_UNITS {
            return Err(Miss::Interpreter);
        }
        Ok(())
    }

    fn eval(&mut self, simple: &'a Simple) -> Result<Found<'a>, Miss<'a>> {
        match simple {
            Simple::Literal(value) => {
                self.charge(1)?;
                Ok(Found::Value(value))
            }
            Simple::Path(names) => match self.follow(names)? {
                At::Value(value) => Ok(Found::Value(value)),
                At::Scope(_) => Err(Miss::Interpreter),
            },
            Simple::Pipeline(pipeline) => self.pipeline(pipeline),
            Simple::Or(lhs, rhs) => {
                self.charge(1)?;
                let left = self.or_null(lhs)?;
                if left.is_truthy() {
                    Ok(left)
                } else {
                    self.or_null(rhs)
                }
            }
        }
    }

    /// The list a pipeline yields, or null where there is nothing to flatten.
    fn pipeline(&mut self, pipeline: &'a Pipeline) -> Result<Found<'a>, Miss<'a>> {
        self.charge(2 * pipeline.stages.len())?;
        let start = self.follow(&pipeline.start);
        // `path[]` over a list that holds no list and no null flattens to that list itself:
        // answered without building one, the units counted as the general case does below.
        if let (Ok(At::Value(list @ Value::Array(items))), None, [then]) =
            (&start, &pipeline.fields, pipeline.stages.as_slice())
        {
            if then.is_empty() && !items.iter().any(|i| i.is_array() || i.is_null()) {
                self.charge(items.len())?;
                self.charge(items.len() * 2)?;
                return Ok(Found::Flat(list));
            }
        }
        // What the first `[]` flattens: the value the path leads to, or its list of fields.
        let mut list: Vec<&'a Value> = match (start, &pipeline.fields) {
            (Err(Miss::Interpreter), _) | (Ok(At::Scope(_)), Some(_)) => {
                return Err(Miss::Interpreter)
            }
            // A missing field, a scope or anything but an array: nothing to flatten.
            (Err(Miss::NotFound(_)) | Ok(At::Scope(_)), None) => return Ok(Found::Value(&NULL)),
            (Ok(At::Value(Value::Array(items))), None) => items.iter().collect(),
            (Ok(At::Value(_)), None) => return Ok(Found::Value(&NULL)),
            (Err(Miss::NotFound(_)), Some(_)) | (Ok(At::Value(Value::Null)), Some(_)) => {
                return Ok(Found::Value(&NULL))
            }
            (Ok(At::Value(value)), Some(fields)) => {
                let mut list = Vec::with_capacity(fields.len());
                for names in fields {
                    self.charge(2 * names.len() + 1)?;
                    list.push(follow_value(value, names));
                }
                list
            }
        };
        for then in &pipeline.stages {
            let mut flat = Vec::with_capacity(list.len());
            for item in list {
                match item {
                    Value::Array(nested) => {
                        self.charge(nested.len() + 1)?;
                        flat.extend(nested.iter());
                    }
                    other => {
                        self.charge(1)?;
                        flat.push(other);
                    }
                }
            }
            self.charge(flat.len() * (2 * then.len() + 2))?;
            list = flat
                .into_iter()
                .map(|item| follow_value(item, then))
                .filter(|found| !found.is_null())
                .collect();
        }
        Ok(Found::List(list))
    }

    /// A missing field read as null, as `||` reads its operands.
    fn or_null(&mut self, simple: &'a Simple) -> Result<Found<'a>, Miss<'a>> {
        match self.eval(simple) {
            Err(Miss::NotFound(_)) => Ok(Found::Value(&NULL)),
            other => other,
        }
    }

    /// Follows `names` from the root: a bound name or the document's field first, then the
    /// fields of objects; a field of anything but an object is null, a missing one not found.
    fn follow(&mut self, names: &'a [String]) -> Result<At<'a>, Miss<'a>> {
        self.charge(names.len() * 2)?;
        let mut at = self.root;
        let names = names
            .get(std::mem::take(&mut self.skip)..)
            .unwrap_or_default();
        for name in names {
            at = match at {
                At::Scope(scope) => match scope.member(name) {
                    Some(Member::Value(value)) => At::Value(value),
                    Some(Member::Scope(inner)) => At::Scope(inner),
                    None => return Err(Miss::NotFound(name)),
                },
                At::Value(Value::Object(map)) => match map.field(name) {
                    Some(value) => At::Value(value),
                    None => return Err(Miss::NotFound(name)),
                },
                At::Value(_) => At::Value(&NULL),
            };
        }
        Ok(at)
    }
}

/// Follows `names` from a value, as a projection does from each element: a missing field, or a
/// field of anything but an object, is null.
fn follow_value<'a>(mut at: &'a Value, names: &[String]) -> &'a Value {
    for name in names {
        at = match at {
            Value::Object(map) => map.field(name).unwrap_or(&NULL),
            _ => &NULL,
        };
    }
    at
}
