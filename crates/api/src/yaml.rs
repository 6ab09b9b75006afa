//! YAML helpers: multi-document parsing into JSON values with `FILE:LINE:COL` errors, typed
//! decoding with the path of the offending field, and YAML output.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Number, Value};
use serde_yaml_ng::Value as YamlValue;

/// Deepest nesting accepted in a document. The YAML parser enforces the same bound; checking it
/// again here keeps every recursive walk over the resulting values bounded.
pub const MAX_DEPTH: usize = 128;

/// A YAML syntax or structure error, displayed as `FILE:LINE:COL: reason`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct YamlError {
    /// Name of the input (usually a file path).
    pub source_name: String,
    /// 1-based line of the error, when known.
    pub line: Option<usize>,
    /// 1-based column of the error, when known.
    pub column: Option<usize>,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => {
                write!(f, "{}:{line}:{column}: {}", self.source_name, self.reason)
            }
            _ => write!(f, "{}: {}", self.source_name, self.reason),
        }
    }
}

impl std::error::Error for YamlError {}

impl YamlError {
    fn from_yaml(source_name: &str, error: &serde_yaml_ng::Error) -> Self {
        let location = error.location();
        let mut reason = error.to_string();
        // serde_yaml_ng appends " at line L column C"; the location is already in the prefix.
        if let Some(location) = &location {
            let suffix = format!(" at line {} column {}", location.line(), location.column());
            if let Some(start) = reason.find(&suffix) {
                reason.replace_range(start..start + suffix.len(), "");
            }
        }
        Self {
            source_name: source_name.to_owned(),
            line: location.as_ref().map(|l| l.line()),
            column: location.as_ref().map(|l| l.column()),
            reason,
        }
    }

    fn without_location(source_name: &str, reason: String) -> Self {
        Self {
            source_name: source_name.to_owned(),
            line: None,
            column: None,
            reason,
        }
    }
}

/// A value that does not fit the requested type, displayed as `path: reason`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct DecodeError {
    /// Path of the offending field, e.g. `spec.rules[0].match.any[1].resources.kinds`; `.` for the
    /// document itself.
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

/// Parses every document of a (possibly multi-document) YAML text into JSON values. Empty
/// documents (including comment-only ones) are skipped. `source_name` names the input in errors.
///
/// Keys that are not strings are converted the way Kubernetes tooling does (`1` → `"1"`,
/// `true` → `"true"`); merge keys (`<<`) are applied.
pub fn parse_documents(text: &str, source_name: &str) -> Result<Vec<Value>, YamlError> {
    let mut documents = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        let mut value = YamlValue::deserialize(document).map_err(|e| {
            let mut error = YamlError::from_yaml(source_name, &e);
            locate_duplicate_key(text, &mut error);
            error
        })?;
        if value.is_null() {
            continue;
        }
        value
            .apply_merge()
            .map_err(|e| YamlError::from_yaml(source_name, &e))?;
        let json = yaml_to_json(value, 0)
            .map_err(|reason| YamlError::without_location(source_name, reason))?;
        documents.push(json);
    }
    Ok(documents)
}

/// The parser reports a duplicate key at the start of its mapping; point at the second
/// occurrence instead (block mappings only: same column, key followed by `:`).
fn locate_duplicate_key(text: &str, error: &mut YamlError) {
    const MARKER: &str = "duplicate entry with key ";
    let Some(start) = error.reason.find(MARKER) else {
        return;
    };
    let key = error.reason[start + MARKER.len()..]
        .trim_matches('"')
        .to_owned();
    let (Some(line), Some(column)) = (error.line, error.column) else {
        return;
    };
    let indent = column.saturating_sub(1);
    let spellings = [
        format!("{key}:"),
        format!("\"{key}\":"),
        format!("'{key}':"),
    ];
    let mut occurrences = 0;
    for (index, text_line) in text.lines().enumerate().skip(line.saturating_sub(1)) {
        let Some(rest) = text_line.get(indent..) else {
            continue;
        };
        if spellings.iter().any(|s| rest.starts_with(s.as_str())) {
            occurrences += 1;
            if occurrences == 2 {
                error.line = Some(index + 1);
                return;
            }
        }
    }
}

