//! Case-insensitive field matching for the CLI input files.
//!
//! Kyverno decodes test, values and user-info files with Go's JSON rules, under which a key
//! matches a struct field regardless of case when no exact match exists (`isMUtatingPolicy` reads
//! as `isMutatingPolicy`). [`CaseFolding`] reproduces that for any serde-derived type: whenever
//! a struct is requested, keys that are not field names exactly are renamed to the field whose
//! name is equal ignoring case. Maps and free-form values keep their keys untouched.

use serde::de::value::StringDeserializer;
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::forward_to_deserialize_any;
use serde_json::{Map, Value};

/// A deserializer over a JSON value that matches struct field names case-insensitively.
pub(crate) struct CaseFolding(pub(crate) Value);

fn fold_keys(object: Map<String, Value>, fields: &'static [&'static str]) -> Map<String, Value> {
    if object.keys().all(|key| fields.contains(&key.as_str())) {
        return object;
    }
    let mut folded = Map::with_capacity(object.len());
    for (key, value) in object {
        let name = if fields.contains(&key.as_str()) {
            key
        } else {
            match fields.iter().find(|field| field.eq_ignore_ascii_case(&key)) {
                Some(field) => (*field).to_owned(),
                None => key,
            }
        };
        // Two keys naming the same field: the later one wins, as in Go.
        folded.insert(name, value);
    }
    folded
}

impl<'de> de::Deserializer<'de> for CaseFolding {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Array(items) => visitor.visit_seq(FoldingSeq(items.into_iter())),
            Value::Object(object) => visitor.visit_map(FoldingMap::new(object)),
            other => de::Deserializer::deserialize_any(other, visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            other => visitor.visit_some(CaseFolding(other)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Object(object) => visitor.visit_map(FoldingMap::new(fold_keys(object, fields))),
            other => de::Deserializer::deserialize_struct(other, name, fields, visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        de::Deserializer::deserialize_enum(self.0, name, variants, visitor)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit
        unit_struct seq tuple tuple_struct map identifier ignored_any
    }
}

struct FoldingSeq(std::vec::IntoIter<Value>);

impl<'de> SeqAccess<'de> for FoldingSeq {
    type Error = serde_json::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        self.0
            .next()
            .map(|value| seed.deserialize(CaseFolding(value)))
            .transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct FoldingMap {
    entries: serde_json::map::IntoIter,
    pending: Option<Value>,
}

impl FoldingMap {
    fn new(object: Map<String, Value>) -> Self {
        Self {
            entries: object.into_iter(),
            pending: None,
        }
    }
}

impl<'de> MapAccess<'de> for FoldingMap {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        match self.entries.next() {
            Some((key, value)) => {
                self.pending = Some(value);
                let key: StringDeserializer<serde_json::Error> = key.into_deserializer();
                seed.deserialize(key).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let value = self.pending.take().unwrap_or(Value::Null);
        seed.deserialize(CaseFolding(value))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}
