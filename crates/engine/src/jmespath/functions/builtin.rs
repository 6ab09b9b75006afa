//! The standard JMESPath functions, with go-jmespath's behaviour where it differs from the
//! specification (for instance `avg([])` has no value, `contains` on a string with a
//! non-string needle is false).

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::{Call, Def, Ty};
use crate::jmespath::value::{as_f64, go_json, json_equal, num};
use crate::jmespath::JmespathError;

const NUM: &[Ty] = &[Ty::Number];
const STR: &[Ty] = &[Ty::String];
const ARR: &[Ty] = &[Ty::Array];
const OBJ: &[Ty] = &[Ty::Object];
const ANY: &[Ty] = &[Ty::Any];
const REF: &[Ty] = &[Ty::Expref];
const NUMS_OR_STRS: &[Ty] = &[Ty::ArrayNumber, Ty::ArrayString];

macro_rules! def {
    ($name:literal, [$($arg:expr),*], $ret:literal, $note:literal, $handler:expr) => {
        Def { name: $name, args: &[$($arg),*], variadic: false, returns: $ret, note: $note, kyverno: false, handler: $handler }
    };
    (variadic $name:literal, [$($arg:expr),*], $ret:literal, $note:literal, $handler:expr) => {
        Def { name: $name, args: &[$($arg),*], variadic: true, returns: $ret, note: $note, kyverno: false, handler: $handler }
    };
}

pub(super) static DEFS: &[Def] = &[
    def!(
        "abs",
        [NUM],
        "number",
        "absolute value of a number",
        |c| Ok(num(c.f64(0)?.abs()))
    ),
    def!(
        "avg",
        [&[Ty::ArrayNumber]],
        "number",
        "average of an array of numbers (null when empty)",
        avg
    ),
    def!(
        "ceil",
        [NUM],
        "number",
        "smallest integer not below the number",
        |c| Ok(num(c.f64(0)?.ceil()))
    ),
    def!(
        "contains",
        [&[Ty::Array, Ty::String], ANY],
        "boolean",
        "whether an array holds a value, or a string holds a substring",
        contains
    ),
    def!(
        "ends_with",
        [STR, STR],
        "boolean",
        "whether the first string ends with the second",
        |c| Ok(Value::Bool(c.str(0)?.ends_with(c.str(1)?)))
    ),
    def!(
        "floor",
        [NUM],
        "number",
        "largest integer not above the number",
        |c| Ok(num(c.f64(0)?.floor()))
    ),
    def!(
        "join",
        [STR, &[Ty::ArrayString]],
        "string",
        "joins an array of strings with a separator",
        join
    ),
    def!("keys", [OBJ], "array", "the keys of an object", |c| Ok(
        Value::Array(c.object(0)?.keys().cloned().map(Value::String).collect())
    )),
    def!(
        "length",
        [&[Ty::String, Ty::Array, Ty::Object]],
        "number",
        "characters in a string, items in an array or keys in an object",
        length
    ),
    def!(
        "map",
        [REF, ARR],
        "array",
        "applies an expression to every item of an array",
        map
    ),
    def!(
        "max",
        [NUMS_OR_STRS],
        "number|string",
        "largest number or string of an array (null when empty)",
        |c| extreme(c, Ordering::Greater)
    ),
    def!(
        "max_by",
        [ARR, REF],
        "any",
        "item of an array for which an expression is largest",
        |c| extreme_by(c, Ordering::Greater)
    ),
    def!(variadic "merge", [OBJ], "object", "merges objects; later keys win", merge),
    def!(
        "min",
        [NUMS_OR_STRS],
        "number|string",
        "smallest number or string of an array (null when empty)",
        |c| extreme(c, Ordering::Less)
    ),
    def!(
        "min_by",
        [ARR, REF],
        "any",
        "item of an array for which an expression is smallest",
        |c| extreme_by(c, Ordering::Less)
    ),
    def!(variadic "not_null", [ANY], "any", "first argument that is not null", not_null),
    def!(
        "reverse",
        [&[Ty::Array, Ty::String]],
        "array|string",
        "reverses an array or a string",
        reverse
    ),
    def!(
        "sort",
        [NUMS_OR_STRS],
        "array",
        "sorts an array of numbers or of strings",
        sort
    ),
    def!(
        "sort_by",
        [ARR, REF],
        "array",
        "sorts an array by the number or string an expression gives for each item",
        sort_by
    ),
    def!(
        "starts_with",
        [STR, STR],
        "boolean",
        "whether the first string starts with the second",
        |c| Ok(Value::Bool(c.str(0)?.starts_with(c.str(1)?)))
    ),
    def!(
        "to_array",
        [ANY],
        "array",
        "wraps a non-array value in an array",
        to_array
    ),
    def!(
        "to_number",
        [ANY],
        "number",
        "parses a string as a number (null when it is not one)",
        to_number
    ),
    def!(
        "to_string",
        [ANY],
        "string",
        "a string as is, anything else as JSON text",
        to_string
    ),
    def!(
        "type",
        [ANY],
        "string",
        "the JMESPath type of a value",
        |c| Ok(Value::String(
            crate::jmespath::value::type_name(c.value(0)).to_owned()
        ))
    ),
    def!("values", [OBJ], "array", "the values of an object", |c| Ok(
        Value::Array(c.object(0)?.values().cloned().collect())
    )),
];

