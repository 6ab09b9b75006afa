//! Kyverno's condition operators (`preconditions`, `deny.conditions`) and the `any`/`all` blocks.
//!
//! Evaluation works on already-substituted JSON values and never fails: like Kyverno, a key and
//! value that cannot be compared (wrong types, unparsable strings) make the condition false.
//! Numbers are compared as float64, because Kyverno sees every JSON number as one.
//!
//! Which representation wins when a string could be several things follows Kyverno's order:
//! durations first (`"1h"`, and a plain number counts as seconds next to one), then Kubernetes
//! quantities (`"1Gi"`), then floats, then semantic versions; `*`/`?` wildcards apply last, to
//! plain strings only.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use crate::pattern::{split_range, ScalarPattern};
use crate::quantity::{go_format_float, parse_duration, Quantity};

/// Nesting depth beyond which deep comparison and stringification give up (hostile input).
const MAX_DEPTH: usize = 256;

/// A condition operator, as written in a policy's `operator:` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `Equals` (also the deprecated `Equal`).
    Equals,
    /// `NotEquals` (also the deprecated `NotEqual`).
    NotEquals,
    /// `In` — deprecated in favour of `AllIn`/`AnyIn`.
    In,
    /// `NotIn` — deprecated in favour of `AllNotIn`/`AnyNotIn`.
    NotIn,
    /// `AnyIn`: at least one key item is in the value set.
    AnyIn,
    /// `AllIn`: every key item is in the value set.
    AllIn,
    /// `AnyNotIn`: at least one key item is outside the value set.
    AnyNotIn,
    /// `AllNotIn`: no key item is in the value set.
    AllNotIn,
    /// `GreaterThan`
    GreaterThan,
    /// `GreaterThanOrEquals`
    GreaterThanOrEquals,
    /// `LessThan`
    LessThan,
    /// `LessThanOrEquals`
    LessThanOrEquals,
    /// `DurationGreaterThan` — deprecated; `GreaterThan` handles durations.
    DurationGreaterThan,
    /// `DurationGreaterThanOrEquals` — deprecated.
    DurationGreaterThanOrEquals,
    /// `DurationLessThan` — deprecated.
    DurationLessThan,
    /// `DurationLessThanOrEquals` — deprecated.
    DurationLessThanOrEquals,
}

impl Operator {
    const ALL: [Operator; 16] = [
        Operator::Equals,
        Operator::NotEquals,
        Operator::In,
        Operator::NotIn,
        Operator::AnyIn,
        Operator::AllIn,
        Operator::AnyNotIn,
        Operator::AllNotIn,
        Operator::GreaterThan,
        Operator::GreaterThanOrEquals,
        Operator::LessThan,
        Operator::LessThanOrEquals,
        Operator::DurationGreaterThan,
        Operator::DurationGreaterThanOrEquals,
        Operator::DurationLessThan,
        Operator::DurationLessThanOrEquals,
    ];

    /// The canonical spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::Equals => "Equals",
            Operator::NotEquals => "NotEquals",
            Operator::In => "In",
            Operator::NotIn => "NotIn",
            Operator::AnyIn => "AnyIn",
            Operator::AllIn => "AllIn",
            Operator::AnyNotIn => "AnyNotIn",
            Operator::AllNotIn => "AllNotIn",
            Operator::GreaterThan => "GreaterThan",
            Operator::GreaterThanOrEquals => "GreaterThanOrEquals",
            Operator::LessThan => "LessThan",
            Operator::LessThanOrEquals => "LessThanOrEquals",
            Operator::DurationGreaterThan => "DurationGreaterThan",
            Operator::DurationGreaterThanOrEquals => "DurationGreaterThanOrEquals",
            Operator::DurationLessThan => "DurationLessThan",
            Operator::DurationLessThanOrEquals => "DurationLessThanOrEquals",
        }
    }

    /// Whether Kyverno marks the operator deprecated (`In`, `NotIn`, `Duration*`).
    pub fn is_deprecated(self) -> bool {
        matches!(
            self,
            Operator::In
                | Operator::NotIn
                | Operator::DurationGreaterThan
                | Operator::DurationGreaterThanOrEquals
                | Operator::DurationLessThan
                | Operator::DurationLessThanOrEquals
        )
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An operator name Kyverno does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown condition operator {0:?}")]
pub struct UnknownOperator(pub String);

impl FromStr for Operator {
    type Err = UnknownOperator;

    /// Case-insensitive, like Kyverno's handler lookup; `Equal`/`NotEqual` are aliases.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("Equal") {
            return Ok(Operator::Equals);
        }
        if s.eq_ignore_ascii_case("NotEqual") {
            return Ok(Operator::NotEquals);
        }
        Operator::ALL
            .into_iter()
            .find(|op| op.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownOperator(s.to_owned()))
    }
}

/// One condition of an `any`/`all` block, with key and value already substituted; borrowed
/// from the policy where there was nothing to substitute.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition<'a> {
    pub key: Cow<'a, Value>,
    pub operator: Operator,
    pub value: Cow<'a, Value>,
    pub message: Option<String>,
}

impl Condition<'_> {
    /// Evaluates this condition.
    pub fn evaluate(&self) -> bool {
        evaluate(&self.key, self.operator, &self.value)
    }
}

/// Evaluates `key <operator> value` exactly as Kyverno does; incomparable operands give `false`.
pub fn evaluate(key: &Value, operator: Operator, value: &Value) -> bool {
    match operator {
        Operator::Equals => equals(key, value),
        Operator::NotEquals => not_equals(key, value),
        Operator::In => legacy_in(key, value, false),
        Operator::NotIn => legacy_in(key, value, true),
        Operator::AnyIn => any_in(key, value, false),
        Operator::AnyNotIn => any_in(key, value, true),
        Operator::AllIn => all_in(key, value, false),
        Operator::AllNotIn => all_in(key, value, true),
        Operator::GreaterThan => numeric(key, value, Comparison::Greater),
        Operator::GreaterThanOrEquals => numeric(key, value, Comparison::GreaterOrEqual),
        Operator::LessThan => numeric(key, value, Comparison::Less),
        Operator::LessThanOrEquals => numeric(key, value, Comparison::LessOrEqual),
        Operator::DurationGreaterThan => duration_only(key, value, Comparison::Greater),
        Operator::DurationGreaterThanOrEquals => {
            duration_only(key, value, Comparison::GreaterOrEqual)
        }
        Operator::DurationLessThan => duration_only(key, value, Comparison::Less),
        Operator::DurationLessThanOrEquals => duration_only(key, value, Comparison::LessOrEqual),
    }
}

