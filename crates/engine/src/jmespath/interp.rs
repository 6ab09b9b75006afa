//! Tree-walking evaluator. Values are borrowed from the document where possible.
//!
//! Missing keys follow Kyverno's fork of go-jmespath: looking up a field an object does not
//! have fails with "not found". That failure travels up through sub-expressions and `&&`,
//! but projections, filters, comparisons, function arguments, pipes, `!`, `||` and
//! multi-selects treat it as null — so `a.missing` is an error while
//! `a.missing || 'default'` and `length(a.missing || \`[]\`)` are not.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::functions::{self, Arg};
use super::parser::{Ast, Cmp};
use super::value::{compare_scalars, is_truthy, json_equal};
use super::{Env, JmespathError};

/// Why a sub-expression produced no value.
#[derive(Debug)]
pub(crate) enum Fail {
    /// A field was missing; most contexts read this as null.
    NotFound(String),
    Error(JmespathError),
}

impl From<JmespathError> for Fail {
    fn from(e: JmespathError) -> Self {
        Fail::Error(e)
    }
}

pub(crate) type Res<'a> = Result<Cow<'a, Value>, Fail>;

pub(crate) fn evaluate(ast: &Ast, data: &Value, env: &dyn Env) -> Result<Value, JmespathError> {
    let mut interp = Interp { env };
    match interp.eval(ast, Cow::Borrowed(data)) {
        Ok(v) => Ok(v.into_owned()),
        Err(Fail::NotFound(key)) => Err(JmespathError::NotFound { key }),
        Err(Fail::Error(e)) => Err(e),
    }
}

pub(crate) struct Interp<'e> {
    pub(crate) env: &'e dyn Env,
}

/// Reads "not found" as null; other failures stay failures.
fn or_null(res: Res<'_>) -> Res<'_> {
    match res {
        Err(Fail::NotFound(_)) => Ok(Cow::Owned(Value::Null)),
        other => other,
    }
}

/// Any failure reads as null (go-jmespath does this for the left side of projections).
fn any_null(res: Res<'_>) -> Cow<'_, Value> {
    res.unwrap_or(Cow::Owned(Value::Null))
}

fn share<'a>(v: &Cow<'a, Value>) -> Cow<'a, Value> {
    match v {
        Cow::Borrowed(r) => Cow::Borrowed(*r),
        Cow::Owned(o) => Cow::Owned(o.clone()),
    }
}

