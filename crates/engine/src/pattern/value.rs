//! Scalar pattern values: literals, wildcards and the string operators (`!`, `|`, `&`, `>`, `<`,
//! `>=`, `<=`, ranges `a-b` / `a!-b`), with quantity and duration comparisons.
//!
//! Numbers in a pattern are compared the way Kyverno compares them: as 64-bit floats against
//! integers, floats or numeric strings in the resource.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::Value;

use crate::quantity::{parse_duration, Quantity};
use crate::wildcard::wildcard_match;

/// A compiled scalar pattern (anything that is not an object or a list).
#[derive(Debug, Clone)]
pub enum ScalarPattern {
    /// `null`: the value must be absent, null or a zero value (`0`, `""`, `false`).
    Null,
    Bool(bool),
    Number(f64),
    Text(TextPattern),
}

/// A string pattern: alternatives separated by `|`, each a conjunction of `&`-separated
/// conditions.
#[derive(Debug, Clone)]
pub struct TextPattern {
    raw: String,
    alternatives: Vec<Vec<Condition>>,
    /// The one text a value must have when the pattern is a plain literal (one alternative,
    /// no operator, wildcard, quantity or duration), as most pattern values are: matched by
    /// comparing texts instead of through the conditions.
    literal: Option<String>,
}

#[derive(Debug, Clone)]
enum Condition {
    Compare(Compare),
    /// `lo-hi`: `>= lo` and `<= hi`.
    InRange(Compare, Compare),
    /// `lo!-hi`: `< lo` or `> hi`.
    NotInRange(Compare, Compare),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Equal,
    NotEqual,
    More,
    Less,
    MoreEqual,
    LessEqual,
}

#[derive(Debug, Clone)]
struct Compare {
    op: Op,
    operand: String,
    duration: Option<i64>,
    quantity: Option<Quantity>,
    /// The operand as a whole number, when it is one.
    integer: Option<i64>,
}

impl ScalarPattern {
    /// Compiles a scalar JSON value; `None` for objects and lists.
    pub fn compile(value: &Value) -> Option<ScalarPattern> {
        Some(match value {
            Value::Null => ScalarPattern::Null,
            Value::Bool(b) => ScalarPattern::Bool(*b),
            Value::Number(n) => ScalarPattern::Number(n.as_f64().unwrap_or(f64::NAN)),
            Value::String(s) => ScalarPattern::Text(TextPattern::compile(s)),
            Value::Array(_) | Value::Object(_) => return None,
        })
    }

    /// Whether `value` (`None` when the field is absent) satisfies this pattern.
    pub fn matches(&self, value: Option<&Value>) -> bool {
        let value = value.unwrap_or(&Value::Null);
        match self {
            ScalarPattern::Null => match value {
                Value::Null => true,
                Value::Bool(b) => !b,
                Value::Number(n) => n.as_f64() == Some(0.0),
                Value::String(s) => s.is_empty(),
                Value::Array(_) | Value::Object(_) => false,
            },
            ScalarPattern::Bool(want) => value.as_bool() == Some(*want),
            ScalarPattern::Number(want) => match value {
                Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                    // An integer only equals a pattern without a fraction.
                    (Some(i), _) => want.fract() == 0.0 && (*want as i64) == i,
                    (None, Some(f)) => f == *want,
                    (None, None) => false,
                },
                Value::String(s) => s.parse::<f64>().is_ok_and(|f| f == *want),
                _ => false,
            },
            ScalarPattern::Text(text) => text.matches(value),
        }
    }

    /// The pattern as the user wrote it, for messages.
    pub fn describe(&self) -> String {
        match self {
            ScalarPattern::Null => "null".to_owned(),
            ScalarPattern::Bool(b) => b.to_string(),
            ScalarPattern::Number(n) => Value::from(*n).to_string(),
            ScalarPattern::Text(t) => format!("{:?}", t.raw),
        }
    }

    /// Whether this is the string `"*"` (which, as a map value, only requires presence).
    pub fn is_star(&self) -> bool {
        matches!(self, ScalarPattern::Text(t) if t.raw == "*")
    }
}

