//! Helpers over `serde_json::Value` that follow go-jmespath's view of JSON: every number is a
//! float64, equality is deep and numeric, and non-strings are printed the way Go's
//! `encoding/json` prints them (sorted keys, HTML-safe escapes).

use std::cmp::Ordering;
use std::fmt::Write as _;

use serde_json::{Number, Value};

/// Deepest value the recursive helpers here will walk before giving up.
pub(crate) const MAX_VALUE_DEPTH: usize = 512;

/// JMESPath type name of a value, as `type()` reports it.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// JMESPath falsiness: null, false, empty string, empty array and empty object are false;
/// every number (zero included) is true.
pub(crate) fn is_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(_) => true,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// A number as the float64 go-jmespath works with.
pub(crate) fn as_f64(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

/// Builds a JSON number from a float, keeping integral values integral so that `3` prints as
/// `3` (Go prints float64 3 as `3`). Non-finite values have no JSON form and become null.
pub(crate) fn num(value: f64) -> Value {
    if !value.is_finite() {
        return Value::Null;
    }
    // Integers up to 2^53 are exact in a float64; keep them as JSON integers.
    if value.fract() == 0.0 && value.abs() <= 9_007_199_254_740_992.0 {
        // Preserve the sign of zero as plain zero, as Go does when printing -0 as "-0"? Go
        // prints float64(-0) as "-0"; that corner is not worth a special case.
        return Value::Number(Number::from(value as i64));
    }
    Number::from_f64(value).map_or(Value::Null, Value::Number)
}

/// Deep equality with numbers compared as floats, as Go's `reflect.DeepEqual` sees decoded
/// JSON. Depth is bounded; values nested deeper than that compare unequal.
pub(crate) fn json_equal(a: &Value, b: &Value) -> bool {
    json_equal_at(a, b, 0)
}

/// [`json_equal`] for values found `depth` levels down in the values being compared.
pub(crate) fn json_equal_at(a: &Value, b: &Value, depth: usize) -> bool {
    if depth > MAX_VALUE_DEPTH {
        return false;
    }
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_equal_at(p, q, depth + 1))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal_at(v, w, depth + 1)))
        }
        _ => false,
    }
}

/// Orders two numbers or two strings; anything else is incomparable.
pub(crate) fn compare_scalars(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.as_str().cmp(y.as_str())),
        _ => None,
    }
}

/// Error from [`go_json`]: the value is nested too deeply to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TooDeep;

/// Serializes a value the way Go's `json.Marshal` does for decoded JSON: object keys sorted,
/// `<`, `>`, `&`, U+2028 and U+2029 escaped, numbers printed as float64.
pub(crate) fn go_json(value: &Value) -> Result<String, TooDeep> {
    let mut out = String::new();
    write_go_json(&mut out, value, 0)?;
    Ok(out)
}

fn write_go_json(out: &mut String, value: &Value, depth: usize) -> Result<(), TooDeep> {
    if depth > MAX_VALUE_DEPTH {
        return Err(TooDeep);
    }
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&go_number(n)),
        Value::String(s) => write_go_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_json(out, item, depth + 1)?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_string(out, key);
                out.push(':');
                if let Some(v) = map.get(key) {
                    write_go_json(out, v, depth + 1)?;
                }
            }
            out.push('}');
        }
    }
    Ok(())
}

fn write_go_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Prints a number as Go prints a float64 in JSON.
pub(crate) fn go_number(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    go_float(n.as_f64().unwrap_or(0.0))
}

/// Go's `encoding/json` float64 format: plain decimal between 1e-6 and 1e21, otherwise the
/// shortest exponent form with a two-digit positive exponent (`1e+21`, `1e-7`).
pub(crate) fn go_float(f: f64) -> String {
    let abs = f.abs();
    if abs == 0.0 || (1e-6..1e21).contains(&abs) {
        if f.fract() == 0.0 && abs < 1e21 {
            return format!("{f:.0}");
        }
        return format!("{f}");
    }
    let formatted = format!("{f:e}");
    let (mantissa, exponent) = formatted
        .split_once('e')
        .unwrap_or((formatted.as_str(), "0"));
    let exp: i32 = exponent.parse().unwrap_or(0);
    if exp < 0 {
        format!("{mantissa}e-{}", -exp)
    } else {
        format!("{mantissa}e+{exp:02}")
    }
}

/// Go's `%v` rendering of a decoded JSON value, used in type-error messages.
pub(crate) fn go_debug(value: &Value) -> String {
    let mut out = String::new();
    write_go_debug(&mut out, value, 0);
    out
}

fn write_go_debug(out: &mut String, value: &Value, depth: usize) {
    if depth > 16 {
        out.push_str("...");
        return;
    }
    match value {
        Value::Null => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let f = n.as_f64().unwrap_or(0.0);
            let _ = write!(out, "{}", crate::quantity::go_format_float(f));
        }
        Value::String(s) => out.push_str(s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_go_debug(out, item, depth + 1);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push_str("map[");
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(key);
                out.push(':');
                if let Some(v) = map.get(key) {
                    write_go_debug(out, v, depth + 1);
                }
            }
            out.push(']');
        }
    }
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 32)`: the shortest decimal that round-trips the
/// value as a float32. Kyverno uses it to turn numeric arguments into strings.
pub(crate) fn go_float32_string(f: f64) -> String {
    // Rust prints the shortest digits that round-trip the f32, as Go does.
    format!("{}", f as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_json_sorts_keys_and_escapes_html() {
        let v = json!({"b": 1, "a": "<x&y>", "c": [true, null, 1.5]});
        assert_eq!(
            go_json(&v).unwrap(),
            r#"{"a":"\u003cx\u0026y\u003e","b":1,"c":[true,null,1.5]}"#
        );
    }

    #[test]
    fn go_floats_match_encoding_json() {
        assert_eq!(go_float(3.0), "3");
        assert_eq!(go_float(-5.5), "-5.5");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(1e-7), "1e-7");
        assert_eq!(go_float(0.000001), "0.000001");
        assert_eq!(go_float(123456789.0), "123456789");
    }

    #[test]
    fn numbers_compare_as_floats() {
        assert!(json_equal(&json!(1), &json!(1.0)));
        assert!(json_equal(&json!({"a": [1, 2]}), &json!({"a": [1.0, 2.0]})));
        assert!(!json_equal(&json!("1"), &json!(1)));
    }

    #[test]
    fn integral_floats_become_integers() {
        assert_eq!(num(3.0), json!(3));
        assert_eq!(num(2.5), json!(2.5));
        assert_eq!(num(f64::NAN), Value::Null);
    }

    #[test]
    fn float32_formatting_matches_go() {
        assert_eq!(go_float32_string(123456789.0), "123456790");
        assert_eq!(go_float32_string(0.1), "0.1");
        assert_eq!(go_float32_string(42.0), "42");
    }
}