/// Evaluates an `any`/`all` block like Kyverno, resolving each condition (substituting its
/// variables) only when it is reached, so that a condition after the deciding one can never
/// make the block an error:
///
/// - a present `any` list needs one true condition and stops at it (a present but empty
///   `any: []` is false); an absent one counts as true;
/// - then every `all` condition must be true; evaluation stops at the first false one (the
///   `all` list is evaluated even when `any` was false, as in Kyverno);
/// - the legacy plain list is an `all` list.
///
/// The message joins (with `"; "`) the non-empty messages of the conditions that decided the
/// outcome: on failure, the `any` conditions that were false and the first false `all`
/// condition; on success, the true `any` condition and the `all` conditions.
pub fn evaluate_block<'c, C, E>(
    any: Option<&'c [C]>,
    all: &'c [C],
    mut resolve: impl FnMut(&'c C) -> Result<Condition<'c>, E>,
) -> Result<(bool, Option<String>), E> {
    // Only messages are kept, by the outcome their condition had: most conditions have none,
    // and an empty list costs no allocation.
    let mut false_messages: Vec<String> = Vec::new();
    let mut true_messages: Vec<String> = Vec::new();
    let mut holds = |raw: &'c C| -> Result<bool, E> {
        let condition = resolve(raw)?;
        let held = evaluate(&condition.key, condition.operator, &condition.value);
        let messages = if held {
            &mut true_messages
        } else {
            &mut false_messages
        };
        messages.extend(condition.message.filter(|m| !m.is_empty()));
        Ok(held)
    };
    let mut any_result = true;
    if let Some(any) = any {
        any_result = false;
        for raw in any {
            if holds(raw)? {
                any_result = true;
                break;
            }
        }
    }
    let mut all_result = true;
    for raw in all {
        if !holds(raw)? {
            all_result = false;
            break;
        }
    }
    let messages = if any_result && all_result {
        &true_messages
    } else {
        &false_messages
    };
    Ok((
        any_result && all_result,
        (!messages.is_empty()).then(|| messages.join("; ")),
    ))
}

// ---- Equals / NotEquals ----

fn equals(key: &Value, value: &Value) -> bool {
    match key {
        Value::Bool(k) => value.as_bool() == Some(*k),
        Value::Number(k) => {
            let k = number_f64(k);
            match value {
                Value::Number(v) => number_f64(v) == k,
                Value::String(v) => go_parse_float(v).is_some_and(|v| v == k),
                _ => false,
            }
        }
        Value::String(k) => {
            if let Some((a, b)) = durations(Operand::of_str(k), Operand::of(value)) {
                return go_seconds(a) == go_seconds(b);
            }
            // A quantity key with a string value is compared as quantities only.
            if let (Some(k), Value::String(v)) = (Quantity::parse(k), value) {
                return Quantity::parse(v).is_some_and(|v| k == v);
            }
            match value {
                Value::String(pattern) => wildcard_match(pattern, k),
                _ => false,
            }
        }
        Value::Object(_) => value.is_object() && deep_equal(key, value, 0),
        Value::Array(_) => value.is_array() && deep_equal(key, value, 0),
        Value::Null => false,
    }
}

/// Not simply `!equals`: Kyverno answers `true` for type mismatches here (a quantity key with a
/// string value that is empty or not a quantity included), but `false` for a null key.
fn not_equals(key: &Value, value: &Value) -> bool {
    match key {
        Value::Bool(k) => value.as_bool() != Some(*k),
        Value::Number(k) => {
            let k = number_f64(k);
            match value {
                Value::Number(v) => number_f64(v) != k,
                Value::String(v) => go_parse_float(v).is_none_or(|v| v != k),
                _ => true,
            }
        }
        Value::String(k) => {
            if let Some((a, b)) = durations(Operand::of_str(k), Operand::of(value)) {
                return go_seconds(a) != go_seconds(b);
            }
            if let (Some(k), Value::String(v)) = (Quantity::parse(k), value) {
                return Quantity::parse(v).is_none_or(|v| k != v);
            }
            match value {
                Value::String(pattern) => !wildcard_match(pattern, k),
                _ => true,
            }
        }
        Value::Object(_) if value.is_object() => !deep_equal(key, value, 0),
        Value::Array(_) if value.is_array() => !deep_equal(key, value, 0),
        Value::Object(_) | Value::Array(_) => true,
        Value::Null => false,
    }
}

/// Go's `reflect.DeepEqual` on decoded JSON, where every number is a float64.
fn deep_equal(a: &Value, b: &Value, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => number_f64(x) == number_f64(y),
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| deep_equal(x, y, depth + 1))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| deep_equal(v, w, depth + 1)))
        }
        _ => false,
    }
}

// ---- GreaterThan & co. ----

#[derive(Clone, Copy, Debug)]
enum Comparison {
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
}

impl Comparison {
    fn holds(self, ordering: Option<Ordering>) -> bool {
        match (self, ordering) {
            (_, None) => false,
            (Comparison::Greater, Some(o)) => o == Ordering::Greater,
            (Comparison::GreaterOrEqual, Some(o)) => o != Ordering::Less,
            (Comparison::Less, Some(o)) => o == Ordering::Less,
            (Comparison::LessOrEqual, Some(o)) => o != Ordering::Greater,
        }
    }

    fn holds_f64(self, a: f64, b: f64) -> bool {
        self.holds(a.partial_cmp(&b))
    }
}

fn numeric(key: &Value, value: &Value, comparison: Comparison) -> bool {
    match key {
        Value::Number(k) => numeric_float_key(number_f64(k), value, comparison),
        Value::String(k) => numeric_string_key(k, value, comparison),
        _ => false,
    }
}

fn numeric_float_key(key: f64, value: &Value, comparison: Comparison) -> bool {
    match value {
        Value::Number(v) => comparison.holds_f64(key, number_f64(v)),
        Value::String(v) => {
            if let Some((a, b)) = durations(Operand::Number(key), Operand::of_str(v)) {
                return comparison.holds_f64(go_seconds(a), go_seconds(b));
            }
            go_parse_float(v).is_some_and(|v| comparison.holds_f64(key, v))
        }
        _ => false,
    }
}

fn numeric_string_key(key: &str, value: &Value, comparison: Comparison) -> bool {
    if let Some((a, b)) = durations(Operand::of_str(key), Operand::of(value)) {
        return comparison.holds_f64(go_seconds(a), go_seconds(b));
    }
    // Quantities come before floats: "1Gi", but also "500" next to "1k".
    if let (Some(k), Value::String(v)) = (Quantity::parse(key), value) {
        if let Some(v) = Quantity::parse(v) {
            return comparison.holds(Some(k.cmp(&v)));
        }
    }
    if let Some(k) = go_parse_float(key) {
        return numeric_float_key(k, value, comparison);
    }
    if let Ok(k) = semver::Version::parse(key) {
        return match value {
            Value::String(v) => semver::Version::parse(v)
                .is_ok_and(|v| comparison.holds(Some(k.cmp_precedence(&v)))),
            _ => false,
        };
    }
    false
}

/// The deprecated `Duration*` operators: durations only, a number counts as seconds.
fn duration_only(key: &Value, value: &Value, comparison: Comparison) -> bool {
    let as_duration = |v: &Value| match v {
        Value::Number(n) => Some(seconds_to_duration(number_f64(n))),
        Value::String(s) => parse_duration(s),
        _ => None,
    };
    match (as_duration(key), as_duration(value)) {
        (Some(k), Some(v)) => comparison.holds(Some(k.cmp(&v))),
        _ => false,
    }
}

