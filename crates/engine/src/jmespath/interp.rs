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
use super::value::{compare_scalars, is_truthy, json_equal_at, MAX_VALUE_DEPTH};
use super::{Env, JmespathError, Scope};
use crate::json::Lookup;

/// Why a sub-expression produced no value.
#[derive(Debug)]
pub(crate) enum Fail<'a> {
    /// A field was missing (its name, from the expression); most contexts read this as null.
    NotFound(&'a str),
    Error(JmespathError),
}

impl From<JmespathError> for Fail<'_> {
    fn from(e: JmespathError) -> Self {
        Fail::Error(e)
    }
}

static NULL: Value = Value::Null;

/// An intermediate result: borrowed from the document (or the expression's literals), computed,
/// or an array assembled from other results. The last one lets projections, flattens, slices
/// and multi-selects collect borrowed elements without copying them; only the final result
/// (or a function argument) is turned into a real `Value`.
#[derive(Debug, Clone)]
pub(crate) enum Val<'a> {
    Ref(&'a Value),
    Owned(Value),
    List(Vec<Val<'a>>),
    /// The root of a search with names bound over the document; only ever the value an
    /// expression starts from (see `eval_node`).
    Scope(Scope<'a>),
}

impl<'a> Val<'a> {
    fn null() -> Self {
        Val::Ref(&NULL)
    }

    fn is_null(&self) -> bool {
        matches!(self, Val::Ref(Value::Null) | Val::Owned(Value::Null))
    }

    fn is_truthy(&self) -> bool {
        match self {
            Val::Ref(v) => is_truthy(v),
            Val::Owned(v) => is_truthy(v),
            Val::List(items) => !items.is_empty(),
            Val::Scope(_) => true,
        }
    }

    /// The elements of an array result, keeping borrows; `None` for anything else.
    fn into_elements(self) -> Option<Vec<Val<'a>>> {
        match self {
            Val::Ref(Value::Array(items)) => Some(items.iter().map(Val::Ref).collect()),
            Val::Owned(Value::Array(items)) => Some(items.into_iter().map(Val::Owned).collect()),
            Val::List(items) => Some(items),
            _ => None,
        }
    }

    fn len_if_array(&self) -> Option<usize> {
        match self {
            Val::Ref(Value::Array(items)) => Some(items.len()),
            Val::Owned(Value::Array(items)) => Some(items.len()),
            Val::List(items) => Some(items.len()),
            _ => None,
        }
    }
}

/// Deep equality of two results, as [`super::value::json_equal`] sees their JSON.
fn val_equal(a: &Val<'_>, b: &Val<'_>, depth: usize) -> bool {
    fn plain<'v>(v: &'v Val<'_>) -> Option<&'v Value> {
        match v {
            Val::Ref(v) => Some(v),
            Val::Owned(v) => Some(v),
            Val::List(_) | Val::Scope(_) => None,
        }
    }
    if let (Some(x), Some(y)) = (plain(a), plain(b)) {
        return json_equal_at(x, y, depth);
    }
    if depth > MAX_VALUE_DEPTH {
        return false;
    }
    // At least one side is an assembled array: compare element by element.
    fn element<'v>(v: &'v Val<'_>, i: usize) -> Option<Val<'v>> {
        match v {
            Val::Ref(Value::Array(items)) => items.get(i).map(Val::Ref),
            Val::Owned(Value::Array(items)) => items.get(i).map(Val::Ref),
            Val::List(items) => items.get(i).map(|item| match item {
                Val::Ref(r) => Val::Ref(r),
                Val::Owned(o) => Val::Ref(o),
                Val::List(_) | Val::Scope(_) => item.clone(),
            }),
            _ => None,
        }
    }
    match (a.len_if_array(), b.len_if_array()) {
        (Some(n), Some(m)) if n == m => (0..n).all(|i| match (element(a, i), element(b, i)) {
            (Some(x), Some(y)) => val_equal(&x, &y, depth + 1),
            _ => false,
        }),
        _ => false,
    }
}

pub(crate) type Res<'a> = Result<Val<'a>, Fail<'a>>;

/// The value a search starts from: the document itself unless names are bound over it.
fn root(data: Scope<'_>) -> Val<'_> {
    if data.has_bindings() {
        Val::Scope(data)
    } else {
        Val::Ref(data.document())
    }
}

fn public_error(fail: Fail<'_>) -> JmespathError {
    match fail {
        Fail::NotFound(key) => JmespathError::NotFound {
            key: key.to_owned(),
        },
        Fail::Error(e) => e,
    }
}

/// Evaluates, borrowing the result from `data` (or the expression) when it is part of it.
pub(crate) fn evaluate_ref<'a>(
    ast: &'a Ast,
    data: Scope<'a>,
    env: &dyn Env,
) -> Result<Cow<'a, Value>, JmespathError> {
    let mut interp = Interp::new(env);
    interp
        .eval(ast, root(data))
        .and_then(|v| interp.materialize(v))
        .map_err(public_error)
}