fn avg(c: &mut Call<'_, '_, '_>) -> Result<Value, JmespathError> {
    let items = c.array(0)?;
    if items.is_empty() {
        return Ok(Value::Null);
    }
    let total: f64 = items.iter().filter_map(as_f64).sum();
    Ok(num(total / items.len() as f64))
}

fn contains(c: &mut Call<'_, '_, '_>) -> Result<Value, JmespathError> {
    let needle = c.value(1);
    Ok(Value::Bool(match c.value(0) {
        Value::String(hay) => needle.as_str().is_some_and(|n| hay.contains(n)),
        Value::Array(items) => items.iter().any(|item| json_equal(item, needle)),
        _ => false,
    }))
}

fn join(c: &mut Call<'_, '_, '_>) -> Result<Value, JmespathError> {
    let sep = c.str(0)?;
    let parts: Vec<&str> = c.array(1)?.iter().filter_map(Value::as_str).collect();
    let len = parts
        .iter()
        .fold(sep.len().saturating_mul(parts.len()), |sum, p| {
            sum.saturating_add(p.len())
        });
    super::check_result_len("join", len)?;
    Ok(Value::String(parts.join(sep)))
}

fn length(c: &mut Call<'_, '_, '_>) -> Result<Value, JmespathError> {
    let n = match c.value(0) {
        Value::String(s) => s.chars().count(),
        Value::Array(items) => items.len(),
        Value::Object(map) => map.len(),
        _ => return Err(JmespathError::function("could not compute length()")),
    };
    Ok(num(n as f64))
}

fn map(c: &mut Call<'_, '_, '_>) -> Result<Value, JmespathError> {
    let expr = c.expref(0)?;
    let items = c.take(1)?;
    let Value::Array(items) = items else {
        return Err(c.type_error(1, "Array"));
    };
    let mut out = Vec::with_capacity(items.len());
    for item in &items {
        out.push(c.apply(expr, item)?);
    }
    Ok(Value::Array(out))
}

fn extreme(c: &mut Call<'_, '_, '_>, want: Ordering) -> Result<Value, JmespathError> {
    let items = c.array(0)?;
    let mut best: Option<&Value> = None;
    for item in items {
        best = match best {
            None => Some(item),
            Some(current) => {
                if crate::jmespath::value::compare_scalars(item, current) == Some(want) {
                    Some(item)
                } else {
                    Some(current)
                }
            }
        };
    }
    Ok(best.cloned().unwrap_or(Value::Null))
}

fn extreme_by(c: &mut Call<'_, '_, '_>, want: Ordering) -> Result<Value, JmespathError> {
    let expr = c.expref(1)?;
    let Value::Array(items) = c.take(0)? else {
        return Err(c.type_error(0, "Array"));
    };
    let mut iter = items.into_iter();
    let Some(first) = iter.next() else {
        return Ok(Value::Null);
    };
    let first_key = c.apply(expr, &first)?;
    let expect_number = match first_key {
        Value::Number(_) => true,
        Value::String(_) => false,
        _ => {
            return Err(JmespathError::function(
                "invalid type, must be number of string",
            ))
        }
    };
    let mut best = (first_key, first);
    for item in iter {
        let key = c.apply(expr, &item)?;
        let matches_kind = if expect_number {
            key.is_number()
        } else {
            key.is_string()
        };
        if !matches_kind {
            return Err(JmespathError::function(if expect_number {
                "invalid type, must be number"
            } else {
                "invalid type, must be string"
            }));
        }
        if crate::jmespath::value::compare_scalars(&key, &best.0) == Some(want) {
            best = (key, item);
        }
    }
    Ok(best.1)
}

