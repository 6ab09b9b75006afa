//! Field lookups on JSON objects for the hot paths of evaluation.
//!
//! serde_json's order-preserving map hashes every looked-up key with SipHash, which costs more
//! than comparing a few short keys; Kubernetes objects and policy patterns are small maps, so
//! scanning them is faster. Iteration order is not touched.

use serde_json::{Map, Value};

/// Largest object searched by comparing keys rather than hashing (measured with callgrind on
/// the Pod Security benchmark: 12–16 entries is where the two cost the same).
const SCAN_LIMIT: usize = 12;

/// `get` by key, scanning small objects.
pub(crate) trait Lookup {
    fn field(&self, key: &str) -> Option<&Value>;
}

impl Lookup for Map<String, Value> {
    #[inline]
    fn field(&self, key: &str) -> Option<&Value> {
        if self.len() <= SCAN_LIMIT {
            self.iter().find(|(k, _)| k.as_str() == key).map(|(_, v)| v)
        } else {
            self.get(key)
        }
    }
}

/// `get_mut` by key, scanning small objects.
pub(crate) fn field_mut<'m>(map: &'m mut Map<String, Value>, key: &str) -> Option<&'m mut Value> {
    if map.len() <= SCAN_LIMIT {
        map.iter_mut()
            .find(|(k, _)| k.as_str() == key)
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
}