/// A key or value as Kyverno's duration check sees it.
#[derive(Clone, Copy)]
enum Operand<'a> {
    Str(&'a str),
    Number(f64),
    Other,
}

impl<'a> Operand<'a> {
    fn of(value: &'a Value) -> Operand<'a> {
        match value {
            Value::String(s) => Operand::Str(s),
            Value::Number(n) => Operand::Number(number_f64(n)),
            _ => Operand::Other,
        }
    }

    fn of_str(s: &'a str) -> Operand<'a> {
        Operand::Str(s)
    }

    fn duration_string(self) -> Option<i64> {
        match self {
            // Kyverno does not let a bare "0" make the comparison a duration comparison.
            Operand::Str(s) if s != "0" => parse_duration(s),
            _ => None,
        }
    }

    fn number_seconds(self) -> Option<i64> {
        match self {
            Operand::Number(n) => Some(seconds_to_duration(n)),
            _ => None,
        }
    }
}

/// Both sides as nanoseconds when at least one is a duration string and the other is a
/// duration string or a number of seconds; `None` means "not a duration comparison".
fn durations(key: Operand<'_>, value: Operand<'_>) -> Option<(i64, i64)> {
    let key_duration = key.duration_string();
    let value_duration = value.duration_string();
    if key_duration.is_none() && value_duration.is_none() {
        return None;
    }
    let key_duration = key_duration.or_else(|| key.number_seconds())?;
    let value_duration = value_duration.or_else(|| value.number_seconds())?;
    Some((key_duration, value_duration))
}

/// Go's `time.Duration(f) * time.Second`: truncates the float, then multiplies with wrap-around.
fn seconds_to_duration(seconds: f64) -> i64 {
    // Go's float→int64 conversion of out-of-range values yields i64::MIN on amd64.
    let whole = if seconds.is_nan()
        || !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&seconds)
    {
        i64::MIN
    } else {
        seconds.trunc() as i64
    };
    whole.wrapping_mul(1_000_000_000)
}

/// Go's `Duration.Seconds()`.
fn go_seconds(nanos: i64) -> f64 {
    let seconds = nanos / 1_000_000_000;
    let rest = nanos % 1_000_000_000;
    seconds as f64 + rest as f64 / 1e9
}

fn number_f64(n: &serde_json::Number) -> f64 {
    n.as_f64().unwrap_or(f64::NAN)
}

/// Go's `strconv.ParseFloat(s, 64)`; `None` where Go returns an error (including overflow).
fn go_parse_float(s: &str) -> Option<f64> {
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    let lower = unsigned.to_ascii_lowercase();
    let special = matches!(lower.as_str(), "inf" | "infinity" | "nan");
    if special {
        // Go accepts a sign before "inf"/"infinity" but not before "nan".
        if lower == "nan" && unsigned.len() != s.len() {
            return None;
        }
        return s.parse().ok();
    }
    if !unsigned
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    let parsed: f64 = s.parse().ok()?;
    // Rust saturates overflow to infinity; Go reports it as an error.
    parsed.is_finite().then_some(parsed)
}

// ---- In / NotIn (deprecated) ----

fn legacy_in(key: &Value, value: &Value, negate: bool) -> bool {
    match key {
        Value::String(_) | Value::Number(_) => {
            let key = go_sprint_cow(key);
            match legacy_key_in(&key, value) {
                Some(found) => found != negate,
                None => false,
            }
        }
        Value::Array(items) => {
            // Kyverno requires string items here (anything else aborts the evaluation).
            let Some(keys) = items
                .iter()
                .map(|item| item.as_str().map(str::to_owned))
                .collect::<Option<Vec<String>>>()
            else {
                return false;
            };
            legacy_set_in(&keys, value, negate).unwrap_or(false)
        }
        _ => false,
    }
}

/// `Some(found)`, or `None` when the value has a type In cannot use.
fn legacy_key_in(key: &str, value: &Value) -> Option<bool> {
    match value {
        // Here the key is the pattern.
        Value::Array(items) => Some(items.iter().any(|v| wildcard_match(key, &go_sprint_cow(v)))),
        Value::String(v) => {
            if wildcard_match(v, key) {
                return Some(true);
            }
            let list = strict_json_string_list(v)?;
            Some(list.iter().any(|item| item == key))
        }
        _ => None,
    }
}

fn legacy_set_in(keys: &[String], value: &Value, negate: bool) -> Option<bool> {
    let set: Vec<String> = match value {
        Value::Array(items) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect::<Option<Vec<String>>>()?,
        Value::String(v) => {
            // Kyverno answers true here for NotIn as well.
            if keys.len() == 1 && keys.first().is_some_and(|k| k == v) {
                return Some(true);
            }
            strict_json_string_list(v)?
        }
        _ => return None,
    };
    let missing = keys.iter().any(|k| !set.contains(k));
    Some(if negate { missing } else { !missing })
}

// ---- AnyIn / AnyNotIn / AllIn / AllNotIn ----

/// A string key, or a list of them; strings are borrowed from the condition.
type Keys<'k> = Result<Cow<'k, str>, Vec<Cow<'k, str>>>;

fn scalar_or_list_keys(key: &Value) -> Option<Keys<'_>> {
    match key {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => Some(Ok(go_sprint_cow(key))),
        Value::Array(items) => Some(Err(items.iter().map(go_sprint_cow).collect())),
        _ => None,
    }
}

fn any_in(key: &Value, value: &Value, negate: bool) -> bool {
    match scalar_or_list_keys(key) {
        Some(Ok(key)) => match key_in_values(&key, value) {
            Some(found) => found != negate,
            None => false,
        },
        Some(Err(keys)) => any_set_in(&keys, value, negate).unwrap_or(false),
        None => false,
    }
}

fn all_in(key: &Value, value: &Value, negate: bool) -> bool {
    match scalar_or_list_keys(key) {
        Some(Ok(key)) => match key_in_values(&key, value) {
            Some(found) => found != negate,
            None => false,
        },
        Some(Err(keys)) => all_set_in(&keys, value, negate).unwrap_or(false),
        None => false,
    }
}

/// Whether one key is in the value set; `None` for a value type the operators reject.
fn key_in_values(key: &str, value: &Value) -> Option<bool> {
    match value {
        Value::Array(items) => Some(items.iter().any(|item| {
            let item = go_sprint_cow(item);
            wildcard_match(&item, key) || wildcard_match(key, &item)
        })),
        Value::String(v) => {
            if wildcard_match(v, key) {
                return Some(true);
            }
            if is_range(v) {
                return Some(validate_string_patterns(key, v));
            }
            let list = json_string_list_or_self(v)?;
            Some(list.iter().any(|item| item == key))
        }
        _ => None,
    }
}

