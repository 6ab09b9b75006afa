//! The expressions most policies write, answered without the interpreter: a path of fields
//! (`element.securityContext.runAsUser`), the same path flattened (`…capabilities.drop[]`),
//! literals, and alternatives joined by `||` (`request.operation || 'BACKGROUND'`).
//!
//! The interpreter moves a 72-byte result through a dispatch per node and collects a flattened
//! list twice (the flatten, then its projection); here a path is a loop over field names and a
//! flattened path one pass. The answers are the interpreter's, errors included. What this
//! evaluator does not take on it hands back (`None`): a result that is a scope, and any search
//! that could do enough work to meet the interpreter's step limit or its first look at the
//! clock, so that limits and deadlines fall exactly where they do there.

use std::borrow::Cow;

use serde_json::Value;

use super::interp::copy_cost;
use super::parser::Ast;
use super::{Member, Scope};
use crate::json::Lookup;

/// Longest path and deepest nesting of `||` taken on; both keep the interpreter's depth far
/// from its limit.
const MAX_PATH: usize = 16;
const MAX_NESTING: usize = 8;

/// Units of work below which the interpreter neither reads the clock nor meets its step limit
/// (its clock is read after 1024 units at the earliest).
const MAX_UNITS: usize = 1000;

/// An expression of one of the shapes above.
#[derive(Debug)]
pub(crate) enum Simple {
    /// `a.b.c`: the first name is looked up at the root.
    Path(Vec<String>),
    /// `a.b.c[]`: the path's array flattened one level, nulls left out.
    Flattened(Vec<String>),
    Literal(Value),
    Or(Box<Simple>, Box<Simple>),
}

impl Simple {
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
            Ast::Projection(lhs, rhs) => match (*lhs, *rhs) {
                (Ast::Flatten(inner), Ast::Identity) => Simple::Flattened(path(*inner)?),
                _ => return None,
            },
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
}

impl Found<'_> {
    fn is_truthy(&self) -> bool {
        match self {
            Found::Value(value) => super::value::is_truthy(value),
            Found::List(items) => !items.is_empty(),
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
    /// An upper bound of the units the interpreter would count.
    units: usize,
}

/// Searches `data`; `None` when the interpreter must.
pub(crate) fn evaluate_ref<'a>(
    simple: &'a Simple,
    data: Scope<'a>,
) -> Option<Result<Cow<'a, Value>, super::JmespathError>> {
    let root = if data.has_bindings() {
        At::Scope(data)
    } else {
        At::Value(data.document())
    };
    let mut search = Search { root, units: 0 };
    let found = match search.eval(simple) {
        Ok(found) => found,
        Err(Miss::NotFound(key)) => {
            return Some(Err(super::JmespathError::NotFound {
                key: key.to_owned(),
            }))
        }
        Err(Miss::Interpreter) => return None,
    };
    Some(Ok(match found {
        Found::Value(value) => Cow::Borrowed(value),
        Found::List(items) => {
            // The interpreter counts every node it copies.
            search.units += 1;
            for item in &items {
                search.units += copy_cost(item);
                if search.units >= MAX_UNITS {
                    return None;
                }
            }
            Cow::Owned(copied(&items))
        }
    }))
}

/// The elements of a flattened result, copied into an array.
#[inline(never)]
fn copied(items: &[&Value]) -> Value {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        out.push(Value::clone(item));
    }
    Value::Array(out)
}

impl<'a> Search<'a> {
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
            Simple::Flattened(names) => {
                self.charge(2)?;
                // A missing field, a scope or anything but an array leaves nothing to flatten.
                let items = match self.follow(names) {
                    Ok(At::Value(Value::Array(items))) => items,
                    Ok(_) | Err(Miss::NotFound(_)) => return Ok(Found::Value(&NULL)),
                    Err(Miss::Interpreter) => return Err(Miss::Interpreter),
                };
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Value::Array(nested) => {
                            self.charge(nested.len() * 2 + 1)?;
                            out.extend(nested.iter().filter(|v| !v.is_null()));
                        }
                        Value::Null => self.charge(2)?,
                        other => {
                            self.charge(2)?;
                            out.push(other);
                        }
                    }
                }
                Ok(Found::List(out))
            }
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
