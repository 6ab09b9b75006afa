//! `$(path)` references between pattern fields, resolved once when the pattern is compiled.
//!
//! As in Kyverno, a reference names another leaf of the policy's own pattern (not of the
//! resource): `$(./../../limits/memory)` is relative to the field holding it, `/spec/...` is
//! absolute from the pattern root (a `/validate/pattern` prefix is accepted too). An operator
//! may lead the path (`$(<=./../x)`), producing e.g. `"<=2048Mi"`. `\$(` is left alone.

use serde_json::Value;

use super::anchor::strip_anchor;

/// How many references may chain through each other before we call it a cycle.
const MAX_REFERENCE_HOPS: usize = 32;

/// Replaces every `$(...)` reference in the string leaves of `pattern`.
pub fn resolve_references(pattern: &Value) -> Result<Value, (String, String)> {
    let mut path = Vec::new();
    resolve_node(pattern, pattern, &mut path)
}

fn resolve_node(
    root: &Value,
    node: &Value,
    path: &mut Vec<String>,
) -> Result<Value, (String, String)> {
    Ok(match node {
        Value::Object(map) => {
            let mut out = serde_json::Map::with_capacity(map.len());
            for (key, child) in map {
                path.push(key.clone());
                let resolved = resolve_node(root, child, path);
                path.pop();
                out.insert(key.clone(), resolved?);
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, child) in items.iter().enumerate() {
                path.push(i.to_string());
                let resolved = resolve_node(root, child, path);
                path.pop();
                out.push(resolved?);
            }
            Value::Array(out)
        }
        Value::String(text) => resolve_string(root, text, path, 0)?,
        other => other.clone(),
    })
}

fn resolve_string(
    root: &Value,
    text: &str,
    location: &[String],
    hops: usize,
) -> Result<Value, (String, String)> {
    let spans = find_references(text);
    if spans.is_empty() {
        return Ok(Value::String(text.to_owned()));
    }
    let fail = |reason: String| (location.join("."), reason);
    if hops >= MAX_REFERENCE_HOPS {
        return Err(fail("references form a cycle".to_owned()));
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (start, end) in &spans {
        let reference = text.get(*start..*end).unwrap_or_default();
        let resolved = resolve_one(root, reference, location, hops).map_err(fail)?;
        // A reference that is the whole value keeps the referenced type.
        if spans.len() == 1 && *start == 0 && *end == text.len() {
            return Ok(resolved);
        }
        out.push_str(text.get(last..*start).unwrap_or_default());
        match resolved {
            Value::String(s) => out.push_str(&s),
            other => out.push_str(&other.to_string()),
        }
        last = *end;
    }
    out.push_str(text.get(last..).unwrap_or_default());
    Ok(Value::String(out))
}

/// Byte spans of `$(...)` references: not preceded by `\`, at least one character inside, and
/// running to the last `)` before the next space.
fn find_references(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(offset) = text.get(i..).and_then(|rest| rest.find("$(")) {
        let start = i + offset;
        let escaped = start > 0 && bytes.get(start - 1) == Some(&b'\\');
        let body_start = start + 2;
        let run_end = text.get(body_start..).map_or(text.len(), |rest| {
            rest.find(' ').map_or(text.len(), |n| body_start + n)
        });
        let close = text
            .get(body_start + 1..run_end)
            .and_then(|run| run.rfind(')'))
            .map(|n| body_start + 1 + n);
        match close {
            Some(close) if !escaped => {
                spans.push((start, close + 1));
                i = close + 1;
            }
            _ => i = body_start,
        }
    }
    spans
}

fn resolve_one(
    root: &Value,
    reference: &str,
    location: &[String],
    hops: usize,
) -> Result<Value, String> {
    let inner = reference.trim_matches(|c| c == '$' || c == '(' || c == ')');
    let (operator, target) = ["<=", ">=", "<", ">", "!"]
        .iter()
        .find_map(|op| inner.strip_prefix(op).map(|rest| (*op, rest)))
        .filter(|_| inner.len() >= 2)
        .unwrap_or(("", inner));
    if target.is_empty() {
        return Err(format!("reference {reference} has an empty path"));
    }
    let segments = absolute_segments(target, location)
        .ok_or_else(|| format!("reference {reference} points outside the pattern"))?;
    let found = lookup(root, &segments)
        .ok_or_else(|| format!("reference {reference} does not name a value in the pattern"))?;
    let found = match found {
        Value::String(s) => {
            resolve_string(root, s, &segments, hops + 1).map_err(|(_, reason)| reason)?
        }
        Value::Null | Value::Object(_) | Value::Array(_) => {
            return Err(format!(
                "reference {reference} does not name a scalar value"
            ));
        }
        other => other.clone(),
    };
    if operator.is_empty() {
        return Ok(found);
    }
    let text = match &found {
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.to_string(),
            None => format!("{:.6}", n.as_f64().unwrap_or_default()),
        },
        other => {
            return Err(format!(
                "operator {operator} cannot be used with the referenced value {other}"
            ))
        }
    };
    Ok(Value::String(format!("{operator}{text}")))
}

