//! `labelSelector` and `fieldSelector` query parameters, parsed and matched as kube-apiserver does.

use serde_json::Value;

use super::errors::ApiError;
use super::resources::ResourceType;

#[derive(Clone, Debug, PartialEq)]
enum LabelRequirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct LabelSelector {
    requirements: Vec<LabelRequirement>,
}

/// Splits on commas that are not inside parentheses (`a in (x,y),b`).
fn split_top_level(text: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err("unbalanced parentheses".to_string());
                }
            }
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced parentheses".to_string());
    }
    parts.push(&text[start..]);
    Ok(parts)
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn valid_value(value: &str) -> bool {
    value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn parse_set(text: &str) -> Result<Vec<String>, String> {
    let inner = text
        .trim()
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| {
            format!(
                "expected a parenthesised set of values, found '{}'",
                text.trim()
            )
        })?;
    let values: Vec<String> = inner.split(',').map(|v| v.trim().to_string()).collect();
    if let Some(bad) = values.iter().find(|v| !valid_value(v)) {
        return Err(format!("invalid label value: '{bad}'"));
    }
    Ok(values)
}

/// Finds ` in ` / ` notin ` (the operator word must stand alone) and returns (key, operator, rest).
fn split_set_operator(term: &str) -> Option<(&str, &str, &str)> {
    for op in ["notin", "in"] {
        let mut search = 0;
        while let Some(pos) = term[search..].find(op) {
            let at = search + pos;
            let before = &term[..at];
            let after = &term[at + op.len()..];
            let stands_alone = before.ends_with(char::is_whitespace)
                && (after.starts_with(char::is_whitespace) || after.starts_with('('));
            if stands_alone && !before.trim().is_empty() {
                return Some((before.trim(), op, after));
            }
            search = at + op.len();
        }
    }
    None
}

impl LabelSelector {
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        let bad =
            |why: String| ApiError::bad_request(format!("unable to parse requirement: {why}"));
        let mut requirements = Vec::new();
        if text.trim().is_empty() {
            return Ok(LabelSelector { requirements });
        }
        for term in split_top_level(text).map_err(bad)? {
            let term = term.trim();
            let requirement = if let Some((key, op, rest)) = split_set_operator(term) {
                let values = parse_set(rest).map_err(bad)?;
                if op == "in" {
                    LabelRequirement::In(key.to_string(), values)
                } else {
                    LabelRequirement::NotIn(key.to_string(), values)
                }
            } else if let Some((key, value)) = term.split_once("!=") {
                LabelRequirement::NotEquals(key.trim().to_string(), value.trim().to_string())
            } else if let Some((key, value)) = term.split_once("==") {
                LabelRequirement::Equals(key.trim().to_string(), value.trim().to_string())
            } else if let Some((key, value)) = term.split_once('=') {
                LabelRequirement::Equals(key.trim().to_string(), value.trim().to_string())
            } else if let Some(key) = term.strip_prefix('!') {
                LabelRequirement::DoesNotExist(key.trim().to_string())
            } else {
                LabelRequirement::Exists(term.to_string())
            };
            let (key, values): (&str, Vec<&str>) = match &requirement {
                LabelRequirement::Equals(k, v) | LabelRequirement::NotEquals(k, v) => {
                    (k, vec![v.as_str()])
                }
                LabelRequirement::In(k, vs) | LabelRequirement::NotIn(k, vs) => {
                    (k, vs.iter().map(String::as_str).collect())
                }
                LabelRequirement::Exists(k) | LabelRequirement::DoesNotExist(k) => (k, Vec::new()),
            };
            if !valid_key(key) {
                return Err(bad(format!("invalid label key \"{key}\"")));
            }
            if let Some(v) = values.iter().find(|v| !valid_value(v)) {
                return Err(bad(format!("invalid label value: \"{v}\"")));
            }
            requirements.push(requirement);
        }
        Ok(LabelSelector { requirements })
    }

    pub fn matches(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels");
        let label = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
        self.requirements.iter().all(|r| match r {
            LabelRequirement::Equals(k, v) => label(k) == Some(v.as_str()),
            LabelRequirement::NotEquals(k, v) => label(k) != Some(v.as_str()),
            LabelRequirement::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelRequirement::NotIn(k, vs) => label(k).is_none_or(|l| !vs.iter().any(|v| v == l)),
            LabelRequirement::Exists(k) => label(k).is_some(),
            LabelRequirement::DoesNotExist(k) => label(k).is_none(),
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
struct FieldRequirement {
    path: String,
    value: String,
    equal: bool,
}

/// A parsed field selector over the fields the resource type supports.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

/// The string form of a field, as kube-apiserver's field sets hold it (booleans as "true"/"false",
/// missing as "").
fn field_value(object: &Value, path: &str) -> String {
    let pointer = format!("/{}", path.replace('.', "/"));
    match object.pointer(&pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

impl FieldSelector {
    pub fn parse(text: &str, resource: &ResourceType) -> Result<Self, ApiError> {
        let mut requirements = Vec::new();
        for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (path, value, equal) = if let Some((p, v)) = term.split_once("!=") {
                (p, v, false)
            } else if let Some((p, v)) = term.split_once("==") {
                (p, v, true)
            } else if let Some((p, v)) = term.split_once('=') {
                (p, v, true)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{text}'; can't understand '{term}'"
                )));
            };
            let path = path.trim();
            let supported = matches!(path, "metadata.name" | "metadata.namespace")
                || resource.selectable_fields.iter().any(|f| f == path);
            if !supported {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {path}"
                )));
            }
            requirements.push(FieldRequirement {
                path: path.to_string(),
                value: value.trim().to_string(),
                equal,
            });
        }
        Ok(FieldSelector { requirements })
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.requirements
            .iter()
            .all(|r| (field_value(object, &r.path) == r.value) == r.equal)
    }
}