/// Splits an array value into its elements, keeping borrows where the array was borrowed.
fn elements(v: Cow<'_, Value>) -> Option<Vec<Cow<'_, Value>>> {
    match v {
        Cow::Borrowed(Value::Array(items)) => Some(items.iter().map(Cow::Borrowed).collect()),
        Cow::Owned(Value::Array(items)) => Some(items.into_iter().map(Cow::Owned).collect()),
        _ => None,
    }
}

fn null<'a>() -> Res<'a> {
    Ok(Cow::Owned(Value::Null))
}

impl Interp<'_> {
    pub(crate) fn eval<'a>(&mut self, ast: &'a Ast, v: Cow<'a, Value>) -> Res<'a> {
        match ast {
            Ast::Identity => Ok(v),
            Ast::Literal(value) => Ok(Cow::Borrowed(value)),
            Ast::Field(name) => field(v, name),
            Ast::Index(i) => Ok(index(v, *i)),
            Ast::Slice(start, stop, step) => slice(v, *start, *stop, *step),
            Ast::Subexpr(lhs, rhs) | Ast::IndexExpr(lhs, rhs) => {
                let left = self.eval(lhs, v)?;
                self.eval(rhs, left)
            }
            Ast::Projection(lhs, rhs) => {
                let left = or_null(self.eval(lhs, v))?;
                let Some(items) = elements(left) else {
                    return null();
                };
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    let r = or_null(self.eval(rhs, item))?;
                    if !r.is_null() {
                        out.push(r.into_owned());
                    }
                }
                Ok(Cow::Owned(Value::Array(out)))
            }
            Ast::ValueProjection(lhs, rhs) => {
                let left = any_null(self.eval(lhs, v));
                let values: Vec<Cow<'a, Value>> = match left {
                    Cow::Borrowed(Value::Object(map)) => map.values().map(Cow::Borrowed).collect(),
                    Cow::Owned(Value::Object(map)) => {
                        map.into_iter().map(|(_, v)| Cow::Owned(v)).collect()
                    }
                    _ => return null(),
                };
                let mut out = Vec::with_capacity(values.len());
                for item in values {
                    let r = or_null(self.eval(rhs, item))?;
                    if !r.is_null() {
                        out.push(r.into_owned());
                    }
                }
                Ok(Cow::Owned(Value::Array(out)))
            }
            Ast::FilterProjection(lhs, rhs, cond) => {
                let left = any_null(self.eval(lhs, v));
                let Some(items) = elements(left) else {
                    return null();
                };
                let mut out = Vec::new();
                for item in items {
                    let keep = or_null(self.eval(cond, share(&item)))?;
                    if is_truthy(&keep) {
                        let r = or_null(self.eval(rhs, item))?;
                        if !r.is_null() {
                            out.push(r.into_owned());
                        }
                    }
                }
                Ok(Cow::Owned(Value::Array(out)))
            }
            Ast::Flatten(inner) => {
                let left = any_null(self.eval(inner, v));
                let Some(items) = elements(left) else {
                    return null();
                };
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Cow::Borrowed(Value::Array(nested)) => out.extend(nested.iter().cloned()),
                        Cow::Owned(Value::Array(nested)) => out.extend(nested),
                        other => out.push(other.into_owned()),
                    }
                }
                Ok(Cow::Owned(Value::Array(out)))
            }
            Ast::Pipe(lhs, rhs) => {
                let left = or_null(self.eval(lhs, v))?;
                or_null(self.eval(rhs, left))
            }
            Ast::Or(lhs, rhs) => {
                let left = or_null(self.eval(lhs, share(&v)))?;
                if is_truthy(&left) {
                    Ok(left)
                } else {
                    // Kyverno resolves a missing right-hand operand of a top-level `||` to
                    // null too (its context falls back operand by operand), so do the same.
                    or_null(self.eval(rhs, v))
                }
            }
            Ast::And(lhs, rhs) => {
                let left = or_null(self.eval(lhs, share(&v)))?;
                if is_truthy(&left) {
                    self.eval(rhs, v)
                } else {
                    Ok(left)
                }
            }
            Ast::Not(inner) => {
                let value = or_null(self.eval(inner, v))?;
                Ok(Cow::Owned(Value::Bool(!is_truthy(&value))))
            }
            Ast::Compare(cmp, lhs, rhs) => {
                let left = or_null(self.eval(lhs, share(&v)))?;
                let right = or_null(self.eval(rhs, v))?;
                Ok(Cow::Owned(compare(*cmp, &left, &right)))
            }
            Ast::MultiList(items) => {
                if v.is_null() {
                    return null();
                }
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.push(or_null(self.eval(item, share(&v)))?.into_owned());
                }
                Ok(Cow::Owned(Value::Array(out)))
            }
            Ast::MultiHash(pairs) => {
                if v.is_null() {
                    return null();
                }
                let mut out = Map::new();
                for (key, item) in pairs {
                    let value = or_null(self.eval(item, share(&v)))?.into_owned();
                    out.insert(key.clone(), value);
                }
                Ok(Cow::Owned(Value::Object(out)))
            }
            Ast::Function(name, args) => {
                let mut resolved = Vec::with_capacity(args.len());
                for arg in args {
                    match arg {
                        Ast::Expref(inner) => resolved.push(Arg::Expref(inner)),
                        other => resolved.push(Arg::Value(or_null(self.eval(other, share(&v)))?)),
                    }
                }
                let result = functions::call(self, name, resolved)?;
                Ok(Cow::Owned(result))
            }
            Ast::Expref(_) => Err(Fail::Error(JmespathError::function(
                "an expression reference (&expr) can only be passed to a function",
            ))),
        }
    }

    /// Evaluates an `&expr` argument against one value; a missing key reads as null.
    pub(crate) fn eval_expref(&mut self, ast: &Ast, v: &Value) -> Result<Value, JmespathError> {
        match self.eval(ast, Cow::Borrowed(v)) {
            Ok(r) => Ok(r.into_owned()),
            Err(Fail::NotFound(_)) => Ok(Value::Null),
            Err(Fail::Error(e)) => Err(e),
        }
    }
}