fn merge(c: &mut Call<'_, '_, '_>) -> Result<Value, JmespathError> {
    let mut out = Map::new();
    for i in 0..c.len() {
        match c.take(i)? {
            Value::Object(map) => {
                for (k, v) in map {
                    out.insert(k, v);
                }
            }
            other => {
                return Err(JmespathError::function(format!(
                    "Invalid type for: {}, expected: []jmespath.JpType{{\"object\"}}",
                    crate::jmespath::value::go_debug(&other)
                )))
            }
        }
    }
    Ok(Value::Object(out))
}

fn not_null(c: &mut Call<'_, '_, '_>) -> Result<Value, JmespathError> {
    for i in 0..c.len() {
        if !c.value(i).is_null() {
            return c.take(i);
        }
    }
    Ok(Value::Null)
}

fn reverse(c: &mut Call<'_, '_, '_>) -> Result<Value, JmespathError> {
    match c.take(0)? {
        Value::String(s) => Ok(Value::String(s.chars().rev().collect())),
        Value::Array(mut items) => {
            items.reverse();
            Ok(Value::Array(items))
        }
        _ => Err(c.type_error(0, "Array")),
    }
}

fn sort(c: &mut Call<'_, '_, '_>) -> Result<Value, JmespathError> {
    let Value::Array(mut items) = c.take(0)? else {
        return Err(c.type_error(0, "Array"));
    };
    items.sort_by(|a, b| crate::jmespath::value::compare_scalars(a, b).unwrap_or(Ordering::Equal));
    Ok(Value::Array(items))
}

fn sort_by(c: &mut Call<'_, '_, '_>) -> Result<Value, JmespathError> {
    let expr = c.expref(1)?;
    let Value::Array(items) = c.take(0)? else {
        return Err(c.type_error(0, "Array"));
    };
    if items.len() < 2 {
        return Ok(Value::Array(items));
    }
    let mut keyed = Vec::with_capacity(items.len());
    for item in items {
        let key = c.apply(expr, &item)?;
        keyed.push((key, item));
    }
    let expect_number = match keyed.first().map(|(k, _)| k) {
        Some(Value::Number(_)) => true,
        Some(Value::String(_)) => false,
        _ => {
            return Err(JmespathError::function(
                "invalid type, must be number of string",
            ))
        }
    };
    let consistent = keyed.iter().all(|(k, _)| {
        if expect_number {
            k.is_number()
        } else {
            k.is_string()
        }
    });
    if !consistent {
        return Err(JmespathError::function("error in sort_by comparison"));
    }
    keyed.sort_by(|(a, _), (b, _)| {
        crate::jmespath::value::compare_scalars(a, b).unwrap_or(Ordering::Equal)
    });
    Ok(Value::Array(keyed.into_iter().map(|(_, v)| v).collect()))
}

fn to_array(c: &mut Call<'_, '_, '_>) -> Result<Value, JmespathError> {
    match c.take(0)? {
        Value::Array(items) => Ok(Value::Array(items)),
        other => Ok(Value::Array(vec![other])),
    }
}

fn to_number(c: &mut Call<'_, '_, '_>) -> Result<Value, JmespathError> {
    Ok(match c.value(0) {
        Value::Number(n) => Value::Number(n.clone()),
        Value::String(s) => parse_go_float(s).map_or(Value::Null, num),
        _ => Value::Null,
    })
}

/// `strconv.ParseFloat(s, 64)` for the decimal forms Go accepts.
pub(crate) fn parse_go_float(s: &str) -> Option<f64> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let valid = !body.is_empty()
        && body
            .chars()
            .all(|ch| ch.is_ascii_digit() || matches!(ch, '.' | 'e' | 'E' | '+' | '-' | '_'))
        && body
            .chars()
            .next()
            .is_some_and(|ch| ch.is_ascii_digit() || ch == '.');
    if !valid || body.contains('_') {
        return None;
    }
    s.parse::<f64>().ok().filter(|f| f.is_finite())
}

fn to_string(c: &mut Call<'_, '_, '_>) -> Result<Value, JmespathError> {
    match c.value(0) {
        Value::String(s) => Ok(Value::String(s.clone())),
        other => go_json(other)
            .map(Value::String)
            .map_err(|_| JmespathError::limit("value is nested too deeply to print")),
    }
}
