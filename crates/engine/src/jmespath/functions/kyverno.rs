//! Kyverno's custom JMESPath functions, with its argument types and error messages.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};

use base64::Engine as _;
use regex::Regex;
use serde_json::{Map, Value};

use super::{Call, Def, Ty};
use crate::jmespath::arith::{self, ArithError, Operand};
use crate::jmespath::gotime;
use crate::jmespath::semver_range::{parse_version_or_zero, Range};
use crate::jmespath::value::{go_float32_string, json_equal, num};
use crate::jmespath::JmespathError;

const NUM: &[Ty] = &[Ty::Number];
const STR: &[Ty] = &[Ty::String];
const ARR: &[Ty] = &[Ty::Array];
const OBJ: &[Ty] = &[Ty::Object];
const ANY: &[Ty] = &[Ty::Any];
const STR_OR_NUM: &[Ty] = &[Ty::String, Ty::Number];
const OBJ_OR_ARR: &[Ty] = &[Ty::Object, Ty::Array];

macro_rules! def {
    ($name:literal, [$($arg:expr),*], $ret:literal, $note:literal, $handler:expr) => {
        Def { name: $name, args: &[$($arg),*], variadic: false, returns: $ret, note: $note, kyverno: true, handler: $handler }
    };
}

type Out = Result<Value, JmespathError>;

