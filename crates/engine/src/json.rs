//! JSON for the hot paths of evaluation: field lookups on objects, and decoding.
//!
//! serde_json's order-preserving map hashes every looked-up key with SipHash, which costs more
//! than comparing a few short keys; Kubernetes objects and policy patterns are small maps, so
//! scanning them is faster. Iteration order is not touched.

use serde_json::{Map, Value};

/// Largest object searched by comparing keys rather than hashing (measured with callgrind on
/// the Pod Security benchmark: 12–16 entries is where the two cost the same).
const SCAN_LIMIT: usize = 12;

/// `a == b`, ruling most unequal keys out by length and first byte before comparing the
/// rest: object keys and kinds are short, and a call to `memcmp` for each key of the same
/// length as the wanted one was most of a field lookup.
#[inline]
pub(crate) fn same_key(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.as_bytes().first() == b.as_bytes().first() && a == b
}

/// `get` by key, scanning small objects.
pub(crate) trait Lookup {
    fn field(&self, key: &str) -> Option<&Value>;
}

impl Lookup for Map<String, Value> {
    #[inline]
    fn field(&self, key: &str) -> Option<&Value> {
        if self.len() <= SCAN_LIMIT {
            self.iter().find(|(k, _)| same_key(k, key)).map(|(_, v)| v)
        } else {
            self.get(key)
        }
    }
}

/// `get_mut` by key, scanning small objects.
pub(crate) fn field_mut<'m>(map: &'m mut Map<String, Value>, key: &str) -> Option<&'m mut Value> {
    if map.len() <= SCAN_LIMIT {
        map.iter_mut()
            .find(|(k, _)| same_key(k, key))
            .map(|(_, v)| v)
    } else {
        map.get_mut(key)
    }
}

impl Lookup for Value {
    /// The field of an object; `None` for anything else (as `Value::get` with a `&str`).
    #[inline]
    fn field(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(map) => map.field(key),
            _ => None,
        }
    }
}

/// `a == b` as serde_json compares values (objects by key, whatever their order), comparing
/// the members of objects whose keys come in the same order pairwise instead of looking each key
/// up by hash: a patched resource is compared with its input on every mutation.
pub(crate) fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            if x.len() != y.len() {
                return false;
            }
            for ((key_a, value_a), (key_b, value_b)) in x.iter().zip(y) {
                if key_a != key_b {
                    // Another order: compare by key from here on, as serde_json does.
                    return x
                        .iter()
                        .all(|(key, value)| y.get(key).is_some_and(|other| equal(value, other)));
                }
                if !equal(value_a, value_b) {
                    return false;
                }
            }
            true
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| equal(a, b))
        }
        _ => a == b,
    }
}

/// Makes `dst` equal to `src`, keeping what already matches: objects with the same keys in the
/// same order and arrays of the same length are updated member by member, strings reuse their
/// buffers. Updating the context's copy of an object after a small patch then copies only the
/// patched parts instead of the whole object.
pub(crate) fn assign(dst: &mut Value, src: &Value) {
    match (dst, src) {
        (Value::Object(d), Value::Object(s))
            if d.len() == s.len() && d.keys().zip(s.keys()).all(|(a, b)| a == b) =>
        {
            for ((_, dv), sv) in d.iter_mut().zip(s.values()) {
                assign(dv, sv);
            }
        }
        (Value::Array(d), Value::Array(s)) if d.len() == s.len() => {
            for (dv, sv) in d.iter_mut().zip(s) {
                assign(dv, sv);
            }
        }
        (Value::String(d), Value::String(s)) => {
            if d != s {
                d.clone_from(s);
            }
        }
        (dst, src) => *dst = src.clone(),
    }
}

/// Decodes a JSON value as `Value::deserialize` does, with each object and array allocated once
/// at its final size: the members are first collected on one scratch stack shared by the whole
/// document and then moved into a map or vector of the right capacity, instead of growing
/// (and, for maps, rehashing) entry by entry. Same values, same key order, same handling of
/// repeated keys (the last value wins, in the first one's place), same recursion limit (the
/// deserializer's). For an optional field: `null` is `None`, as for `Option<Value>`.
pub fn deserialize_optional_value<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Value>, D::Error> {
    deserializer.deserialize_option(OptionalValue(Leave::Nothing))
}

/// [`deserialize_optional_value`] for a Kubernetes object, leaving out its
/// `metadata.managedFields`. They are read through (so ill-formed or too deeply nested JSON is
/// refused as when they are kept) but not built.
pub fn deserialize_optional_object_without_managed_fields<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Value>, D::Error> {
    deserializer.deserialize_option(OptionalValue(Leave::ManagedFieldsOfObject))
}