fn field<'a>(v: Cow<'a, Value>, name: &str) -> Res<'a> {
    match v {
        Cow::Borrowed(Value::Object(map)) => map
            .get(name)
            .map(Cow::Borrowed)
            .ok_or_else(|| Fail::NotFound(name.to_owned())),
        Cow::Owned(Value::Object(mut map)) => map
            .remove(name)
            .map(Cow::Owned)
            .ok_or_else(|| Fail::NotFound(name.to_owned())),
        _ => null(),
    }
}

fn resolve_index(len: usize, i: i64) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let idx = if i < 0 { i + len } else { i };
    if (0..len).contains(&idx) {
        usize::try_from(idx).ok()
    } else {
        None
    }
}

fn index(v: Cow<'_, Value>, i: i64) -> Cow<'_, Value> {
    match v {
        Cow::Borrowed(Value::Array(items)) => resolve_index(items.len(), i)
            .and_then(|idx| items.get(idx))
            .map_or(Cow::Owned(Value::Null), Cow::Borrowed),
        Cow::Owned(Value::Array(mut items)) => match resolve_index(items.len(), i) {
            Some(idx) if idx < items.len() => Cow::Owned(items.swap_remove(idx)),
            _ => Cow::Owned(Value::Null),
        },
        _ => Cow::Owned(Value::Null),
    }
}

fn slice<'a>(
    v: Cow<'a, Value>,
    start: Option<i64>,
    stop: Option<i64>,
    step: Option<i64>,
) -> Res<'a> {
    let items: &[Value] = match &v {
        Cow::Borrowed(Value::Array(items)) => items,
        Cow::Owned(Value::Array(items)) => items,
        _ => return null(),
    };
    let step = step.unwrap_or(1);
    if step == 0 {
        return Err(Fail::Error(JmespathError::function("Step cannot be 0.")));
    }
    let len = i64::try_from(items.len()).unwrap_or(i64::MAX);
    let clamp = |value: Option<i64>, default: i64| -> i64 {
        match value {
            None => default,
            Some(n) if n < 0 => {
                let n = n + len;
                if n < 0 {
                    if step < 0 {
                        -1
                    } else {
                        0
                    }
                } else {
                    n
                }
            }
            Some(n) if n >= len => {
                if step < 0 {
                    len - 1
                } else {
                    len
                }
            }
            Some(n) => n,
        }
    };
    let (from, to) = if step > 0 {
        (clamp(start, 0), clamp(stop, len))
    } else {
        (clamp(start, len - 1), clamp(stop, -1))
    };
    let mut out = Vec::new();
    let mut i = from;
    while (step > 0 && i < to) || (step < 0 && i > to) {
        if let Some(item) = usize::try_from(i).ok().and_then(|idx| items.get(idx)) {
            out.push(item.clone());
        }
        i += step;
    }
    Ok(Cow::Owned(Value::Array(out)))
}

fn compare(cmp: Cmp, left: &Value, right: &Value) -> Value {
    match cmp {
        Cmp::Eq => Value::Bool(json_equal(left, right)),
        Cmp::Ne => Value::Bool(!json_equal(left, right)),
        _ => {
            // go-jmespath orders numbers only; anything else compares to null.
            let (Value::Number(_), Value::Number(_)) = (left, right) else {
                return Value::Null;
            };
            let Some(ord) = compare_scalars(left, right) else {
                return Value::Null;
            };
            Value::Bool(match cmp {
                Cmp::Lt => ord.is_lt(),
                Cmp::Lte => ord.is_le(),
                Cmp::Gt => ord.is_gt(),
                _ => ord.is_ge(),
            })
        }
    }
}