fn yaml_to_json(value: YamlValue, depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err(format!("nesting deeper than {MAX_DEPTH} levels"));
    }
    Ok(match value {
        YamlValue::Null => Value::Null,
        YamlValue::Bool(b) => Value::Bool(b),
        YamlValue::Number(n) => yaml_number_to_json(&n)?,
        YamlValue::String(s) => Value::String(s),
        YamlValue::Sequence(items) => Value::Array(
            items
                .into_iter()
                .map(|item| yaml_to_json(item, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        YamlValue::Mapping(mapping) => {
            let mut object = Map::with_capacity(mapping.len());
            for (key, item) in mapping {
                object.insert(key_to_string(key)?, yaml_to_json(item, depth + 1)?);
            }
            Value::Object(object)
        }
        // Tags (`!foo`) carry no meaning for Kubernetes objects; keep the tagged value.
        YamlValue::Tagged(tagged) => yaml_to_json(tagged.value, depth + 1)?,
    })
}

fn yaml_number_to_json(n: &serde_yaml_ng::Number) -> Result<Value, String> {
    if let Some(i) = n.as_i64() {
        Ok(Value::Number(i.into()))
    } else if let Some(u) = n.as_u64() {
        Ok(Value::Number(u.into()))
    } else {
        n.as_f64()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| format!("number {n} cannot be represented in JSON"))
    }
}

fn key_to_string(key: YamlValue) -> Result<String, String> {
    match key {
        YamlValue::String(s) => Ok(s),
        YamlValue::Bool(b) => Ok(b.to_string()),
        YamlValue::Number(n) => Ok(n.to_string()),
        YamlValue::Null => Ok("null".to_owned()),
        YamlValue::Tagged(tagged) => key_to_string(tagged.value),
        YamlValue::Sequence(_) | YamlValue::Mapping(_) => {
            Err("a list or map used as a mapping key is not supported".to_owned())
        }
    }
}

/// Deserializes a JSON value into `T`; the error names the path of the offending field.
/// Values nested deeper than [`MAX_DEPTH`] are refused before any recursive walk.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, DecodeError> {
    let value = within_depth(value)?;
    serde_path_to_error::deserialize(value).map_err(path_error)
}

/// Passes `value` through when it is within [`MAX_DEPTH`]; otherwise takes it apart without
/// recursion (a plain drop of a very deep value could exhaust the stack) and fails.
pub(crate) fn within_depth(value: Value) -> Result<Value, DecodeError> {
    match check_depth(&value) {
        Ok(()) => Ok(value),
        Err(error) => {
            drop_without_recursion(value);
            Err(error)
        }
    }
}

fn drop_without_recursion(value: Value) {
    let mut stack = vec![value];
    while let Some(mut node) = stack.pop() {
        match &mut node {
            Value::Array(items) => stack.append(items),
            Value::Object(object) => {
                let taken = std::mem::take(object);
                stack.extend(taken.into_iter().map(|(_, item)| item));
            }
            _ => {}
        }
    }
}

/// Fails when `value` is nested deeper than [`MAX_DEPTH`]. Iterative, so it is safe on any input.
pub fn check_depth(value: &Value) -> Result<(), DecodeError> {
    let mut stack = vec![(value, 0usize)];
    while let Some((node, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Err(DecodeError {
                path: ".".to_owned(),
                reason: format!("nesting deeper than {MAX_DEPTH} levels"),
            });
        }
        match node {
            Value::Array(items) => stack.extend(items.iter().map(|item| (item, depth + 1))),
            Value::Object(object) => stack.extend(object.values().map(|item| (item, depth + 1))),
            _ => {}
        }
    }
    Ok(())
}

pub(crate) fn path_error(error: serde_path_to_error::Error<serde_json::Error>) -> DecodeError {
    DecodeError {
        path: error.path().to_string(),
        reason: error.into_inner().to_string(),
    }
}

/// Renders a JSON value as YAML. Infallible for JSON values; should the YAML emitter ever refuse,
/// JSON text (which is valid YAML) is returned instead.
pub fn to_yaml_string(value: &Value) -> String {
    serde_yaml_ng::to_string(value)
        .unwrap_or_else(|_| serde_json::to_string_pretty(value).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn skips_empty_and_comment_only_documents() {
        let text = "---\n# only a comment\n---\na: 1\n---\n---\nb: [x]\n";
        let docs = parse_documents(text, "in.yaml").unwrap();
        assert_eq!(docs, vec![json!({"a": 1}), json!({"b": ["x"]})]);
    }

    #[test]
    fn non_string_keys_become_strings() {
        let docs = parse_documents("1: a\ntrue: b\n", "k.yaml").unwrap();
        assert_eq!(docs, vec![json!({"1": "a", "true": "b"})]);
    }

    #[test]
    fn merge_keys_are_applied() {
        let text = "base: &b {x: 1}\nderived:\n  <<: *b\n  y: 2\n";
        let docs = parse_documents(text, "m.yaml").unwrap();
        assert_eq!(docs[0]["derived"], json!({"x": 1, "y": 2}));
    }

    #[test]
    fn yaml_output_round_trips() {
        let value =
            json!({"kind": "Pod", "spec": {"containers": [{"name": "a", "image": "nginx:1.0"}]}});
        let text = to_yaml_string(&value);
        assert_eq!(parse_documents(&text, "out").unwrap(), vec![value]);
    }
}