pub(super) static DEFS: &[Def] = &[
    def!("compare", [STR, STR], "number", "compares two strings byte by byte: -1, 0 or 1", compare),
    def!("equal_fold", [STR, STR], "boolean", "whether two strings are equal ignoring letter case", equal_fold),
    def!("replace", [STR, STR, STR, NUM], "string", "replaces the first N occurrences of a substring (all when N is negative)", replace),
    def!("replace_all", [STR, STR, STR], "string", "replaces every occurrence of a substring", |c| {
        let (s, old, new) = (c.str(0)?, c.str(1)?, c.str(2)?);
        replaced_len_ok("replace_all", s, old, new, usize::MAX)?;
        Ok(Value::String(s.replace(old, new)))
    }),
    def!("to_upper", [STR], "string", "upper-cases a string", |c| Ok(Value::String(c.str(0)?.to_uppercase()))),
    def!("to_lower", [STR], "string", "lower-cases a string", |c| Ok(Value::String(c.str(0)?.to_lowercase()))),
    def!("trim", [STR, STR], "string", "removes any of the given characters from both ends", trim),
    def!("trim_prefix", [STR, STR], "string", "removes a prefix when the string starts with it", |c| { let s = c.str(0)?; Ok(Value::String(s.strip_prefix(c.str(1)?).unwrap_or(s).to_owned())) }),
    def!("split", [STR, STR], "array[string]", "splits a string at every separator", split),
    def!("regex_replace_all", [STR, STR_OR_NUM, STR_OR_NUM], "string", "replaces regex matches; $1 and ${name} in the replacement expand to groups", |c| regex_replace(c, true)),
    def!("regex_replace_all_literal", [STR, STR_OR_NUM, STR_OR_NUM], "string", "replaces regex matches with the replacement taken literally", |c| regex_replace(c, false)),
    def!("regex_match", [STR, STR_OR_NUM], "boolean", "whether the regex matches anywhere in the second argument", regex_match),
    def!("pattern_match", [STR, STR_OR_NUM], "boolean", "wildcard match of the whole value: * is any run of characters, ? is one character", pattern_match),
    def!("label_match", [OBJ, OBJ], "boolean", "whether every key/value of the first object is present in the second", label_match),
    def!("to_boolean", [STR], "boolean", "'true' or 'false' in any letter case to a boolean", to_boolean),
    def!("add", [ANY, ANY], "any", "adds two numbers, quantities or durations", |c| arithmetic(c, arith::add)),
    def!("sum", [ARR], "any", "adds up an array of numbers, quantities or durations", sum),
    def!("subtract", [ANY, ANY], "any", "subtracts numbers, quantities or durations", |c| arithmetic(c, arith::subtract)),
    def!("multiply", [ANY, ANY], "any", "multiplies a number, quantity or duration by a number", |c| arithmetic(c, arith::multiply)),
    def!("divide", [ANY, ANY], "any", "divides numbers, quantities or durations; the divisor must not be zero", |c| arithmetic(c, arith::divide)),
    def!("modulo", [ANY, ANY], "any", "remainder of integral numbers, quantities or durations", |c| arithmetic(c, arith::modulo)),
    def!("round", [NUM, NUM], "number", "rounds to the given number of decimal places", round),
    def!("base64_decode", [STR], "string", "decodes standard base64", base64_decode),
    def!("base64_encode", [STR], "string", "encodes a string as standard base64", |c| Ok(Value::String(base64::engine::general_purpose::STANDARD.encode(c.str(0)?)))),
    def!("time_since", [STR, STR, STR], "string", "duration from the second time to the third (now when empty), parsed with a Go layout (RFC 3339 when empty)", time_since),
    def!("time_now", [], "string", "the current local time in RFC 3339", |c| Ok(Value::String(gotime::format_rfc3339(&c.env().now())))),
    def!("time_now_utc", [], "string", "the current UTC time in RFC 3339", |c| { let now = c.env().now().with_timezone(&chrono::Utc).fixed_offset(); Ok(Value::String(gotime::format_rfc3339(&now))) }),
    def!("path_canonicalize", [STR], "string", "cleans a file path: duplicate slashes, . and .. removed", |c| { let s = c.str(0)?; Ok(Value::String(if s.is_empty() { String::new() } else { clean_path(s) })) }),
    def!("truncate", [STR, NUM], "string", "keeps at most N characters of a string", truncate),
    def!("semver_compare", [STR, STR], "boolean", "whether a semantic version satisfies a range such as '>1.0.0 <2.0.0 || 3.x'", semver_compare),
    def!("parse_json", [STR], "any", "decodes JSON text", parse_json),
    def!("parse_yaml", [STR], "any", "decodes YAML text that can be expressed as JSON", parse_yaml),
    def!("lookup", [OBJ_OR_ARR, STR_OR_NUM], "any", "the value at a key of an object or an index of an array (null when absent)", lookup),
    def!("items", [OBJ_OR_ARR, STR, STR], "array", "turns an object (sorted by key) or array into [{key, value}] items with the given field names", items),
    def!("object_from_lists", [ARR, ARR], "object", "builds an object from a list of keys and a list of values", object_from_lists),
    def!("random", [STR], "string", "a random string matching a regular expression", random),
    def!("x509_decode", [STR], "object", "decodes a PEM certificate or certificate request (RSA keys) into an object", |c| crate::jmespath::x509::decode(c.str(0)?).map_err(|e| c.error(e))),
    def!("time_to_cron", [STR], "string", "cron expression (minute hour day month weekday) for an RFC 3339 time", time_to_cron),
    def!("time_add", [STR, STR], "string", "adds a Go duration to an RFC 3339 time", time_add),
    def!("time_parse", [STR, STR], "string", "parses a time with a Go layout (or epoch seconds when the layout is a number) into RFC 3339", time_parse),
    def!("time_utc", [STR], "string", "converts an RFC 3339 time to UTC", |c| { let t = rfc3339_arg(c, 0)?; Ok(Value::String(gotime::format_rfc3339(&t.with_timezone(&chrono::Utc).fixed_offset()))) }),
    def!("time_diff", [STR, STR], "string", "duration from the first RFC 3339 time to the second", |c| { let a = rfc3339_arg(c, 0)?; let b = rfc3339_arg(c, 1)?; Ok(Value::String(gotime::format_duration(gotime::sub(&b, &a)))) }),
    def!("time_before", [STR, STR], "boolean", "whether the first RFC 3339 time is before the second", |c| { let a = rfc3339_arg(c, 0)?; let b = rfc3339_arg(c, 1)?; Ok(Value::Bool(a < b)) }),
    def!("time_after", [STR, STR], "boolean", "whether the first RFC 3339 time is after the second", |c| { let a = rfc3339_arg(c, 0)?; let b = rfc3339_arg(c, 1)?; Ok(Value::Bool(a > b)) }),
    def!("time_between", [STR, STR, STR], "boolean", "whether an RFC 3339 time is strictly between a start and an end", |c| { let t = rfc3339_arg(c, 0)?; let s = rfc3339_arg(c, 1)?; let e = rfc3339_arg(c, 2)?; Ok(Value::Bool(t > s && t < e)) }),
    def!("time_truncate", [STR, STR], "string", "rounds an RFC 3339 time down to a multiple of a Go duration", time_truncate),
    def!("image_normalize", [STR], "string", "normalizes an image reference: default registry docker.io and tag latest", image_normalize),
    def!("is_external_url", [STR], "boolean", "whether a URL's host is neither loopback nor private", is_external_url),
    def!("sha256", [STR], "string", "hex SHA-256 digest of a string", |c| Ok(Value::String(hex(&sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(c.str(0)?.as_bytes())))))),
    def!("sha1", [STR], "string", "hex SHA-1 digest of a string", |c| Ok(Value::String(hex(&sha1::Digest::finalize(<sha1::Sha1 as sha1::Digest>::new_with_prefix(c.str(0)?.as_bytes())))))),
    def!("md5", [STR], "string", "hex MD5 digest of a string", |c| Ok(Value::String(hex(&md5::Digest::finalize(<md5::Md5 as md5::Digest>::new_with_prefix(c.str(0)?.as_bytes())))))),
];

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn compare(c: &mut Call<'_, '_, '_>) -> Out {
    let ord = c.str(0)?.cmp(c.str(1)?);
    Ok(num(match ord {
        std::cmp::Ordering::Less => -1.0,
        std::cmp::Ordering::Equal => 0.0,
        std::cmp::Ordering::Greater => 1.0,
    }))
}