/// Evaluates to a list of elements borrowed where they are part of `data`: an array's items,
/// or the one value when the result is not an array.
pub(crate) fn evaluate_elements<'a>(
    ast: &'a Ast,
    data: Scope<'a>,
    env: &dyn Env,
) -> Result<Vec<Cow<'a, Value>>, JmespathError> {
    elements_of(Interp::new(env), ast, root(data))
}

/// An interpreter that has gone where `request.object` took the whole expression: one level
/// deep and three steps (the two fields and the sub-expression), so that an expression meets
/// the depth and step limits exactly where it did when searched whole.
fn past_request_object(env: &dyn Env) -> Result<Interp<'_>, JmespathError> {
    let mut interp = Interp::new(env);
    interp.depth = 1;
    interp.charge(2)?;
    Ok(interp)
}

/// [`evaluate_ref`] of an expression that starts with `request.object`: `rest` is the
/// expression with `@` in its place, `object` what `request.object` is.
pub(crate) fn evaluate_rest_of_request_object<'a>(
    rest: &'a Ast,
    object: &'a Value,
    env: &dyn Env,
) -> Result<Cow<'a, Value>, JmespathError> {
    let mut interp = past_request_object(env)?;
    interp
        .eval(rest, Val::Ref(object))
        .and_then(|v| interp.materialize(v))
        .map_err(public_error)
}

/// [`evaluate_elements`] of an expression that starts with `request.object`, as
/// [`evaluate_rest_of_request_object`].
pub(crate) fn elements_of_rest_of_request_object<'a>(
    rest: &'a Ast,
    object: &'a Value,
    env: &dyn Env,
) -> Result<Vec<Cow<'a, Value>>, JmespathError> {
    let interp = past_request_object(env)?;
    elements_of(interp, rest, Val::Ref(object))
}

fn elements_of<'a>(
    mut interp: Interp<'_>,
    ast: &'a Ast,
    start: Val<'a>,
) -> Result<Vec<Cow<'a, Value>>, JmespathError> {
    let result = interp.eval(ast, start).map_err(public_error)?;
    let single = match result {
        Val::Ref(Value::Array(items)) => return Ok(items.iter().map(Cow::Borrowed).collect()),
        Val::Owned(Value::Array(items)) => return Ok(items.into_iter().map(Cow::Owned).collect()),
        Val::List(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                out.push(interp.materialize(item).map_err(public_error)?);
            }
            return Ok(out);
        }
        other => other,
    };
    Ok(vec![interp.materialize(single).map_err(public_error)?])
}

/// Most units of work one evaluation may do: a node evaluated, an element collected, a value
/// copied. A policy over a list of thousands of objects needs well under a million; an
/// expression that doubles a list at every level needs more than this within about 25 levels.
pub(crate) const MAX_STEPS: u64 = 20_000_000;

/// Deepest the evaluator recurses. An unoptimised build spends about 17 KiB of stack per level,
/// so this keeps a whole evaluation within a 2 MiB thread stack (Tokio's blocking threads,
/// test threads) with room for the engine's frames around it.
pub(crate) const MAX_EVAL_DEPTH: usize = 64;

pub(crate) struct Interp<'e> {
    pub(crate) env: &'e dyn Env,
    depth: usize,
    steps: u64,
    ticker: crate::deadline::Ticker,
}