/// What decoding leaves out, as it goes down.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Leave {
    Nothing,
    /// At the object's root: leave out its metadata's managedFields.
    ManagedFieldsOfObject,
    /// In the object's metadata: leave out `managedFields`.
    ManagedFields,
}

struct OptionalValue(Leave);

impl<'de> serde::de::Visitor<'de> for OptionalValue {
    type Value = Option<Value>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value or null")
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let mut scratch = Scratch::default();
        serde::de::DeserializeSeed::deserialize(ValueSeed::new(&mut scratch, self.0), d).map(Some)
    }
}

/// Members of the objects and elements of the arrays being decoded, innermost last.
#[derive(Default)]
struct Scratch {
    members: Vec<(String, Value)>,
    elements: Vec<Value>,
}

struct ValueSeed<'s> {
    scratch: &'s mut Scratch,
    leave: Leave,
}

impl<'s> ValueSeed<'s> {
    fn new(scratch: &'s mut Scratch, leave: Leave) -> Self {
        ValueSeed { scratch, leave }
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any valid JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        serde::de::DeserializeSeed::deserialize(self, d)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let start = self.scratch.elements.len();
        while let Some(element) =
            seq.next_element_seed(ValueSeed::new(self.scratch, Leave::Nothing))?
        {
            self.scratch.elements.push(element);
        }
        Ok(Value::Array(self.scratch.elements.drain(start..).collect()))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let start = self.scratch.members.len();
        while let Some(key) = map.next_key::<String>()? {
            let leave = match (self.leave, key.as_str()) {
                (Leave::ManagedFieldsOfObject, "metadata") => Leave::ManagedFields,
                (Leave::ManagedFields, "managedFields") => {
                    map.next_value_seed(Discard)?;
                    continue;
                }
                _ => Leave::Nothing,
            };
            let value = map.next_value_seed(ValueSeed::new(self.scratch, leave))?;
            self.scratch.members.push((key, value));
        }
        let mut object = Map::with_capacity(self.scratch.members.len() - start);
        for (key, value) in self.scratch.members.drain(start..) {
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Reads a value through the deserializer (its syntax checks and recursion limit) without
/// building it.
struct Discard;

impl<'de> serde::de::DeserializeSeed<'de> for Discard {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(Discard)
    }
}

impl<'de> serde::de::Visitor<'de> for Discard {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any valid JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        serde::de::DeserializeSeed::deserialize(Discard, d)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Discard)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key_seed(Discard)?.is_some() {
            map.next_value_seed(Discard)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn small_and_large_objects_find_the_same_fields() {
        let small = json!({"a": 1, "b": {"c": 2}});
        assert_eq!(small.field("a"), Some(&json!(1)));
        assert_eq!(small.field("b").and_then(|b| b.field("c")), Some(&json!(2)));
        assert_eq!(small.field("z"), None);
        assert_eq!(json!([1, 2]).field("a"), None);
        assert_eq!(json!("a").field("a"), None);
        let mut large = Map::new();
        for i in 0..(SCAN_LIMIT * 2) {
            large.insert(format!("k{i}"), Value::from(i));
        }
        let large = Value::Object(large);
        for i in 0..(SCAN_LIMIT * 2) {
            assert_eq!(large.field(&format!("k{i}")), Some(&Value::from(i)));
        }
        assert_eq!(large.field("missing"), None);
    }

    /// `equal` agrees with serde_json's `==` whatever the order of keys.
    #[test]
    fn equal_is_serde_jsons_equality() {
        let values = [
            json!({"a": 1, "b": [1, {"c": 2}]}),
            json!({"b": [1, {"c": 2}], "a": 1}),
            json!({"a": 1, "b": [1, {"c": 3}]}),
            json!({"a": 1, "b": [1, {"c": 2}], "d": null}),
            json!({"a": 1.0, "b": [1, {"c": 2}]}),
            json!({"a": 1, "x": [1, {"c": 2}]}),
            json!([1, 2]),
            json!([2, 1]),
            json!("a"),
            json!(null),
        ];
        for a in &values {
            for b in &values {
                assert_eq!(equal(a, b), a == b, "{a} vs {b}");
            }
        }
    }

    /// Whatever the two sides share, the result is the source: same order, same types, same
    /// number spellings (`-0.0` stays `-0.0`).
    #[test]
    fn assign_makes_the_destination_equal_to_the_source() {
        let cases = [
            (json!({"a": 1, "b": [1, 2]}), json!({"a": 1, "b": [1, 3]})),
            (json!({"a": 1, "b": 2}), json!({"b": 2, "a": 1})),
            (json!({"a": 1}), json!({"a": 1, "c": {"d": "e"}})),
            (json!({"a": [1, 2, 3]}), json!({"a": [1, 2]})),
            (json!({"a": "x"}), json!({"a": "yy"})),
            (json!({"a": 0.0}), json!({"a": -0.0})),
            (json!({"a": {"b": 1}}), json!({"a": [1]})),
            (json!([{"n": "x"}, null]), json!([{"n": "y"}, true])),
            (json!(null), json!({"a": 1})),
        ];
        for (before, after) in cases {
            let mut dst = before.clone();
            assign(&mut dst, &after);
            assert_eq!(dst, after, "{before} -> {after}");
            assert_eq!(dst.to_string(), after.to_string(), "{before} -> {after}");
        }
    }

    fn decoded(text: &str) -> Result<Value, String> {
        let mut de = serde_json::Deserializer::from_str(text);
        let value = deserialize_optional_value(&mut de)
            .map_err(|e| e.to_string())?
            .unwrap_or(Value::Null);
        de.end().map_err(|e| e.to_string())?;
        Ok(value)
    }

    fn decoded_without_managed_fields(text: &str) -> Result<Option<Value>, String> {
        let mut de = serde_json::Deserializer::from_str(text);
        let value = deserialize_optional_object_without_managed_fields(&mut de)
            .map_err(|e| e.to_string())?;
        de.end().map_err(|e| e.to_string())?;
        Ok(value)
    }

    fn nested(depth: usize) -> String {
        format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn decoding_gives_what_serde_json_gives() {
        let texts = [
            r#"{"b": 1, "a": [1, -2, 3.5, 1e3, 18446744073709551615, -9223372036854775808], "c": {"z": null, "y": true}}"#,
            r#"{"k": 1, "j": 2, "k": 3}"#,
            r#"{"s": "\u00e9\n\"q\"", "e": {}, "l": [], "n": [[{"x": [{}]}]]}"#,
            r#"[{"a": 1}, {"a": 2, "b": [null]}]"#,
            r#""text""#,
            "1e400",
            r#"{"a": }"#,
            r#"{"a": 1"#,
            &nested(127),
            &nested(200),
        ];
        for text in texts {
            let ours = decoded(text);
            let theirs = serde_json::from_str::<Value>(text).map_err(|e| e.to_string());
            // Same values, same key order (compared as text), same errors.
            assert_eq!(
                ours.as_ref().map(Value::to_string),
                theirs.as_ref().map(Value::to_string),
                "{text}"
            );
            assert_eq!(ours, theirs, "{text}");
        }
    }

    #[test]
    fn only_the_objects_own_managed_fields_are_left_out() {
        let object = serde_json::json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "managedFields": "kept: not in metadata",
            "metadata": {
                "name": "web",
                "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {"f:replicas": {}}}}],
                "labels": {"managedFields": "kept: a label"}
            },
            "spec": {"template": {"metadata": {"managedFields": ["kept: not the object's"]}}}
        });
        let mut expected = object.clone();
        if let Some(metadata) = expected["metadata"].as_object_mut() {
            metadata.shift_remove("managedFields");
        }
        let left_out = decoded_without_managed_fields(&object.to_string());
        assert_eq!(
            left_out.as_ref().map(|v| v.as_ref().map(Value::to_string)),
            Ok(Some(expected.to_string()))
        );
        assert_eq!(decoded_without_managed_fields("null"), Ok(None));
        assert_eq!(
            decoded_without_managed_fields(r#"{"metadata": "not an object"}"#),
            Ok(Some(serde_json::json!({"metadata": "not an object"})))
        );
    }

    #[test]
    fn managed_fields_left_out_are_still_checked_as_json() {
        // Refused exactly when decoding them whole is refused: bad syntax, or nesting past the
        // deserializer's limit.
        for managed_fields in [
            nested(120),
            nested(200),
            "[1,]".to_owned(),
            "{\"a\" 1}".to_owned(),
        ] {
            let text = format!(r#"{{"metadata": {{"managedFields": {managed_fields}}}}}"#);
            let whole = serde_json::from_str::<Value>(&text).map_err(|e| e.to_string());
            let left_out = decoded_without_managed_fields(&text);
            assert_eq!(whole.is_err(), left_out.is_err(), "{text}");
            if let (Err(whole), Err(left_out)) = (whole, left_out) {
                assert_eq!(whole, left_out, "{text}");
            }
        }
    }
}