/// Go's `strings.EqualFold`: equal under simple Unicode case folding.
fn equal_fold(c: &mut Call<'_, '_, '_>) -> Out {
    let fold = |s: &str| -> Vec<char> { s.chars().flat_map(char::to_lowercase).collect() };
    Ok(Value::Bool(fold(c.str(0)?) == fold(c.str(1)?)))
}

/// Refuses a replacement whose result would be too long, before building it: an empty `old`
/// matches between every character, so a long `new` multiplies the input.
fn replaced_len_ok(
    function: &str,
    s: &str,
    old: &str,
    new: &str,
    limit: usize,
) -> Result<(), JmespathError> {
    if new.len() <= old.len() {
        return Ok(());
    }
    let matches = if old.is_empty() {
        s.chars().count().saturating_add(1)
    } else {
        s.matches(old).count()
    }
    .min(limit);
    let grown = matches.saturating_mul(new.len() - old.len());
    super::check_result_len(function, s.len().saturating_add(grown))
}

/// Go's `strings.Replace(s, old, new, n)`.
fn replace(c: &mut Call<'_, '_, '_>) -> Out {
    let (s, old, new) = (c.str(0)?, c.str(1)?, c.str(2)?);
    let n = c.f64(3)? as i64;
    replaced_len_ok(
        "replace",
        s,
        old,
        new,
        usize::try_from(n).unwrap_or(usize::MAX),
    )?;
    if n < 0 {
        return Ok(Value::String(s.replace(old, new)));
    }
    if old.is_empty() {
        // An empty `old` matches before each character and at the end, up to n times.
        let mut out = String::new();
        let mut done = 0;
        for ch in s.chars() {
            if done < n {
                out.push_str(new);
                done += 1;
            }
            out.push(ch);
        }
        if done < n {
            out.push_str(new);
        }
        return Ok(Value::String(out));
    }
    Ok(Value::String(s.replacen(
        old,
        new,
        usize::try_from(n).unwrap_or(0),
    )))
}

fn trim(c: &mut Call<'_, '_, '_>) -> Out {
    let cutset = c.str(1)?;
    Ok(Value::String(
        c.str(0)?
            .trim_matches(|ch: char| cutset.contains(ch))
            .to_owned(),
    ))
}

/// Go's `strings.Split`: an empty separator splits into characters.
fn split(c: &mut Call<'_, '_, '_>) -> Out {
    let (s, sep) = (c.str(0)?, c.str(1)?);
    let parts: Vec<Value> = if sep.is_empty() {
        s.chars().map(|ch| Value::String(ch.to_string())).collect()
    } else {
        s.split(sep).map(|p| Value::String(p.to_owned())).collect()
    };
    Ok(Value::Array(parts))
}

/// Kyverno's `ifaceToString` for string-or-number arguments.
fn string_or_number(c: &Call<'_, '_, '_>, i: usize) -> Result<String, JmespathError> {
    match c.value(i) {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(go_float32_string(n.as_f64().unwrap_or(0.0))),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(c.type_error(i, "String or Real")),
    }
}

/// Largest compiled program accepted for a user regex.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
const REGEX_CACHE_CAPACITY: usize = 512;