impl TextPattern {
    fn compile(raw: &str) -> TextPattern {
        let alternatives = raw
            .split('|')
            .map(|alt| {
                alt.trim_matches(' ')
                    .split('&')
                    .map(|c| Condition::compile(c.trim_matches(' ')))
                    .collect()
            })
            .collect::<Vec<Vec<Condition>>>();
        let literal = match alternatives.as_slice() {
            [conditions] => match conditions.as_slice() {
                [Condition::Compare(compare)] if compare.is_plain_equality() => {
                    Some(compare.operand.clone())
                }
                _ => None,
            },
            _ => None,
        };
        TextPattern {
            raw: raw.to_owned(),
            alternatives,
            literal,
        }
    }

    fn matches(&self, value: &Value) -> bool {
        if value.as_str() == Some(self.raw.as_str()) {
            return true;
        }
        if let Some(literal) = &self.literal {
            // What the one equality condition below finds: no wildcard, so equal texts.
            return comparable_text(value).is_some_and(|text| *text == **literal);
        }
        self.alternatives
            .iter()
            .any(|conditions| conditions.iter().all(|c| c.matches(value)))
    }
}

impl Condition {
    fn compile(text: &str) -> Condition {
        let prefixed = [
            (">=", Op::MoreEqual),
            ("<=", Op::LessEqual),
            (">", Op::More),
            ("<", Op::Less),
            ("!", Op::NotEqual),
        ];
        // Operators need at least two characters in total: "!" or ">" alone are literals.
        if text.len() >= 2 {
            for (prefix, op) in prefixed {
                if let Some(rest) = text.strip_prefix(prefix) {
                    return Condition::Compare(Compare::new(op, rest.trim()));
                }
            }
            if let Some((lo, hi)) = split_range(text, "!-") {
                return Condition::NotInRange(
                    Compare::new(Op::Less, lo),
                    Compare::new(Op::More, hi),
                );
            }
            if let Some((lo, hi)) = split_range(text, "-") {
                return Condition::InRange(
                    Compare::new(Op::MoreEqual, lo),
                    Compare::new(Op::LessEqual, hi),
                );
            }
        }
        Condition::Compare(Compare::new(Op::Equal, text.trim()))
    }

    fn matches(&self, value: &Value) -> bool {
        match self {
            Condition::Compare(c) => c.matches(value),
            Condition::InRange(lo, hi) => lo.matches(value) && hi.matches(value),
            Condition::NotInRange(lo, hi) => lo.matches(value) || hi.matches(value),
        }
    }
}

/// Splits a range `lo<sep>hi` (`-` in range, `!-` out of range) where both ends look like
/// `[-+|]?digits[.digits][letters]`, as Kyverno's range regexes read them: the one range
/// parser for patterns and condition values.
pub(crate) fn split_range<'a>(text: &'a str, separator: &str) -> Option<(&'a str, &'a str)> {
    let lo_len = range_endpoint_len(text)?;
    let (lo, rest) = text.split_at(lo_len);
    let hi = rest.strip_prefix(separator)?;
    (range_endpoint_len(hi)? == hi.len()).then_some((lo, hi))
}

fn range_endpoint_len(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = usize::from(matches!(bytes.first(), Some(b'-' | b'+' | b'|')));
    let digits = bytes
        .get(i..)?
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits == 0 {
        return None;
    }
    i += digits;
    if bytes.get(i) == Some(&b'.') {
        let fraction = bytes
            .get(i + 1..)?
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if fraction > 0 {
            i += 1 + fraction;
        }
    }
    i += bytes
        .get(i..)?
        .iter()
        .take_while(|b| b.is_ascii_alphabetic())
        .count();
    Some(i)
}