/// Reads "not found" as null; other failures stay failures.
fn or_null(res: Res<'_>) -> Res<'_> {
    match res {
        Err(Fail::NotFound(_)) => Ok(Val::null()),
        other => other,
    }
}

/// Any failure reads as null (go-jmespath does this for the left side of projections) — but
/// not a safety limit, which must end the evaluation.
fn any_null(res: Res<'_>) -> Res<'_> {
    match res {
        Err(Fail::Error(limit @ JmespathError::Limit(_))) => Err(Fail::Error(limit)),
        Err(_) => Ok(Val::null()),
        ok => ok,
    }
}

fn null<'a>() -> Res<'a> {
    Ok(Val::null())
}

impl<'e> Interp<'e> {
    pub(crate) fn new(env: &'e dyn Env) -> Self {
        Interp {
            env,
            depth: 0,
            steps: 0,
            ticker: crate::deadline::Ticker::default(),
        }
    }

    /// Counts `units` of work; an error once the evaluation has done too much or its deadline
    /// has passed.
    pub(crate) fn charge(&mut self, units: usize) -> Result<(), JmespathError> {
        self.steps = self
            .steps
            .saturating_add(u64::try_from(units).unwrap_or(u64::MAX));
        if self.steps > MAX_STEPS {
            return Err(JmespathError::limit(format!(
                "the expression did more than {MAX_STEPS} steps of work"
            )));
        }
        if self.ticker.tick() {
            return Err(JmespathError::limit(crate::deadline::EXPIRED_MESSAGE));
        }
        Ok(())
    }

    /// A copy of a document value, charged per node, so copying a large value many times is
    /// bounded like any other work. The charge is counted first and the copy is one `clone`,
    /// which keeps each object's hash table instead of hashing every key again.
    pub(crate) fn copy(&mut self, value: &Value) -> Result<Value, JmespathError> {
        self.charge(copy_cost(value))?;
        Ok(value.clone())
    }

    /// A result as JSON: borrowed when it is part of the document, else built with every
    /// copied node charged.
    pub(crate) fn materialize<'a>(&mut self, v: Val<'a>) -> Result<Cow<'a, Value>, Fail<'a>> {
        Ok(match v {
            Val::Ref(r) => Cow::Borrowed(r),
            Val::Owned(o) => Cow::Owned(o),
            Val::List(items) => Cow::Owned(self.owned(Val::List(items))?),
            Val::Scope(scope) => Cow::Owned(self.scope_value(scope)?),
        })
    }

    /// A result as an owned value, every copied node charged.
    pub(crate) fn owned(&mut self, v: Val<'_>) -> Result<Value, JmespathError> {
        match v {
            Val::Ref(r) => self.copy(r),
            Val::Owned(o) => Ok(o),
            Val::List(items) => {
                self.charge(1)?;
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.push(self.owned(item)?);
                }
                Ok(Value::Array(out))
            }
            Val::Scope(scope) => self.scope_value(scope),
        }
    }

    /// A scope (the root or `request` with names bound over it) as one document, for the
    /// nodes that look at a value as a whole; anything else as it is.
    fn unscope<'a>(&mut self, v: Val<'a>) -> Res<'a> {
        match v {
            Val::Scope(scope) => Ok(Val::Owned(self.scope_value(scope).map_err(Fail::Error)?)),
            other => Ok(other),
        }
    }

    /// The scope as one document, charged like any copy.
    fn scope_value(&mut self, scope: Scope<'_>) -> Result<Value, JmespathError> {
        let value = scope.to_value();
        self.charge(copy_cost(&value))?;
        Ok(value)
    }

    pub(crate) fn eval<'a>(&mut self, ast: &'a Ast, v: Val<'a>) -> Res<'a> {
        self.charge(1)?;
        if self.depth >= MAX_EVAL_DEPTH {
            return Err(Fail::Error(JmespathError::limit(format!(
                "the expression nests deeper than {MAX_EVAL_DEPTH} levels when evaluated"
            ))));
        }
        self.depth += 1;
        let result = self.eval_node(ast, v);
        self.depth -= 1;
        result
    }

    fn eval_node<'a>(&mut self, ast: &'a Ast, v: Val<'a>) -> Res<'a> {
        // A scope is looked into by field; the nodes that take the current value apart
        // themselves get it as one document. Every other node hands it to its children.
        let v = match v {
            Val::Scope(scope) => match ast {
                Ast::Field(name) => {
                    return match scope.member(name) {
                        Some(super::Member::Value(value)) => Ok(Val::Ref(value)),
                        Some(super::Member::Scope(inner)) => Ok(Val::Scope(inner)),
                        None => Err(Fail::NotFound(name)),
                    }
                }
                Ast::Identity | Ast::Index(_) | Ast::Slice(..) => {
                    Val::Owned(self.scope_value(scope).map_err(Fail::Error)?)
                }
                _ => Val::Scope(scope),
            },
            other => other,
        };
        match ast {
            Ast::Identity => Ok(v),
            Ast::Literal(value) => Ok(Val::Ref(value)),
            Ast::Field(name) => field(v, name),
            Ast::Index(i) => Ok(index(v, *i)),
            Ast::Slice(start, stop, step) => slice(v, *start, *stop, *step),
            Ast::Subexpr(lhs, rhs) | Ast::IndexExpr(lhs, rhs) => {
                let left = self.eval(lhs, v)?;
                // A field of a value (not a scope) is one step without `eval`'s recursion:
                // paths such as `spec.securityContext.capabilities` are chains of these.
                if let Ast::Field(name) = &**rhs {
                    if !matches!(left, Val::Scope(_)) {
                        self.charge(1)?;
                        return field(left, name);
                    }
                }
                self.eval(rhs, left)
            }
            Ast::Projection(lhs, rhs) => {
                let left = or_null(self.eval(lhs, v))?;
                let Some(items) = left.into_elements() else {
                    return null();
                };
                self.project(rhs, items)
            }
            Ast::ValueProjection(lhs, rhs) => {
                let left = any_null(self.eval(lhs, v))?;
                let left = self.unscope(left)?;
                let values: Vec<Val<'a>> = match left {
                    Val::Ref(Value::Object(map)) => map.values().map(Val::Ref).collect(),
                    Val::Owned(Value::Object(map)) => {
                        map.into_iter().map(|(_, v)| Val::Owned(v)).collect()
                    }
                    _ => return null(),
                };
                self.project(rhs, values)
            }
            Ast::FilterProjection(lhs, rhs, cond) => {
                let left = any_null(self.eval(lhs, v))?;
                let Some(items) = left.into_elements() else {
                    return null();
                };
                let mut out = Vec::new();
                for item in items {
                    let keep = or_null(self.eval(cond, item.clone()))?;
                    if keep.is_truthy() {
                        let r = or_null(self.eval(rhs, item))?;
                        if !r.is_null() {
                            out.push(r);
                        }
                    }
                }
                Ok(Val::List(out))
            }
            Ast::Flatten(inner) => {
                let left = any_null(self.eval(inner, v))?;
                let Some(items) = left.into_elements() else {
                    return null();
                };
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    self.charge(item.len_if_array().unwrap_or(1))?;
                    match item {
                        Val::Ref(Value::Array(nested)) => out.extend(nested.iter().map(Val::Ref)),
                        Val::Owned(Value::Array(nested)) => {
                            out.extend(nested.into_iter().map(Val::Owned));
                        }
                        Val::List(nested) => out.extend(nested),
                        other => out.push(other),
                    }
                }
                Ok(Val::List(out))
            }
            Ast::Pipe(lhs, rhs) => {
                let left = or_null(self.eval(lhs, v))?;
                or_null(self.eval(rhs, left))
            }
            Ast::Or(lhs, rhs) => {
                let left = or_null(self.eval(lhs, v.clone()))?;
                if left.is_truthy() {
                    Ok(left)
                } else {
                    // Kyverno resolves a missing right-hand operand of a top-level `||` to
                    // null too (its context falls back operand by operand), so do the same.
                    or_null(self.eval(rhs, v))
                }
            }
            Ast::And(lhs, rhs) => {
                let left = or_null(self.eval(lhs, v.clone()))?;
                if left.is_truthy() {
                    self.eval(rhs, v)
                } else {
                    Ok(left)
                }
            }
            Ast::Not(inner) => {
                let value = or_null(self.eval(inner, v))?;
                Ok(Val::Owned(Value::Bool(!value.is_truthy())))
            }
            Ast::Compare(cmp, lhs, rhs) => {
                let left = or_null(self.eval(lhs, v.clone()))?;
                let left = self.unscope(left)?;
                let right = or_null(self.eval(rhs, v))?;
                let right = self.unscope(right)?;
                Ok(Val::Owned(compare(*cmp, &left, &right)))
            }
            Ast::MultiList(items) => {
                if v.is_null() {
                    return null();
                }
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.push(or_null(self.eval(item, v.clone()))?);
                }
                Ok(Val::List(out))
            }
            Ast::MultiHash(pairs) => {
                if v.is_null() {
                    return null();
                }
                let mut out = Map::new();
                for (key, item) in pairs {
                    let value = or_null(self.eval(item, v.clone()))?;
                    let value = self.owned(value)?;
                    out.insert(key.clone(), value);
                }
                Ok(Val::Owned(Value::Object(out)))
            }
            Ast::Function(name, args) => {
                let mut resolved = Vec::with_capacity(args.len());
                for arg in args {
                    match arg {
                        Ast::Expref(inner) => resolved.push(Arg::Expref(inner)),
                        other => {
                            let value = or_null(self.eval(other, v.clone()))?;
                            // `length` of an assembled array needs no copy of its elements.
                            if name == "length" && args.len() == 1 {
                                if let Val::List(items) = &value {
                                    return Ok(Val::Owned(Value::from(items.len())));
                                }
                            }
                            resolved.push(Arg::Value(self.materialize(value)?));
                        }
                    }
                }
                let result = functions::call(self, name, resolved)?;
                // What a function built is work done (a string grown by `join`, say).
                match &result {
                    Value::String(text) => self.charge(text.len() / 64)?,
                    Value::Array(items) => self.charge(items.len())?,
                    Value::Object(map) => self.charge(map.len())?,
                    _ => {}
                }
                Ok(Val::Owned(result))
            }
            Ast::Expref(_) => Err(Fail::Error(JmespathError::function(
                "an expression reference (&expr) can only be passed to a function",
            ))),
        }
    }

    /// Applies `rhs` to each item, keeping the non-null results.
    fn project<'a>(&mut self, rhs: &'a Ast, items: Vec<Val<'a>>) -> Res<'a> {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let r = or_null(self.eval(rhs, item))?;
            if !r.is_null() {
                out.push(r);
            }
        }
        Ok(Val::List(out))
    }

    /// Evaluates an `&expr` argument against one value; a missing key reads as null.
    pub(crate) fn eval_expref(&mut self, ast: &Ast, v: &Value) -> Result<Value, JmespathError> {
        match self.eval(ast, Val::Ref(v)) {
            Ok(r) => self.owned(r),
            Err(Fail::NotFound(_)) => Ok(Value::Null),
            Err(Fail::Error(e)) => Err(e),
        }
    }
}