fn compiled_regex(c: &Call<'_, '_, '_>, pattern: &str) -> Result<Regex, JmespathError> {
    static CACHE: OnceLock<Mutex<HashMap<String, Regex>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(found) = cache.lock().ok().and_then(|m| m.get(pattern).cloned()) {
        return Ok(found);
    }
    let compiled = regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| c.error(format!("error parsing regexp: {e}")))?;
    if let Ok(mut map) = cache.lock() {
        if map.len() >= REGEX_CACHE_CAPACITY {
            map.clear();
        }
        map.insert(pattern.to_owned(), compiled.clone());
    }
    Ok(compiled)
}

fn regex_replace(c: &mut Call<'_, '_, '_>, expand: bool) -> Out {
    let pattern = c.str(0)?.to_owned();
    let src = string_or_number(c, 1)?;
    let repl = string_or_number(c, 2)?;
    let re = compiled_regex(c, &pattern)?;
    // Expansions of `$1` can repeat the input per match: build with a cap instead of
    // estimating.
    let mut out = String::new();
    let mut last = 0;
    for caps in re.captures_iter(&src) {
        let Some(whole) = caps.get(0) else {
            continue;
        };
        out.push_str(src.get(last..whole.start()).unwrap_or_default());
        if expand {
            caps.expand(&repl, &mut out);
        } else {
            out.push_str(&repl);
        }
        last = whole.end();
        super::check_result_len(c.name, out.len())?;
    }
    out.push_str(src.get(last..).unwrap_or_default());
    super::check_result_len(c.name, out.len())?;
    Ok(Value::String(out))
}

fn regex_match(c: &mut Call<'_, '_, '_>) -> Out {
    let pattern = c.str(0)?.to_owned();
    let src = string_or_number(c, 1)?;
    let re = compiled_regex(c, &pattern)?;
    Ok(Value::Bool(re.is_match(&src)))
}

pub(crate) use crate::wildcard::wildcard_match;

fn pattern_match(c: &mut Call<'_, '_, '_>) -> Out {
    let pattern = c.str(0)?;
    let src = string_or_number(c, 1)?;
    Ok(Value::Bool(wildcard_match(pattern, &src)))
}

fn label_match(c: &mut Call<'_, '_, '_>) -> Out {
    let wanted = c.object(0)?;
    let have = c.object(1)?;
    Ok(Value::Bool(wanted.iter().all(|(k, v)| {
        have.get(k).is_some_and(|actual| json_equal(actual, v))
    })))
}

fn to_boolean(c: &mut Call<'_, '_, '_>) -> Out {
    let s = c.str(0)?;
    match s.to_lowercase().as_str() {
        "true" => Ok(Value::Bool(true)),
        "false" => Ok(Value::Bool(false)),
        _ => Err(c.error(format!(
            "lowercase argument must be 'true' or 'false' (provided: '{s}')"
        ))),
    }
}

fn operands(
    c: &Call<'_, '_, '_>,
    a: &Value,
    b: &Value,
) -> Result<(Operand, Operand), JmespathError> {
    match (Operand::from_value(a), Operand::from_value(b)) {
        (Some(x), Some(y)) => Ok((x, y)),
        _ => Err(c.error("invalid operands")),
    }
}

fn arithmetic(
    c: &mut Call<'_, '_, '_>,
    op: fn(Operand, Operand) -> Result<Value, ArithError>,
) -> Out {
    let (a, b) = operands(c, c.value(0), c.value(1))?;
    op(a, b).map_err(|e| c.error(e.message()))
}

fn sum(c: &mut Call<'_, '_, '_>) -> Out {
    let Value::Array(items) = c.take(0)? else {
        return Err(c.error("Types mismatch"));
    };
    let mut iter = items.into_iter();
    let Some(mut total) = iter.next() else {
        return Err(c.error("at least one element in the array is required"));
    };
    for item in iter {
        let (a, b) = operands(c, &total, &item)?;
        total = arith::add(a, b).map_err(|e| c.error(e.message()))?;
    }
    Ok(total)
}

fn round(c: &mut Call<'_, '_, '_>) -> Out {
    let value = c.f64(0)?;
    let places = c.f64(1)?;
    if !places.is_finite() || places.fract() != 0.0 {
        return Err(c.error("Non-integer argument(s) passed for round off"));
    }
    if places < 0.0 {
        return Err(c.error("2 argument is out of bounds (it must not be negative)"));
    }
    let shift = 10f64.powf(places);
    Ok(num((value * shift).round() / shift))
}

