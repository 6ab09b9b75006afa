//! JSON documents in and out of CEL values. Objects enter an evaluation borrowed: strings and
//! map keys point into the JSON document, so a request's object is never copied as text.

use std::collections::HashMap;

use cel::common::types::{
    CelBool, CelBytes, CelDouble, CelDuration, CelInt, CelList, CelMap, CelMapKey, CelNull,
    CelOptional, CelString, CelTimestamp, CelUInt,
};
use cel::common::value::Val;
use serde_json::Value;

/// A JSON value as a CEL value borrowing its strings. Integers become `int` (as Kubernetes
/// decodes JSON for CEL), other numbers `double`.
pub fn to_val(value: &Value) -> Box<dyn Val + '_> {
    match value {
        Value::Null => Box::new(CelNull),
        Value::Bool(b) => Box::new(CelBool::from(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Box::new(CelInt::from(i)),
            None => match n.as_u64() {
                Some(u) => Box::new(CelUInt::from(u)),
                None => Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN))),
            },
        },
        Value::String(s) => Box::new(CelString::from(s.as_str())),
        Value::Array(items) => {
            Box::new(CelList::from(items.iter().map(to_val).collect::<Vec<_>>()))
        }
        Value::Object(map) => {
            let entries: HashMap<CelMapKey<'_>, Box<dyn Val + '_>> = map
                .iter()
                .map(|(k, v)| (CelMapKey::from(k.as_str()), to_val(v)))
                .collect();
            Box::new(CelMap::from(entries))
        }
    }
}

/// A JSON value as a CEL value that owns its data (for values made during an evaluation).
pub fn to_owned_val(value: &Value) -> Box<dyn Val + 'static> {
    match value {
        Value::String(s) => Box::new(CelString::from(s.clone())),
        Value::Array(items) => Box::new(CelList::from(
            items.iter().map(to_owned_val).collect::<Vec<_>>(),
        )),
        Value::Object(map) => {
            let entries: HashMap<CelMapKey<'static>, Box<dyn Val>> = map
                .iter()
                .map(|(k, v)| (CelMapKey::from(k.clone()), to_owned_val(v)))
                .collect();
            Box::new(CelMap::from(entries))
        }
        Value::Null => Box::new(CelNull),
        Value::Bool(b) => Box::new(CelBool::from(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Box::new(CelInt::from(i)),
            None => match n.as_u64() {
                Some(u) => Box::new(CelUInt::from(u)),
                None => Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN))),
            },
        },
    }
}

/// Why a CEL value has no JSON form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a value of type {0} cannot be represented as JSON")]
pub struct NotJson(pub String);

/// A CEL value as JSON: durations and timestamps as their Kubernetes strings, bytes as base64,
/// an optional as its value (or null), map keys as strings.
pub fn to_json(value: &dyn Val) -> Result<Value, NotJson> {
    if let Some(b) = value.downcast_ref::<CelBool>() {
        return Ok(Value::Bool(*b.inner()));
    }
    if let Some(i) = value.downcast_ref::<CelInt>() {
        return Ok(Value::from(*i.inner()));
    }
    if let Some(u) = value.downcast_ref::<CelUInt>() {
        return Ok(Value::from(*u.inner()));
    }
    if let Some(d) = value.downcast_ref::<CelDouble>() {
        return Ok(serde_json::Number::from_f64(*d.inner())
            .map(Value::Number)
            .unwrap_or(Value::Null));
    }
    if let Some(s) = value.downcast_ref::<CelString>() {
        return Ok(Value::String(s.inner().to_owned()));
    }
    if value.downcast_ref::<CelNull>().is_some() {
        return Ok(Value::Null);
    }
    if let Some(list) = value.downcast_ref::<CelList>() {
        return list
            .inner()
            .iter()
            .map(|item| to_json(item.as_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array);
    }
    if let Some(map) = value.downcast_ref::<CelMap>() {
        let mut entries: Vec<(String, Value)> = Vec::new();
        let iterable = map.as_iterable().ok_or_else(|| NotJson("map".to_owned()))?;
        let indexer = map.as_indexer().ok_or_else(|| NotJson("map".to_owned()))?;
        let mut keys = iterable.iter();
        while let Some(key) = keys.next() {
            let name = match to_json(key)? {
                Value::String(s) => s,
                other => other.to_string(),
            };
            let item = indexer
                .get(key)
                .map_err(|e| NotJson(format!("map ({e})")))?;
            entries.push((name, to_json(item.as_ref())?));
        }
        // Deterministic output: keys sorted.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        return Ok(Value::Object(entries.into_iter().collect()));
    }
    if let Some(optional) = value.downcast_ref::<CelOptional>() {
        return match optional.option() {
            Some(inner) => to_json(inner),
            None => Ok(Value::Null),
        };
    }
    if let Some(d) = value.downcast_ref::<CelDuration>() {
        let nanos = d.inner().num_nanoseconds().unwrap_or(i64::MAX);
        return Ok(Value::String(crate::quantity::format_duration(nanos)));
    }
    if let Some(t) = value.downcast_ref::<CelTimestamp>() {
        return Ok(Value::String(
            t.inner()
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        ));
    }
    if let Some(b) = value.downcast_ref::<CelBytes>() {
        use base64::Engine as _;
        return Ok(Value::String(
            base64::engine::general_purpose::STANDARD.encode(b.inner()),
        ));
    }
    if let Some(text) = super::library::display(value) {
        return Ok(Value::String(text));
    }
    Err(NotJson(value.get_type().name().to_owned()))
}

/// A value as the text a message shows: strings as they are, anything else as JSON.
pub fn to_text(value: &dyn Val) -> String {
    match to_json(value) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => format!("<{}>", value.get_type().name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_round_trips_through_cel_values() {
        let doc =
            json!({"a": [1, 2.5, "x", null, true], "b": {"c": -3}, "big": 18446744073709551615u64});
        let val = to_val(&doc);
        assert_eq!(to_json(val.as_ref()).unwrap(), doc);
    }

    #[test]
    fn integers_are_ints_and_fractions_doubles() {
        assert!(to_val(&json!(3)).downcast_ref::<CelInt>().is_some());
        assert!(to_val(&json!(3.5)).downcast_ref::<CelDouble>().is_some());
    }
}