/// A label and a field selector together.
#[derive(Clone, Debug, Default)]
pub(crate) struct Selectors {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selectors {
    pub fn matches(&self, object: &Value) -> bool {
        self.labels.matches(object) && self.fields.matches(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labelled(labels: Value) -> Value {
        json!({ "metadata": { "name": "x", "labels": labels } })
    }

    fn matches(selector: &str, labels: Value) -> bool {
        LabelSelector::parse(selector)
            .map(|s| s.matches(&labelled(labels)))
            .unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn every_label_operator_matches_like_kubernetes() {
        let labels = json!({ "app": "web", "tier": "front", "example.com/team": "a" });
        assert!(matches("app=web", labels.clone()));
        assert!(matches("app==web", labels.clone()));
        assert!(!matches("app!=web", labels.clone()));
        assert!(matches("app!=db", labels.clone()));
        assert!(matches("missing!=x", labels.clone()));
        assert!(matches("tier in (front, back)", labels.clone()));
        assert!(!matches("tier notin (front,back)", labels.clone()));
        assert!(matches("missing notin (front)", labels.clone()));
        assert!(!matches("missing in (front)", labels.clone()));
        assert!(matches("example.com/team", labels.clone()));
        assert!(matches("!missing", labels.clone()));
        assert!(!matches("!app", labels.clone()));
        assert!(matches("app=web,tier in (front),!missing", labels.clone()));
        assert!(!matches("app=web,tier=back", labels));
        // A key containing "in" is not an operator.
        assert!(matches("inside=yes", json!({ "inside": "yes" })));
    }

    #[test]
    fn malformed_label_selectors_are_bad_requests() {
        for bad in ["app in (a", "app in a", "a b=c", "app=(x)"] {
            let err = LabelSelector::parse(bad).expect_err(bad);
            assert_eq!(err.code, 400, "{bad}");
        }
    }
}