fn base64_decode(c: &mut Call<'_, '_, '_>) -> Out {
    // Go's decoder skips line breaks.
    let input: String = c
        .str(0)?
        .chars()
        .filter(|ch| *ch != '\n' && *ch != '\r')
        .collect();
    match base64::engine::general_purpose::STANDARD.decode(input.as_bytes()) {
        Ok(bytes) => Ok(Value::String(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) => {
            let at = match e {
                base64::DecodeError::InvalidByte(offset, _) => offset,
                base64::DecodeError::InvalidLastSymbol(offset, _) => offset,
                _ => input.len(),
            };
            Err(JmespathError::function(format!(
                "illegal base64 data at input byte {at}"
            )))
        }
    }
}

fn parse_in_layout(
    layout: &str,
    value: &str,
) -> Result<chrono::DateTime<chrono::FixedOffset>, JmespathError> {
    let result = if layout.is_empty() {
        gotime::parse_rfc3339(value)
    } else {
        gotime::parse_layout(layout, value)
    };
    result.map_err(JmespathError::function)
}

fn time_since(c: &mut Call<'_, '_, '_>) -> Out {
    let layout = c.str(0)?;
    let start = parse_in_layout(layout, c.str(1)?)?;
    let end_text = c.str(2)?;
    let end = if end_text.is_empty() {
        c.env().now()
    } else {
        parse_in_layout(layout, end_text)?
    };
    Ok(Value::String(gotime::format_duration(gotime::sub(
        &end, &start,
    ))))
}

fn rfc3339_arg(
    c: &Call<'_, '_, '_>,
    i: usize,
) -> Result<chrono::DateTime<chrono::FixedOffset>, JmespathError> {
    gotime::parse_rfc3339(c.str(i)?).map_err(JmespathError::function)
}

fn duration_arg(c: &Call<'_, '_, '_>, i: usize) -> Result<i64, JmespathError> {
    let text = c.str(i)?;
    gotime::parse_duration(text)
        .ok_or_else(|| JmespathError::function(format!("time: invalid duration {text:?}")))
}

fn time_to_cron(c: &mut Call<'_, '_, '_>) -> Out {
    use chrono::{Datelike, Timelike};
    let t = rfc3339_arg(c, 0)?;
    Ok(Value::String(format!(
        "{} {} {} {} {}",
        t.minute(),
        t.hour(),
        t.day(),
        t.month(),
        t.weekday().num_days_from_sunday()
    )))
}

fn time_add(c: &mut Call<'_, '_, '_>) -> Out {
    let t = rfc3339_arg(c, 0)?;
    let d = duration_arg(c, 1)?;
    let sum = gotime::add(&t, d).ok_or_else(|| c.error("time out of range"))?;
    Ok(Value::String(gotime::format_rfc3339(&sum)))
}

fn time_parse(c: &mut Call<'_, '_, '_>) -> Out {
    let layout = c.str(0)?;
    let value = c.str(1)?;
    if layout.parse::<i64>().is_ok() {
        // A numeric layout means "epoch seconds".
        let secs: i64 = value.parse().map_err(|_| {
            JmespathError::function(format!(
                "strconv.ParseInt: parsing {value:?}: invalid syntax"
            ))
        })?;
        let t = gotime::from_unix(secs).ok_or_else(|| c.error("time out of range"))?;
        return Ok(Value::String(gotime::format_rfc3339(&t)));
    }
    let t = gotime::parse_layout(layout, value).map_err(JmespathError::function)?;
    Ok(Value::String(gotime::format_rfc3339(&t)))
}

fn time_truncate(c: &mut Call<'_, '_, '_>) -> Out {
    let t = rfc3339_arg(c, 0)?;
    let d = duration_arg(c, 1)?;
    let truncated = gotime::truncate(&t, d).ok_or_else(|| c.error("time out of range"))?;
    Ok(Value::String(gotime::format_rfc3339(&truncated)))
}

/// Go's `path.Clean` (what `filepath.Join` of one element does on Linux).
pub(crate) fn clean_path(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

fn truncate(c: &mut Call<'_, '_, '_>) -> Out {
    let s = c.str(0)?;
    let len = c.f64(1)?.max(0.0) as usize;
    Ok(Value::String(s.chars().take(len).collect()))
}

fn semver_compare(c: &mut Call<'_, '_, '_>) -> Out {
    let version = parse_version_or_zero(c.str(0)?);
    let range = Range::parse(c.str(1)?).map_err(JmespathError::function)?;
    Ok(Value::Bool(range.matches(&version)))
}

fn parse_json(c: &mut Call<'_, '_, '_>) -> Out {
    serde_json::from_str(c.str(0)?).map_err(|e| JmespathError::function(e.to_string()))
}

fn parse_yaml(c: &mut Call<'_, '_, '_>) -> Out {
    let text = c.str(0)?;
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    let parsed: serde_yaml_ng::Value = serde_yaml_ng::from_str(text)
        .map_err(|e| JmespathError::function(format!("error converting YAML to JSON: {e}")))?;
    yaml_to_json(parsed, 0)
}

fn yaml_to_json(value: serde_yaml_ng::Value, depth: usize) -> Out {
    use serde_yaml_ng::Value as Y;
    if depth > crate::jmespath::value::MAX_VALUE_DEPTH {
        return Err(JmespathError::limit("YAML nested too deeply"));
    }
    Ok(match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                num(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(
            items
                .into_iter()
                .map(|v| yaml_to_json(v, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Y::Mapping(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let key = match k {
                    Y::String(s) => s,
                    Y::Bool(b) => b.to_string(),
                    Y::Number(n) => n.to_string(),
                    Y::Null => "null".to_owned(),
                    _ => {
                        return Err(JmespathError::function(
                            "error converting YAML to JSON: unsupported map key",
                        ))
                    }
                };
                out.insert(key, yaml_to_json(v, depth + 1)?);
            }
            Value::Object(out)
        }
        Y::Tagged(tagged) => yaml_to_json(tagged.value, depth + 1)?,
    })
}

fn lookup(c: &mut Call<'_, '_, '_>) -> Out {
    match c.value(0) {
        Value::Object(map) => {
            let key = c
                .value(1)
                .as_str()
                .ok_or_else(|| c.type_error(1, "String"))?;
            Ok(map.get(key).cloned().unwrap_or(Value::Null))
        }
        Value::Array(items) => {
            let key = c
                .value(1)
                .as_f64()
                .ok_or_else(|| c.type_error(1, "Number"))?;
            if !key.is_finite() || key.fract() != 0.0 {
                return Err(c.error(format!(
                    "argument #2: expected an integer number but got: {}",
                    crate::quantity::go_format_float(key)
                )));
            }
            if key < 0.0 {
                return Ok(Value::Null);
            }
            Ok(items.get(key as usize).cloned().unwrap_or(Value::Null))
        }
        _ => Err(c.type_error(0, "Object or Array")),
    }
}

fn items(c: &mut Call<'_, '_, '_>) -> Out {
    let key_name = c
        .value(1)
        .as_str()
        .ok_or_else(|| c.type_error(1, "String"))?
        .to_owned();
    let value_name = c
        .value(2)
        .as_str()
        .ok_or_else(|| c.type_error(2, "String"))?
        .to_owned();
    let item = |k: Value, v: Value| {
        let mut m = Map::new();
        m.insert(key_name.clone(), k);
        m.insert(value_name.clone(), v);
        Value::Object(m)
    };
    match c.take(0)? {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(Value::Array(
                entries
                    .into_iter()
                    .map(|(k, v)| item(Value::String(k), v))
                    .collect(),
            ))
        }
        Value::Array(values) => Ok(Value::Array(
            values
                .into_iter()
                .enumerate()
                .map(|(i, v)| item(num(i as f64), v))
                .collect(),
        )),
        _ => Err(c.type_error(0, "Object or Array")),
    }
}

fn object_from_lists(c: &mut Call<'_, '_, '_>) -> Out {
    let keys = c.array(0)?;
    let values = c.array(1)?;
    let mut out = Map::new();
    for (i, key) in keys.iter().enumerate() {
        let key = match key {
            Value::String(s) => s.clone(),
            Value::Number(n) => go_float32_string(n.as_f64().unwrap_or(0.0)),
            Value::Bool(b) => b.to_string(),
            _ => return Err(c.type_error(0, "StringArray")),
        };
        out.insert(key, values.get(i).cloned().unwrap_or(Value::Null));
    }
    Ok(Value::Object(out))
}

/// Unbounded repetitions (`*`, `+`) generate at most this many extra copies, like goregen.
const MAX_UNBOUNDED_REPEAT: u32 = 10;
/// Longest string `random` will build.
const MAX_RANDOM_LEN: usize = 64 * 1024;

struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

fn random(c: &mut Call<'_, '_, '_>) -> Out {
    let pattern = c.str(0)?;
    if pattern.is_empty() {
        return Err(JmespathError::function("no pattern provided"));
    }
    let hir = regex_syntax::ParserBuilder::new()
        .nest_limit(64)
        .build()
        .parse(pattern)
        .map_err(|e| JmespathError::function(format!("error parsing regexp: {e}")))?;
    let mut rng = SplitMix(c.env().random_u64());
    let mut out = String::new();
    generate(&hir, &mut rng, &mut out)?;
    Ok(Value::String(out))
}

fn generate(
    hir: &regex_syntax::hir::Hir,
    rng: &mut SplitMix,
    out: &mut String,
) -> Result<(), JmespathError> {
    use regex_syntax::hir::{Class, HirKind};
    if out.len() > MAX_RANDOM_LEN {
        return Err(JmespathError::limit("random: generated string too long"));
    }
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => {}
        HirKind::Literal(lit) => out.push_str(&String::from_utf8_lossy(&lit.0)),
        HirKind::Class(Class::Unicode(class)) => {
            let ranges: Vec<(u32, u32)> = class
                .ranges()
                .iter()
                .map(|r| (r.start() as u32, r.end() as u32))
                .collect();
            // Prefer printable ASCII when the class allows it (`.` would otherwise mostly
            // produce obscure code points).
            let printable: Vec<(u32, u32)> = ranges
                .iter()
                .filter_map(|(lo, hi)| {
                    let (lo, hi) = ((*lo).max(0x20), (*hi).min(0x7e));
                    (lo <= hi).then_some((lo, hi))
                })
                .collect();
            let pool = if printable.is_empty() {
                ranges
            } else {
                printable
            };
            let total: u64 = pool.iter().map(|(lo, hi)| u64::from(hi - lo) + 1).sum();
            let mut pick = rng.below(total);
            for (lo, hi) in pool {
                let size = u64::from(hi - lo) + 1;
                if pick < size {
                    let code = lo + u32::try_from(pick).unwrap_or(0);
                    if let Some(ch) = char::from_u32(code) {
                        out.push(ch);
                    }
                    break;
                }
                pick -= size;
            }
        }
        HirKind::Class(Class::Bytes(class)) => {
            let total: u64 = class
                .ranges()
                .iter()
                .map(|r| u64::from(r.end() - r.start()) + 1)
                .sum();
            let mut pick = rng.below(total);
            for r in class.ranges() {
                let size = u64::from(r.end() - r.start()) + 1;
                if pick < size {
                    out.push(char::from(r.start() + u8::try_from(pick).unwrap_or(0)));
                    break;
                }
                pick -= size;
            }
        }
        HirKind::Repetition(rep) => {
            let max = rep
                .max
                .unwrap_or(rep.min.saturating_add(MAX_UNBOUNDED_REPEAT));
            let count =
                rep.min + u32::try_from(rng.below(u64::from(max - rep.min) + 1)).unwrap_or(0);
            for _ in 0..count {
                generate(&rep.sub, rng, out)?;
            }
        }
        HirKind::Capture(cap) => generate(&cap.sub, rng, out)?,
        HirKind::Concat(items) => {
            for item in items {
                generate(item, rng, out)?;
            }
        }
        HirKind::Alternation(items) => {
            let idx = usize::try_from(rng.below(items.len() as u64)).unwrap_or(0);
            if let Some(item) = items.get(idx) {
                generate(item, rng, out)?;
            }
        }
    }
    Ok(())
}

/// Splits an image reference into (registry, path, tag, digest) after adding `docker.io`
/// when the first component is not a registry host, as Kyverno does.
pub(crate) fn normalize_image(image: &str) -> Result<String, String> {
    let full = match image.find('/') {
        Some(i) => {
            let first = image.get(..i).unwrap_or("");
            let is_host =
                first.contains(['.', ':']) || first == "localhost" || first.to_lowercase() != first;
            if is_host {
                image.to_owned()
            } else {
                format!("docker.io/{image}")
            }
        }
        None => format!("docker.io/{image}"),
    };
    let bad = |why: &str| {
        format!("bad image: {full}, defaultRegistry: docker.io, enableDefaultRegistryMutation: true: {why}")
    };
    let (name_and_tag, digest) = match full.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (full.as_str(), None),
    };
    let slash = name_and_tag
        .find('/')
        .ok_or_else(|| bad("invalid reference format"))?;
    let registry = name_and_tag.get(..slash).unwrap_or("");
    let rest = name_and_tag.get(slash + 1..).unwrap_or("");
    let (path, tag) = match rest.rfind(':') {
        Some(i) => (
            rest.get(..i).unwrap_or(""),
            Some(rest.get(i + 1..).unwrap_or("")),
        ),
        None => (rest, None),
    };
    static COMPONENT: OnceLock<Option<Regex>> = OnceLock::new();
    let component = COMPONENT
        .get_or_init(|| Regex::new(r"^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$").ok())
        .as_ref()
        .ok_or_else(|| bad("internal"))?;
    if path.is_empty() || !path.split('/').all(|p| component.is_match(p)) {
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(bad("repository name must be lowercase"));
        }
        return Err(bad("invalid reference format"));
    }
    if registry.is_empty() {
        return Err(bad("invalid reference format"));
    }
    if let Some(tag) = tag {
        let valid = !tag.is_empty()
            && tag.len() <= 128
            && tag
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !valid {
            return Err(bad("invalid reference format"));
        }
    }
    if let Some(d) = digest {
        let valid = d.split_once(':').is_some_and(|(alg, hex)| {
            !alg.is_empty() && hex.len() >= 32 && hex.chars().all(|c| c.is_ascii_hexdigit())
        });
        if !valid {
            return Err(bad("invalid digest format"));
        }
        return Ok(format!("{registry}/{path}@{d}"));
    }
    Ok(format!("{registry}/{path}:{}", tag.unwrap_or("latest")))
}