impl Compare {
    fn new(op: Op, operand: &str) -> Compare {
        let quantity = Quantity::parse(operand);
        Compare {
            op,
            operand: operand.to_owned(),
            duration: parse_duration(operand),
            integer: quantity.as_ref().and_then(Quantity::as_exact_i64),
            quantity,
        }
    }

    fn matches(&self, value: &Value) -> bool {
        // A JSON integer against a whole-number operand: what the quantity comparison below
        // finds, without writing the integer out and parsing it back. (Only 0 is both an
        // integer's text and a duration, and there both comparisons agree; the guard keeps
        // the order below anyway.)
        if let (Some(want), Value::Number(number)) = (self.integer, value) {
            if let Some(got) = number.as_i64() {
                if self.duration.is_none() || got != 0 {
                    return self.holds(got.cmp(&want));
                }
            }
        }
        // Durations first, then quantities, then plain (wildcard) string comparison.
        if let Some(want) = self.duration {
            if let Some(got) = numeric_text(value).as_deref().and_then(parse_duration) {
                return self.holds(got.cmp(&want));
            }
        }
        if let Some(want) = &self.quantity {
            if let Some(got) = numeric_text(value).as_deref().and_then(Quantity::parse) {
                return self.holds(got.cmp(want));
            }
        }
        let Some(text) = comparable_text(value) else {
            return false;
        };
        match self.op {
            Op::Equal => wildcard_match(&self.operand, &text),
            Op::NotEqual => !wildcard_match(&self.operand, &text),
            // Ordering operators do not apply to plain strings.
            Op::More | Op::Less | Op::MoreEqual | Op::LessEqual => false,
        }
    }

    /// `=` against an operand that is only text: no wildcard, not a quantity or duration.
    fn is_plain_equality(&self) -> bool {
        self.op == Op::Equal
            && self.duration.is_none()
            && self.quantity.is_none()
            && self.integer.is_none()
            && !crate::wildcard::has_wildcard(&self.operand)
    }

    fn holds(&self, ordering: Ordering) -> bool {
        match self.op {
            Op::Equal => ordering == Ordering::Equal,
            Op::NotEqual => ordering != Ordering::Equal,
            Op::More => ordering == Ordering::Greater,
            Op::Less => ordering == Ordering::Less,
            Op::MoreEqual => ordering != Ordering::Less,
            Op::LessEqual => ordering != Ordering::Greater,
        }
    }
}

/// The text a value is parsed from for duration and quantity comparisons. A missing or null
/// value counts as `"0"`, floats use six decimals.
fn numeric_text(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::Null => Some(Cow::Borrowed("0")),
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (None, Some(u), _) => u.to_string(),
            (None, None, Some(f)) => format!("{f:.6}"),
            (None, None, None) => return None,
        })),
        Value::Bool(_) | Value::Array(_) | Value::Object(_) => None,
    }
}

/// The text a value is wildcard-matched as: strings as-is, integers in decimal, floats in Go's
/// shortest exponent form (`1.5E+00`), booleans as `true`/`false`. Null, lists and objects have
/// none, so they never match (not even with `!`). Borrowed where the value has the text: a
/// copy of every string compared was most of a scalar match.
fn comparable_text(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Some(Cow::Owned(i.to_string())),
            (None, Some(u), _) => Some(Cow::Owned(u.to_string())),
            (None, None, Some(f)) => Some(Cow::Owned(go_exponent_format(f))),
            (None, None, None) => None,
        },
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// Formats like Go's `strconv.FormatFloat(f, 'E', -1, 64)`.
fn go_exponent_format(f: f64) -> String {
    let rust = format!("{f:E}");
    let Some((mantissa, exponent)) = rust.split_once('E') else {
        return rust;
    };
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let sign = if exponent < 0 { '-' } else { '+' };
    format!("{mantissa}E{sign}{:02}", exponent.abs())
}