/// Resolves `target` against the location of the referencing field (which includes its own
/// key), like `path.Join`.
fn absolute_segments(target: &str, location: &[String]) -> Option<Vec<String>> {
    let mut segments: Vec<String> = if let Some(absolute) = target.strip_prefix('/') {
        let absolute = absolute
            .strip_prefix("validate/pattern/")
            .unwrap_or(absolute);
        return Some(
            absolute
                .split('/')
                .filter(|s| !s.is_empty() && *s != ".")
                .map(|s| strip_anchor(s).to_owned())
                .collect(),
        );
    } else {
        location
            .iter()
            .map(|s| strip_anchor(s).to_owned())
            .collect()
    };
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                segments.pop()?;
            }
            name => segments.push(strip_anchor(name).to_owned()),
        }
    }
    Some(segments)
}

/// Finds the value at `segments`, comparing object keys without their anchors.
fn lookup<'a>(root: &'a Value, segments: &[String]) -> Option<&'a Value> {
    let mut node = root;
    for segment in segments {
        node = match node {
            Value::Object(map) => map.get(segment.as_str()).or_else(|| {
                map.iter()
                    .find(|(k, _)| strip_anchor(k) == segment)
                    .map(|(_, v)| v)
            })?,
            Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_references_like_kyverno() {
        assert_eq!(find_references("$(./a)"), vec![(0, 6)]);
        assert_eq!(find_references("x=$(./a), y"), vec![(2, 8)]);
        assert_eq!(find_references("$()"), Vec::<(usize, usize)>::new());
        assert_eq!(find_references(r"\$(./a)"), Vec::<(usize, usize)>::new());
        assert_eq!(find_references("$(<=./../../lim(its/mem)ory)").len(), 1);
        assert_eq!(find_references("$"), Vec::<(usize, usize)>::new());
        assert_eq!(find_references("$(a) $(b)"), vec![(0, 4), (5, 9)]);
    }

    #[test]
    fn resolves_relative_absolute_and_operator_references() {
        let pattern = json!({"spec": {"^(containers)": [{
            "livenessProbe": {"tcpSocket": {"port": "$(<./../../../readinessProbe/tcpSocket/port)"}},
            "readinessProbe": {"tcpSocket": {"port": 3000}},
            "name": "$(/spec/containers/0/readinessProbe/tcpSocket/port)"
        }]}});
        let resolved = resolve_references(&pattern).unwrap_or_default();
        let container = &resolved["spec"]["^(containers)"][0];
        assert_eq!(
            container["livenessProbe"]["tcpSocket"]["port"],
            json!("<3000")
        );
        assert_eq!(container["name"], json!(3000));
    }

    #[test]
    fn unresolvable_references_are_errors() {
        for bad in ["$(./../nope)", "$(>2048)", "$(./../../../../../../x)"] {
            let pattern = json!({"spec": {"a": bad, "b": "1"}});
            assert!(resolve_references(&pattern).is_err(), "{bad}");
        }
        let cycle = json!({"a": "$(./../b)", "b": "$(./../a)"});
        assert!(resolve_references(&cycle).is_err());
    }
}