fn image_normalize(c: &mut Call<'_, '_, '_>) -> Out {
    normalize_image(c.str(0)?)
        .map(Value::String)
        .map_err(|e| c.error(e))
}

fn host_of(url: &str) -> String {
    let Some((_, after_scheme)) = url.split_once("://") else {
        return String::new();
    };
    let authority = after_scheme.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    if let Some(bracketed) = host_port.strip_prefix('[') {
        return bracketed.split(']').next().unwrap_or("").to_owned();
    }
    host_port.split(':').next().unwrap_or("").to_owned()
}

/// Loopback, private, link-local (cloud metadata at 169.254.169.254) and unspecified
/// addresses. Kyverno counts only loopback and private ones as internal.
fn is_internal(ip: &IpAddr) -> bool {
    let v4_internal = |v4: &std::net::Ipv4Addr| {
        v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified()
    };
    match ip {
        IpAddr::V4(v4) => v4_internal(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4_internal(&v4);
            }
            let first = v6.segments().first().copied().unwrap_or(0);
            v6.is_loopback()
                || v6.is_unspecified()
                || first & 0xfe00 == 0xfc00
                || first & 0xffc0 == 0xfe80
        }
    }
}

/// Decides from the URL's text alone, without DNS: the engine runs on the admission path and
/// does no I/O, and an answer from a lookup would not hold anyway (whoever uses the URL
/// resolves it again, to whatever the name points to then). IP literals are judged by range;
/// a name is internal when it is one a cluster or host resolves locally (`localhost`, a single
/// label, `.local`, `.localhost`, `.internal`, `.svc`, `.cluster.local`, `.home.arpa`), and a
/// host that is all digits or hex (`2130706433`, `0x7f.1`), which some clients read as an
/// address, is not external either.
fn is_external_url(c: &mut Call<'_, '_, '_>) -> Out {
    let host = host_of(c.str(0)?);
    Ok(Value::Bool(host_is_external(&host)))
}

fn host_is_external(host: &str) -> bool {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return !is_internal(&ip);
    }
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    if name.is_empty() || !name.contains('.') {
        return false;
    }
    const LOCAL_SUFFIXES: &[&str] = &[
        ".localhost",
        ".local",
        ".internal",
        ".svc",
        ".cluster.local",
        ".home.arpa",
        ".localdomain",
    ];
    if name == "localhost" || LOCAL_SUFFIXES.iter().any(|s| name.ends_with(s)) {
        return false;
    }
    // Numeric forms other than dotted quads (decimal, octal, hex parts).
    let numeric = name.split('.').all(|part| match part.strip_prefix("0x") {
        Some(hex) => !hex.is_empty() && hex.chars().all(|ch| ch.is_ascii_hexdigit()),
        None => !part.is_empty() && part.chars().all(|ch| ch.is_ascii_digit()),
    });
    !numeric
}