/// A short rendering of a resource value for messages.
pub fn describe_value(value: Option<&Value>) -> String {
    match value {
        None => "nothing (field is missing)".to_owned(),
        Some(Value::Object(_)) => "an object".to_owned(),
        Some(Value::Array(items)) => format!("a list of {} item(s)", items.len()),
        Some(v) => {
            let text = v.to_string();
            if text.chars().count() > 120 {
                format!("{}…", text.chars().take(120).collect::<String>())
            } else {
                text
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(value: Value, pattern: Value) -> bool {
        ScalarPattern::compile(&pattern)
            .map(|p| p.matches(Some(&value)))
            .unwrap_or(false)
    }

    /// A plain literal is matched by comparing texts; every kind of value must come out as it
    /// does through the general conditions, which `x&x` (the same condition twice, so not a
    /// plain literal) goes through.
    #[test]
    fn plain_literals_match_as_their_conditions_do() {
        let literal = |raw: &str| match ScalarPattern::compile(&json!(raw)) {
            Some(ScalarPattern::Text(text)) => text.literal.is_some(),
            _ => false,
        };
        assert!(literal("false"));
        assert!(literal("RuntimeDefault"));
        for not_literal in ["10", "1h", "a*", "a|b", "!a", ">1", "1-5", "a&a"] {
            assert!(
                !literal(not_literal),
                "{not_literal} is not a plain literal"
            );
        }
        let values = [
            json!(false),
            json!(true),
            json!("false"),
            json!("False"),
            json!(null),
            json!(12),
            json!(-3),
            json!(1.5),
            json!(["false"]),
            json!({"false": 1}),
            json!("12"),
            json!("1.5E+00"),
        ];
        for raw in ["false", "true", "12", "-3", "1.5E+00", "abc"] {
            for value in &values {
                let fast = check(value.clone(), json!(raw));
                let general = check(value.clone(), json!(format!("{raw}&{raw}")));
                assert_eq!(fast, general, "{raw:?} against {value}");
            }
        }
        assert!(check(json!(false), json!("false")));
        assert!(!check(json!(true), json!("false")));
        assert!(!check(json!(null), json!("false")));
    }

    #[test]
    fn go_float_format() {
        assert_eq!(go_exponent_format(1.5), "1.5E+00");
        assert_eq!(go_exponent_format(100.25), "1.0025E+02");
        assert_eq!(go_exponent_format(0.001), "1E-03");
        assert_eq!(go_exponent_format(1e100), "1E+100");
    }

    /// A JSON integer compared by value must match exactly as its decimal text does.
    #[test]
    fn integers_compare_as_their_text_does() {
        let operands = [
            ">0", "<1000", ">=1Ki", "<=1k", "1e3", "!0", "0", "-5", ">-5", "!=1024", "5m", ">0.5",
            "<1h", "1*", "abc",
        ];
        let values = [-7i64, -5, 0, 1, 5, 999, 1000, 1024, 3000, i64::MAX];
        for operand in operands {
            for value in values {
                assert_eq!(
                    check(json!(value), json!(operand)),
                    check(json!(value.to_string()), json!(operand)),
                    "{value} against {operand:?}"
                );
            }
        }
        assert!(check(json!(1024), json!(">=1Ki")));
        assert!(!check(json!(1023), json!(">=1Ki")));
        assert!(check(json!(0), json!("<1h")));
    }

    // Expectations from Kyverno's documented value semantics and its pattern test table.
    #[test]
    fn kyverno_value_table() {
        assert!(check(json!(true), json!(true)));
        assert!(!check(json!(true), json!(false)));
        assert!(!check(json!("true"), json!(true)));
        assert!(check(json!(true), json!("true")));
        assert!(check(json!(7), json!(7.0)));
        assert!(check(json!(7.0), json!(7)));
        assert!(!check(json!(7.000001), json!(7)));
        assert!(!check(json!(8), json!(7)));
        assert!(check(json!(7.9914), json!(7.9914)));
        assert!(!check(json!(7.9914), json!(7.99141)));
        assert!(check(json!("7"), json!(7)));
        assert!(check(json!(""), Value::Null));
        assert!(check(json!(0), Value::Null));
        assert!(check(json!(0.0), Value::Null));
        assert!(check(json!(false), Value::Null));
        assert!(!check(json!("value"), Value::Null));
        assert!(!check(json!(1), Value::Null));
        assert!(!check(json!(true), Value::Null));
        assert!(check(
            json!("10.100.11.54"),
            json!("192.168.88.1 | 10.100.11.*")
        ));
        assert!(check(json!("10"), json!(">1 & <20")));
        assert!(check(json!("32"), json!(">1 & <20 | >31 & <33")));
        assert!(!check(json!("21"), json!(">1 & <20 | >31 & <33")));
        assert!(check(json!(4), json!(">= 3")));
        for (v, p, want) in [
            (json!(0), "0-2", true),
            (json!(2), "0-2", true),
            (json!(3), "0-2", false),
            (json!(0), "10!-20", true),
            (json!(15), "10!-20", false),
            (json!(25), "10!-20", true),
            (json!(0), "0.00001-2.00001", false),
            (json!(2), "0.00001-2.00001", true),
            (json!(2.0001), "0.00001-2.00001", false),
            (json!(2.0001), "0.00001!-2.00001", true),
            (json!(2), "2-2", true),
            (json!(2), "2!-2", false),
            (json!(2.99999), "2.99998-3", true),
            (json!(3.00001), "2.99998!-3", true),
            (json!("256Mi"), "128Mi-512Mi", true),
            (json!("1024Mi"), "128Mi-512Mi", false),
            (json!("64Mi"), "128Mi!-512Mi", true),
            (json!("256Mi"), "128Mi!-512Mi", false),
        ] {
            assert_eq!(check(v.clone(), json!(p)), want, "{v} vs {p}");
        }
        assert!(check(json!("1024Mi"), json!("1Gi")));
        assert!(check(json!("0.2"), json!("200m")));
        assert!(check(json!(1024), json!("1024")));
        assert!(!check(json!("2048"), json!("1024")));
        assert!(!check(json!("gii"), json!("1024Gi")));
        assert!(check(json!("1Gi"), json!(">1000Mi")));
        assert!(check(json!("1G"), json!("<1Gi")));
        assert!(check(json!("500m"), json!(">=0.5")));
        assert!(check(json!("0.2"), json!("!.5")));
        assert!(check(json!(7.00001), json!(">7.000001")));
        assert!(!check(json!(6.000000001), json!("<6")));
        assert!(check(json!("5.16.5-arch1-1"), json!("!5.10.84-1")));
        assert!(!check(json!("5.10.84-1"), json!("!5.10.84-1")));
        assert!(!check(json!("5.15.2-1"), json!("!5.10.84-1 & !5.15.2-1")));
        assert!(check(json!("90m"), json!(">1h")));
        assert!(check(json!("1h"), json!("60m")));
        assert!(!check(json!("anything"), json!(">abc")));
        assert!(check(json!(5), json!("?*")));
        assert!(check(json!(1.5), json!("1.5*")));
        assert!(!check(Value::Null, json!("!foo")));
        assert!(check(json!("a|b"), json!("a|b")));
        // Odd operator-like strings are literals.
        assert!(check(json!("=>1"), json!("=>1")));
        assert!(check(json!("!"), json!("!")));
    }

    #[test]
    fn missing_value_counts_as_zero_for_numeric_comparisons() {
        let p = |s: &str| ScalarPattern::compile(&json!(s)).unwrap_or(ScalarPattern::Null);
        assert!(p("<1Gi").matches(None));
        assert!(p("0").matches(None));
        assert!(!p("1Gi").matches(None));
        assert!(!p("?*").matches(None));
        assert!(!p("").matches(None));
    }
}