/// The value set as strings for the list forms; `Err(range)` when the value is a range.
fn value_set<'v>(
    keys: &[Cow<'_, str>],
    value: &'v Value,
) -> Option<Result<Vec<Cow<'v, str>>, SetShortcut>> {
    match value {
        Value::Array(items) => Some(Ok(items.iter().map(go_sprint_cow).collect())),
        Value::Number(_) | Value::Bool(_) => Some(Ok(vec![go_sprint_cow(value)])),
        Value::String(v) => {
            if keys.len() == 1 && keys.first().is_some_and(|k| k.as_ref() == v.as_str()) {
                return Some(Err(SetShortcut::SingleKeyEqualsValue));
            }
            if is_range(v) {
                return Some(Err(SetShortcut::Range(v.clone())));
            }
            json_string_list_or_self(v).map(|list| Ok(list.into_iter().map(Cow::Owned).collect()))
        }
        _ => None,
    }
}

enum SetShortcut {
    SingleKeyEqualsValue,
    Range(String),
}

fn any_set_in(keys: &[Cow<'_, str>], value: &Value, negate: bool) -> Option<bool> {
    Some(match value_set(keys, value)? {
        Ok(set) => {
            if negate {
                keys.iter().any(|k| !matches_any(k, &set))
            } else {
                keys.iter().any(|k| matches_any(k, &set))
            }
        }
        Err(SetShortcut::SingleKeyEqualsValue) => !negate,
        Err(SetShortcut::Range(range)) => {
            if negate {
                // Kyverno turns "a-b" into the "outside" pattern "a!-b".
                let outside = range.replacen('-', "!-", 1);
                keys.iter().any(|k| validate_string_patterns(k, &outside))
            } else {
                keys.iter().any(|k| validate_string_patterns(k, &range))
            }
        }
    })
}

fn all_set_in(keys: &[Cow<'_, str>], value: &Value, negate: bool) -> Option<bool> {
    Some(match value_set(keys, value)? {
        Ok(set) => {
            if negate {
                !keys.iter().any(|k| matches_any(k, &set))
            } else {
                keys.iter().all(|k| matches_any(k, &set))
            }
        }
        Err(SetShortcut::SingleKeyEqualsValue) => !negate,
        Err(SetShortcut::Range(range)) => {
            if negate {
                !keys.iter().any(|k| validate_string_patterns(k, &range))
            } else {
                keys.iter().all(|k| validate_string_patterns(k, &range))
            }
        }
    })
}

/// Wildcards apply in both directions in the set operators.
fn matches_any(key: &str, set: &[Cow<'_, str>]) -> bool {
    set.iter()
        .any(|item| wildcard_match(key, item) || wildcard_match(item, key))
}

/// A string value that is JSON becomes the string list it encodes (`None` if it encodes
/// anything else); any other string is a one-item list.
fn json_string_list_or_self(v: &str) -> Option<Vec<String>> {
    match serde_json::from_str::<Value>(v) {
        Ok(json) => json_to_string_list(&json),
        Err(_) => Some(vec![v.to_owned()]),
    }
}

/// The deprecated operators require the string value to be a JSON string list.
fn strict_json_string_list(v: &str) -> Option<Vec<String>> {
    json_to_string_list(&serde_json::from_str::<Value>(v).ok()?)
}

/// What Go's `json.Unmarshal` into `[]string` accepts: null, or an array of strings/nulls.
fn json_to_string_list(json: &Value) -> Option<Vec<String>> {
    match json {
        Value::Null => Some(Vec::new()),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Some(s.clone()),
                Value::Null => Some(String::new()),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

// ---- range strings ("1-10", "1Gi!-2Gi") as Kyverno's pattern validation reads them ----

/// Whether a set value is a range (`a-b`), as Kyverno's `GetOperatorFromStringPattern` decides:
/// no comparison prefix, not an out-of-range `a!-b`.
fn is_range(pattern: &str) -> bool {
    pattern.len() >= 2
        && !pattern.starts_with(['>', '<', '!'])
        && split_range(pattern, "!-").is_none()
        && split_range(pattern, "-").is_some()
}

/// Kyverno checks keys against a range with its pattern validation: the pattern module's.
fn validate_string_patterns(value: &str, pattern: &str) -> bool {
    ScalarPattern::compile(&Value::String(pattern.to_owned()))
        .is_some_and(|p| p.matches(Some(&Value::String(value.to_owned()))))
}

// ---- helpers shared by the operators ----

/// Go's `fmt.Sprint` of a decoded JSON value (`64`, `1e+06`, `true`, `<nil>`, `[a b]`,
/// `map[k:v]`), which is how Kyverno turns set items into strings.
fn go_sprint(value: &Value) -> String {
    let mut out = String::new();
    write_go_sprint(value, &mut out, 0);
    out
}

/// [`go_sprint`], borrowing a string (which prints as itself) instead of copying it.
fn go_sprint_cow(value: &Value) -> Cow<'_, str> {
    match value {
        Value::String(s) => Cow::Borrowed(s),
        other => Cow::Owned(go_sprint(other)),
    }
}

fn write_go_sprint(value: &Value, out: &mut String, depth: usize) {
    if depth > MAX_DEPTH {
        out.push_str("...");
        return;
    }
    match value {
        Value::Null => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&go_format_float(number_f64(n))),
        Value::String(s) => out.push_str(s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_go_sprint(item, out, depth + 1);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Go prints map keys sorted.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push_str("map[");
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                write_go_sprint(v, out, depth + 1);
            }
            out.push(']');
        }
    }
}

pub use crate::wildcard::wildcard_match;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(cases: &[(Value, &str, Value, bool)]) {
        for (key, op, value, expected) in cases {
            let operator: Operator = op.parse().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                evaluate(key, operator, value),
                *expected,
                "{key} {op} {value}"
            );
        }
    }

    /// Every pairing of operand kinds — quantity, duration, number, numeric string, plain
    /// string, empty string, null — under the comparison operators, with the results Kyverno's
    /// operator handlers give (`pkg/engine/variables/operator`): durations are tried first and
    /// only from a string key or value, then quantities (string against string), then numbers,
    /// then semantic versions; `Equals` from a number key never reads a duration, and
    /// `NotEquals` is true for every mismatch except a null key.
    #[test]
    fn operators_over_mixed_operand_types() {
        let (q, d, n, ns, s, e, null) = (
            json!("1Gi"),
            json!("1h"),
            json!(3600),
            json!("1"),
            json!("abc"),
            json!(""),
            Value::Null,
        );
        #[rustfmt::skip]
        let table: &[(&Value, &Value, [bool; 4])] = &[
            //  key    value     Equals NotEquals GreaterThan LessThan
            (&q,    &q,    [true,  false, false, false]),
            (&q,    &d,    [false, true,  false, false]),
            (&q,    &n,    [false, true,  false, false]),
            (&q,    &ns,   [false, true,  true,  false]),
            (&q,    &s,    [false, true,  false, false]),
            (&q,    &e,    [false, true,  false, false]),
            (&q,    &null, [false, true,  false, false]),
            (&d,    &q,    [false, true,  false, false]),
            (&d,    &d,    [true,  false, false, false]),
            (&d,    &n,    [true,  false, false, false]),
            (&d,    &ns,   [false, true,  false, false]),
            (&d,    &s,    [false, true,  false, false]),
            (&d,    &e,    [false, true,  false, false]),
            (&d,    &null, [false, true,  false, false]),
            (&n,    &q,    [false, true,  false, false]),
            (&n,    &d,    [false, true,  false, false]),
            (&n,    &n,    [true,  false, false, false]),
            (&n,    &ns,   [false, true,  true,  false]),
            (&n,    &s,    [false, true,  false, false]),
            (&n,    &e,    [false, true,  false, false]),
            (&n,    &null, [false, true,  false, false]),
            (&ns,   &q,    [false, true,  false, true ]),
            (&ns,   &n,    [false, true,  false, true ]),
            (&s,    &s,    [true,  false, false, false]),
            (&s,    &e,    [false, true,  false, false]),
            (&s,    &null, [false, true,  false, false]),
            (&e,    &e,    [true,  false, false, false]),
            (&e,    &q,    [false, true,  false, false]),
            (&e,    &null, [false, true,  false, false]),
            (&null, &null, [false, false, false, false]),
            (&null, &e,    [false, false, false, false]),
            (&null, &q,    [false, false, false, false]),
        ];
        let operators = [
            Operator::Equals,
            Operator::NotEquals,
            Operator::GreaterThan,
            Operator::LessThan,
        ];
        for (key, value, expected) in table {
            for (operator, want) in operators.iter().zip(expected) {
                assert_eq!(
                    evaluate(key, *operator, value),
                    *want,
                    "{key} {operator} {value}"
                );
            }
        }
        // A duration key against a number of seconds, both ways: `Equals` reads the number as
        // seconds only when the key is the duration.
        check(&[
            (json!("1h"), "GreaterThan", json!(60), true),
            (json!(5), "LessThan", json!("1h"), true),
            (json!(3600), "Equals", json!("1h"), false),
            (json!("1Gi"), "GreaterThan", json!("1Mi"), true),
            (json!("1.2.3"), "GreaterThan", json!("1.2.0"), true),
        ]);
    }

    #[test]
    fn operator_names() {
        for op in Operator::ALL {
            assert_eq!(op.as_str().parse::<Operator>(), Ok(op));
        }
        assert_eq!("Equal".parse(), Ok(Operator::Equals));
        assert_eq!("NotEqual".parse(), Ok(Operator::NotEquals));
        assert_eq!("EQUALS".parse(), Ok(Operator::Equals));
        assert_eq!("anyin".parse(), Ok(Operator::AnyIn));
        let err = "Contains".parse::<Operator>().unwrap_err();
        assert!(err.to_string().contains("Contains"), "{err}");
        assert!("".parse::<Operator>().is_err());
        assert!(Operator::In.is_deprecated());
        assert!(Operator::DurationLessThan.is_deprecated());
        assert!(!Operator::AnyIn.is_deprecated());
    }

    #[test]
    fn equals() {
        check(&[
            (json!("kyverno"), "Equals", json!("kyverno"), true),
            (json!("kyverno"), "Equals", json!("kube*"), false),
            (json!("kyverno"), "Equals", json!("ky*"), true),
            (json!("kyverno"), "Equals", json!("ky?erno"), true),
            (json!("kyverno"), "Equals", json!("ky?rno"), false),
            (json!("*"), "Equals", json!("kyverno"), false),
            (json!(""), "Equals", json!(""), true),
            (json!("a"), "Equals", json!(""), false),
            // numbers compare as float64, numeric strings are parsed when the key is a number
            (json!(1), "Equals", json!(1.0), true),
            (json!(1), "Equals", json!("1"), true),
            (json!(1.5), "Equals", json!("1.5"), true),
            (json!(1), "Equals", json!("1.0"), true),
            (json!(1), "Equals", json!("one"), false),
            (json!(1), "Equals", json!(true), false),
            // a string key is not compared with a number value
            (json!("1"), "Equals", json!(1), false),
            // quantities
            (json!("1Gi"), "Equals", json!("1024Mi"), true),
            (json!("0.5"), "Equals", json!("500m"), true),
            (json!("1Gi"), "Equals", json!("1G"), false),
            // a quantity key never falls back to wildcards
            (json!("1Gi"), "Equals", json!("1*"), false),
            (json!("100"), "Equals", json!("1*"), false),
            // durations, and a number next to a duration counts as seconds
            (json!("1h"), "Equals", json!("60m"), true),
            (json!("1h"), "Equals", json!(3600), true),
            // ...but a number key only parses the string value as a float
            (json!(3600), "Equals", json!("1h"), false),
            (json!("1h"), "Equals", json!("1h1s"), false),
            // a bare "0" is not treated as a duration, and "0s" is not a quantity
            (json!("0"), "Equals", json!("0s"), false),
            (json!("0s"), "Equals", json!("0"), false),
            (json!("0s"), "Equals", json!("0ms"), true),
            (json!(true), "Equals", json!(true), true),
            (json!(true), "Equals", json!("true"), false),
            (json!(false), "Equals", json!(true), false),
            (
                json!({"a": 1, "b": [1, "x"]}),
                "Equals",
                json!({"b": [1.0, "x"], "a": 1}),
                true,
            ),
            (json!({"a": 1}), "Equals", json!({"a": 2}), false),
            (json!({"a": 1}), "Equals", json!("a"), false),
            (json!(["a", "b"]), "Equals", json!(["a", "b"]), true),
            (json!(["a", "b"]), "Equals", json!(["b", "a"]), false),
            (json!(["a"]), "Equals", json!("a"), false),
            // a null key never matches
            (json!(null), "Equals", json!(null), false),
            (json!(null), "Equals", json!(""), false),
            (json!(""), "Equals", json!(null), false),
        ]);
    }

    #[test]
    fn not_equals() {
        check(&[
            (json!("kyverno"), "NotEquals", json!("kyverno"), false),
            (json!("kyverno"), "NotEquals", json!("default"), true),
            (json!("kyverno"), "NotEquals", json!("ky*"), false),
            (json!("kyverno"), "NotEquals", json!(1), true),
            (json!(1), "NotEquals", json!(2), true),
            (json!(1), "NotEquals", json!("1"), false),
            (json!(1), "NotEquals", json!("x"), true),
            (json!(1), "NotEquals", json!(null), true),
            (json!(true), "NotEquals", json!("true"), true),
            (json!(true), "NotEquals", json!(false), true),
            (json!("1Gi"), "NotEquals", json!("1024Mi"), false),
            (json!("1Gi"), "NotEquals", json!("2Gi"), true),
            // quantity key with a non-quantity or empty string value: a mismatch, so true
            (json!("1Gi"), "NotEquals", json!("big"), true),
            (json!("1Gi"), "NotEquals", json!(""), true),
            (json!("2h"), "NotEquals", json!("120m"), false),
            (json!({"a": 1}), "NotEquals", json!({"a": 1}), false),
            (json!({"a": 1}), "NotEquals", json!({"a": 2}), true),
            (json!({"a": 1}), "NotEquals", json!("x"), true),
            (json!(["a"]), "NotEquals", json!(["a", "b"]), true),
            (json!(null), "NotEquals", json!("x"), false),
        ]);
    }

    #[test]
    fn numeric_comparisons() {
        check(&[
            (json!(10), "GreaterThan", json!(5), true),
            (json!(5), "GreaterThan", json!(5), false),
            (json!(5), "GreaterThanOrEquals", json!(5), true),
            (json!(4), "LessThan", json!(5), true),
            (json!(5), "LessThanOrEquals", json!(5.0), true),
            (json!(10), "GreaterThan", json!("5"), true),
            (json!("10"), "GreaterThan", json!(5), true),
            (json!("10"), "GreaterThan", json!("9"), true),
            (json!("1.5"), "LessThan", json!(2), true),
            // quantities win over numbers when both sides are strings
            (json!("1Gi"), "GreaterThan", json!("500Mi"), true),
            (json!("500Mi"), "GreaterThan", json!("1Gi"), false),
            (json!("1Gi"), "GreaterThanOrEquals", json!("1024Mi"), true),
            (json!("500m"), "LessThan", json!("1"), true),
            (json!("2"), "GreaterThan", json!("1500m"), true),
            (json!("1k"), "GreaterThan", json!("999"), true),
            // a quantity string against a number is not a quantity comparison
            (json!("1Gi"), "GreaterThan", json!(5), false),
            // durations, also against numbers of seconds
            (json!("2h"), "GreaterThan", json!("30m"), true),
            (json!("30m"), "GreaterThan", json!("2h"), false),
            (json!("90s"), "GreaterThan", json!(60), true),
            (json!(30), "LessThan", json!("1m"), true),
            (json!("1h"), "LessThanOrEquals", json!("60m"), true),
            // "5" is not a duration but is a float: compared with 1h as 5 seconds
            (json!("5"), "LessThan", json!("1h"), true),
            // semantic versions
            (json!("1.10.0"), "GreaterThan", json!("1.9.3"), true),
            (json!("1.2.3"), "GreaterThanOrEquals", json!("1.2.3"), true),
            (json!("1.2.3-alpha"), "LessThan", json!("1.2.3"), true),
            (
                json!("1.2.3+build1"),
                "GreaterThanOrEquals",
                json!("1.2.3+build2"),
                true,
            ),
            (
                json!("1.2.3+build1"),
                "GreaterThan",
                json!("1.2.3+build2"),
                false,
            ),
            (json!("1.2.3"), "GreaterThan", json!("not-a-version"), false),
            (json!("v1.2.3"), "GreaterThan", json!("v1.0.0"), false),
            (json!("1.2.3"), "GreaterThan", json!(1), false),
            // incomparable operands are false, never errors
            (json!("abc"), "GreaterThan", json!("abd"), false),
            (json!("abc"), "LessThan", json!("abd"), false),
            (json!(true), "GreaterThan", json!(false), false),
            (json!(null), "LessThan", json!(1), false),
            (json!([2]), "GreaterThan", json!(1), false),
            (json!(1), "LessThan", json!(null), false),
        ]);
    }

    #[test]
    fn deprecated_duration_operators() {
        check(&[
            (json!("2h"), "DurationGreaterThan", json!("30m"), true),
            (json!("30m"), "DurationGreaterThan", json!("2h"), false),
            (
                json!("1h"),
                "DurationGreaterThanOrEquals",
                json!("60m"),
                true,
            ),
            (json!("1h"), "DurationLessThan", json!(3601), true),
            (json!(60), "DurationLessThanOrEquals", json!("1m"), true),
            (json!(1.9), "DurationLessThan", json!("1500ms"), true),
            (json!("0"), "DurationLessThan", json!("1s"), true),
            (json!("1Gi"), "DurationGreaterThan", json!("1s"), false),
            (json!("1h"), "DurationGreaterThan", json!("x"), false),
            (json!(true), "DurationGreaterThan", json!("1s"), false),
        ]);
    }

    #[test]
    fn any_in_and_any_not_in() {
        check(&[
            (json!("kyverno"), "AnyIn", json!("kyverno"), true),
            (
                json!("kube-system"),
                "AnyIn",
                json!(["default", "kube-*"]),
                true,
            ),
            (json!("kyverno"), "AnyIn", json!("default"), false),
            // ranges read as Kyverno's range regexes read them: signed bounds, decimals, units
            (json!("-3"), "AnyIn", json!("-5-5"), true),
            (json!("-6"), "AnyIn", json!("-5-5"), false),
            (json!(["2"]), "AnyIn", json!("1.5-2.5"), true),
            (json!("1Gi"), "AnyIn", json!("512Mi-2Gi"), true),
            (json!("3Gi"), "AnyNotIn", json!("512Mi-2Gi"), true),
            (json!(64), "AnyIn", json!("64"), true),
            (json!(1), "AnyIn", json!([1, 2, 3]), true),
            (json!(2.2), "AnyIn", json!([1.1, 2.2, 3.3]), true),
            (json!(true), "AnyIn", json!("true"), true),
            // the docs' privileged-container example: a list of booleans against [true]
            (json!([false, true]), "AnyIn", json!([true]), true),
            (json!([false, false]), "AnyIn", json!([true]), false),
            (json!("CREATE"), "AnyIn", json!(["CREATE", "UPDATE"]), true),
            (json!("DELETE"), "AnyIn", json!(["CREATE", "UPDATE"]), false),
            (
                json!(["kube-system", "kube-public"]),
                "AnyIn",
                json!("kube-*"),
                true,
            ),
            (
                json!(["kube-system", "default"]),
                "AnyIn",
                json!("kube-system"),
                true,
            ),
            (
                json!(["default", "kyverno"]),
                "AnyIn",
                json!("kube-*"),
                false,
            ),
            (
                json!(["default", "kyverno"]),
                "AnyIn",
                json!(["kube-*", "ky*"]),
                true,
            ),
            (
                json!(["default", "kyverno"]),
                "AnyIn",
                json!(["kube-*", "kube-system"]),
                false,
            ),
            // wildcards work in both directions
            (json!(["ky*"]), "AnyIn", json!(["kyverno"]), true),
            (json!([]), "AnyIn", json!(["default"]), false),
            (json!(""), "AnyIn", json!(["default", "kyverno"]), false),
            (json!({"a": 1}), "AnyIn", json!("a"), false),
            (json!(null), "AnyIn", json!(["<nil>"]), false),
            // ranges in a string value
            (json!("5"), "AnyIn", json!("1-10"), true),
            (json!("0"), "AnyIn", json!("1-10"), false),
            (json!(5), "AnyIn", json!("1-10"), true),
            (json!(["0", "5"]), "AnyIn", json!("1-10"), true),
            (json!(["0", "20"]), "AnyIn", json!("1-10"), false),
            (json!("1536Mi"), "AnyIn", json!("1Gi-2Gi"), true),
            // JSON list encoded in a string
            (
                json!("apple"),
                "AnyIn",
                json!(r#"["apple", "banana"]"#),
                true,
            ),
            (
                json!("cherry"),
                "AnyIn",
                json!(r#"["apple", "banana"]"#),
                false,
            ),
            (
                json!(["apple", "cherry"]),
                "AnyIn",
                json!(r#"["apple", "banana"]"#),
                true,
            ),
            // a string value that is JSON but not a string list is unusable
            (json!("1"), "AnyIn", json!("[1, 2]"), false),
            (json!("a"), "AnyIn", json!(1), false),
            (json!(["1", "2"]), "AnyIn", json!(2), true),
            (json!("kyverno"), "AnyNotIn", json!("kyverno"), false),
            (
                json!("kube-system"),
                "AnyNotIn",
                json!(["default", "kube-*"]),
                false,
            ),
            (json!("kyverno"), "AnyNotIn", json!("default"), true),
            (json!(64), "AnyNotIn", json!("64"), false),
            (json!(1), "AnyNotIn", json!([1, 2, 3]), false),
            (json!(true), "AnyNotIn", json!(true), false),
            (
                json!(["kube-system", "kube-public"]),
                "AnyNotIn",
                json!("kube-*"),
                false,
            ),
            (
                json!(["kube-system", "default"]),
                "AnyNotIn",
                json!("kube-system"),
                true,
            ),
            (json!([1, 2, 3]), "AnyNotIn", json!(2), true),
            (json!([true, false]), "AnyNotIn", json!(true), true),
            (json!([true]), "AnyNotIn", json!(false), true),
            (
                json!(["default", "kyverno"]),
                "AnyNotIn",
                json!(["kube-*", "ky*"]),
                true,
            ),
            (json!([]), "AnyNotIn", json!(["default"]), false),
            (json!(""), "AnyNotIn", json!(["default", "kyverno"]), true),
            (json!(["5", "20"]), "AnyNotIn", json!("1-10"), true),
            (json!(["5", "6"]), "AnyNotIn", json!("1-10"), false),
            // an unusable value type is false for the negated operators too
            (json!("a"), "AnyNotIn", json!({"a": 1}), false),
        ]);
    }

    #[test]
    fn all_in_and_all_not_in() {
        check(&[
            (json!("kyverno"), "AllIn", json!("kyverno"), true),
            (
                json!(["kube-system", "kube-public"]),
                "AllIn",
                json!("kube-*"),
                true,
            ),
            (
                json!(["kube-system", "default"]),
                "AllIn",
                json!("kube-*"),
                false,
            ),
            (json!(["a", "b"]), "AllIn", json!(["a", "b", "c"]), true),
            (json!(["a", "d"]), "AllIn", json!(["a", "b", "c"]), false),
            (json!(["a", "b"]), "AllIn", json!(r#"["a","b"]"#), true),
            (json!([]), "AllIn", json!(["a"]), true),
            (json!(["2", "3"]), "AllIn", json!("1-10"), true),
            (json!(["2", "30"]), "AllIn", json!("1-10"), false),
            (json!("kyverno"), "AllNotIn", json!("kyverno"), false),
            (
                json!("kube-system"),
                "AllNotIn",
                json!(["default", "kube-*"]),
                false,
            ),
            (json!("kyverno"), "AllNotIn", json!("default"), true),
            (json!(64), "AllNotIn", json!("64"), false),
            (json!(64), "AllNotIn", json!("default"), true),
            (
                json!(["kube-system", "kube-public"]),
                "AllNotIn",
                json!("kube-*"),
                false,
            ),
            (
                json!(["kube-system", "default"]),
                "AllNotIn",
                json!("kube-system"),
                false,
            ),
            (
                json!(["default", "kyverno"]),
                "AllNotIn",
                json!("kube-*"),
                true,
            ),
            (
                json!(["default", "kyverno"]),
                "AllNotIn",
                json!(["kube-*", "kube-system"]),
                true,
            ),
            (
                json!(["default", "kyverno"]),
                "AllNotIn",
                json!(["kube-*", "ky*"]),
                false,
            ),
            (json!(["20", "30"]), "AllNotIn", json!("1-10"), true),
            (json!(["5", "30"]), "AllNotIn", json!("1-10"), false),
        ]);
    }

    #[test]
    fn deprecated_in_and_not_in() {
        check(&[
            (json!("a"), "In", json!(["a", "b"]), true),
            (json!("c"), "In", json!(["a", "b"]), false),
            // the key is the pattern for In
            (json!("a*"), "In", json!(["abc"]), true),
            (json!("abc"), "In", json!(["a*"]), false),
            (json!("a"), "In", json!("a"), true),
            (json!("a"), "In", json!(r#"["a","b"]"#), true),
            (json!("a"), "In", json!("b"), false),
            (json!(1), "In", json!([1, 2]), true),
            (json!(["a", "b"]), "In", json!(["a", "b", "c"]), true),
            (json!(["a", "d"]), "In", json!(["a", "b", "c"]), false),
            (json!(["a", 1]), "In", json!(["a", "1"]), false),
            (json!(["a"]), "In", json!(["a", 1]), false),
            (json!(true), "In", json!(["true"]), false),
            (json!("c"), "NotIn", json!(["a", "b"]), true),
            (json!("a"), "NotIn", json!(["a", "b"]), false),
            (json!("a"), "NotIn", json!("b"), false),
            (json!(["a", "d"]), "NotIn", json!(["a", "b"]), true),
            (json!(["a", "b"]), "NotIn", json!(["a", "b"]), false),
            // Kyverno's single-item shortcut answers true even for NotIn
            (json!(["a"]), "NotIn", json!("a"), true),
        ]);
    }

    #[test]
    fn mixed_types_and_sets() {
        let ips = json!(["1.1.1.1", "2.2.2.2", "3.3.3.3"]);
        check(&[
            (json!("1h"), "NotEquals", json!(3600), false),
            (json!("2h"), "Equals", json!(3600), false),
            (json!("2h"), "GreaterThan", json!(3600), true),
            (json!(3600), "GreaterThan", json!("1h"), false),
            (json!(3600), "GreaterThan", json!("30m"), true),
            (json!("30m"), "LessThan", json!(3600), true),
            (json!("1"), "LessThan", json!(10), true),
            (json!(1), "LessThan", json!("10"), true),
            (json!(-5), "GreaterThan", json!(-10), true),
            (json!(1.5), "In", json!([1, 1.5, 2]), true),
            (json!(5.5), "NotIn", json!([1, 1.5, 2]), true),
            (json!(["1.1.1.1", "2.2.2.2"]), "In", ips.clone(), true),
            (json!(["1.1.1.1", "4.4.4.4"]), "In", ips.clone(), false),
            (json!(["1.1.1.1", "5.5.5.5"]), "AnyIn", ips.clone(), true),
            (json!(["4.4.4.4", "5.5.5.5"]), "AnyIn", ips.clone(), false),
            (
                json!(["1.1.1.1", "5.5.5.5"]),
                "AllIn",
                json!(["1.1.1.1"]),
                false,
            ),
            (json!([1, 2]), "AllIn", json!([1, 2, 3, 4]), true),
            (json!([1, 5]), "AllIn", json!([1, 2, 3, 4]), false),
            (json!(1), "AllNotIn", json!([1, 2, 3]), false),
            (json!(5), "AllNotIn", json!([1, 2, 3]), true),
            (
                json!(["1.1.1.1", "4.4.4.4"]),
                "AllNotIn",
                ips.clone(),
                false,
            ),
            (json!(["5.5.5.5", "4.4.4.4"]), "AllNotIn", ips.clone(), true),
            (json!(["1.1.1.1", "4.4.4.4"]), "AnyNotIn", ips.clone(), true),
            (json!(["1.1.1.1", "2.2.2.2"]), "AnyNotIn", ips, false),
            // bare suffixes are zero-valued quantities to Kubernetes, so they compare equal
            (json!("k"), "Equals", json!("Mi"), true),
        ]);
    }

    fn cond(key: Value, op: Operator, value: Value, message: Option<&str>) -> Condition<'static> {
        Condition {
            key: Cow::Owned(key),
            operator: op,
            value: Cow::Owned(value),
            message: message.map(str::to_owned),
        }
    }

    #[test]
    fn any_all_blocks() {
        let yes = |m: Option<&str>| cond(json!("a"), Operator::Equals, json!("a"), m);
        let no = |m: Option<&str>| cond(json!("a"), Operator::Equals, json!("b"), m);
        let eval = |any: Option<&[Condition<'static>]>, all: &[Condition<'static>]| {
            evaluate_block(any, all, |c| Ok::<_, ()>(c.clone())).unwrap()
        };

        // empty block: true
        assert_eq!(eval(None, &[]), (true, None));
        // a present but empty `any` list is false
        assert_eq!(eval(Some(&[]), &[]), (false, None));
        assert_eq!(eval(Some(&[no(None), yes(None)]), &[]), (true, None));
        assert_eq!(
            eval(Some(&[no(Some("first")), no(Some("second"))]), &[]),
            (false, Some("first; second".to_owned()))
        );
        assert_eq!(
            eval(None, &[yes(Some("ok")), no(Some("bad")), no(Some("later"))]),
            (false, Some("bad".to_owned()))
        );
        assert_eq!(
            eval(Some(&[no(Some("any failed"))]), &[no(Some("all failed"))]),
            (false, Some("any failed; all failed".to_owned()))
        );
        // a passing `any` does not hide the failing `all`, and earlier false `any`
        // conditions are still reported
        assert_eq!(
            eval(Some(&[no(Some("x")), yes(Some("y"))]), &[no(Some("z"))]),
            (false, Some("x; z".to_owned()))
        );
        assert_eq!(
            eval(Some(&[yes(Some("matched"))]), &[yes(Some("also"))]),
            (true, Some("matched; also".to_owned()))
        );
    }

    /// Conditions are resolved in order and only until the outcome is decided, so an
    /// unresolvable condition after the deciding one is never an error.
    #[test]
    fn conditions_after_the_deciding_one_are_not_resolved() {
        // A fn, not a closure, so that each call may borrow its own list.
        fn resolve<'c>(
            c: &'c Result<Condition<'static>, &'static str>,
        ) -> Result<Condition<'c>, &'static str> {
            c.clone()
        }
        let yes = Ok(cond(json!("a"), Operator::Equals, json!("a"), None));
        let no = Ok(cond(json!("a"), Operator::Equals, json!("b"), None));
        let broken: Result<Condition<'static>, &'static str> = Err("cannot resolve");
        let list = |items: &[&Result<Condition<'static>, &'static str>]| -> Vec<_> {
            items.iter().map(|c| (*c).clone()).collect()
        };
        // `all` stops at the first false condition.
        assert_eq!(
            evaluate_block(None, &list(&[&no, &broken]), resolve),
            Ok((false, None))
        );
        assert_eq!(
            evaluate_block(None, &list(&[&yes, &broken]), resolve),
            Err("cannot resolve")
        );
        // `any` stops at the first true one.
        assert_eq!(
            evaluate_block(Some(&list(&[&yes, &broken])), &[], resolve),
            Ok((true, None))
        );
        // `all` is evaluated even when `any` was false.
        assert_eq!(
            evaluate_block(Some(&list(&[&no])), &list(&[&broken]), resolve),
            Err("cannot resolve")
        );
        assert_eq!(
            evaluate_block(Some(&list(&[&no])), &list(&[&no, &broken]), resolve),
            Ok((false, None))
        );
    }

    #[test]
    fn wildcards() {
        let cases = [
            ("*", "", true),
            ("*", "anything", true),
            ("", "", true),
            ("", "a", false),
            ("a*", "a", true),
            ("a*c", "abbbc", true),
            ("a*c", "abbbd", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("?", "", false),
            ("?", "é", true),
            ("*.example.com", "api.example.com", true),
            ("*.example.com", "example.com", false),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXcYb", false),
            ("**", "x", true),
            ("abc", "abc", true),
            ("abc", "abcd", false),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(
                wildcard_match(pattern, text),
                expected,
                "{pattern} ~ {text}"
            );
        }
        // pathological patterns stay fast
        let text = "a".repeat(20_000);
        let pattern = format!("{}b", "*a".repeat(50));
        assert!(!wildcard_match(&pattern, &text));
    }

    #[test]
    fn go_formatting_of_set_items() {
        assert_eq!(go_sprint(&json!(64)), "64");
        assert_eq!(go_sprint(&json!(1000000)), "1e+06");
        assert_eq!(go_sprint(&json!(2.5)), "2.5");
        assert_eq!(go_sprint(&json!(null)), "<nil>");
        assert_eq!(go_sprint(&json!(["a", 1, true])), "[a 1 true]");
        assert_eq!(go_sprint(&json!({"b": 1, "a": "x"})), "map[a:x b:1]");
    }

    #[test]
    fn go_float_parsing() {
        assert_eq!(go_parse_float("1.5"), Some(1.5));
        assert_eq!(go_parse_float("1e3"), Some(1000.0));
        assert_eq!(go_parse_float("-Inf"), Some(f64::NEG_INFINITY));
        assert!(go_parse_float("NaN").is_some_and(f64::is_nan));
        assert_eq!(go_parse_float("+NaN"), None);
        assert_eq!(go_parse_float("1e400"), None);
        assert_eq!(go_parse_float("1_000"), None);
        assert_eq!(go_parse_float(" 1"), None);
        assert_eq!(go_parse_float(""), None);
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let nested = |depth: usize| {
            let mut v = json!(1);
            for _ in 0..depth {
                v = json!([v]);
            }
            v
        };
        let (a, b) = (nested(1_000), nested(1_000));
        // Beyond the depth limit the comparison gives up instead of overflowing the stack.
        let _ = evaluate(&a, Operator::Equals, &b);
        let _ = evaluate(&a, Operator::NotEquals, &b);
        assert!(!evaluate(&a, Operator::AnyIn, &json!(["x"])));
        // Dismantle iteratively: dropping such a value recursively is itself deep.
        for mut v in [a, b] {
            while let Value::Array(mut items) = v {
                v = items.pop().unwrap_or(Value::Null);
            }
        }
    }
}