/// What copying `value` costs in steps: one per node, plus one per 64 bytes of every key and
/// string.
pub(crate) fn copy_cost(value: &Value) -> usize {
    let mut units = 0usize;
    let mut stack = vec![value];
    while let Some(node) = stack.pop() {
        units = units.saturating_add(1);
        match node {
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => {
                for (key, item) in map {
                    units = units.saturating_add(key.len() / 64);
                    stack.push(item);
                }
            }
            Value::String(text) => units = units.saturating_add(text.len() / 64),
            _ => {}
        }
    }
    units
}

fn field<'a>(v: Val<'a>, name: &'a str) -> Res<'a> {
    match v {
        Val::Ref(Value::Object(map)) => map.field(name).map(Val::Ref).ok_or(Fail::NotFound(name)),
        Val::Owned(Value::Object(mut map)) => {
            map.remove(name).map(Val::Owned).ok_or(Fail::NotFound(name))
        }
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

fn index(v: Val<'_>, i: i64) -> Val<'_> {
    match v {
        Val::Ref(Value::Array(items)) => resolve_index(items.len(), i)
            .and_then(|idx| items.get(idx))
            .map_or(Val::null(), Val::Ref),
        Val::Owned(Value::Array(mut items)) => match resolve_index(items.len(), i) {
            Some(idx) if idx < items.len() => Val::Owned(items.swap_remove(idx)),
            _ => Val::null(),
        },
        Val::List(mut items) => match resolve_index(items.len(), i) {
            Some(idx) if idx < items.len() => items.swap_remove(idx),
            _ => Val::null(),
        },
        _ => Val::null(),
    }
}

fn slice<'a>(v: Val<'a>, start: Option<i64>, stop: Option<i64>, step: Option<i64>) -> Res<'a> {
    let Some(items) = v.into_elements() else {
        return null();
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
    Ok(Val::List(out))
}

fn compare(cmp: Cmp, left: &Val<'_>, right: &Val<'_>) -> Value {
    match cmp {
        Cmp::Eq => Value::Bool(val_equal(left, right, 0)),
        Cmp::Ne => Value::Bool(!val_equal(left, right, 0)),
        _ => {
            // go-jmespath orders numbers only; anything else compares to null.
            fn number<'v>(v: &'v Val<'_>) -> Option<&'v Value> {
                match v {
                    Val::Ref(n @ Value::Number(_)) => Some(*n),
                    Val::Owned(n @ Value::Number(_)) => Some(n),
                    _ => None,
                }
            }
            let (Some(left), Some(right)) = (number(left), number(right)) else {
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
