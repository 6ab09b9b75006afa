//! Variable-based conditions used by preconditions, `deny` blocks and exceptions.

use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::crd::preserve_unknown_schema;

/// One condition: `key <operator> value`, where key and value may hold JMESPath variables.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Left-hand side; any JSON value, usually a string with `{{ }}` variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Value>,

    /// Comparison to perform, e.g. `Equals`, `AnyIn`, `GreaterThan`, `DurationLessThan`.
    /// Kept as text so that unknown or legacy operators reach the engine, which reports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,

    /// Right-hand side; any JSON value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,

    /// Message shown when this condition decides the outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Conditions grouped into `any` (at least one must hold) and `all` (every one must hold).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnyAllConditions {
    /// At least one of these conditions must hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub any: Option<Vec<Condition>>,

    /// Every one of these conditions must hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<Vec<Condition>>,
}

/// A condition block as written in a policy: either the `{any: [...], all: [...]}` form or the
/// legacy plain list (where every condition must hold).
#[derive(Clone, Debug, PartialEq)]
pub enum Conditions {
    /// The `{any, all}` form.
    AnyAll(AnyAllConditions),
    /// The legacy list form; all conditions must hold.
    List(Vec<Condition>),
}

impl Default for Conditions {
    fn default() -> Self {
        Conditions::AnyAll(AnyAllConditions::default())
    }
}

impl Serialize for Conditions {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Conditions::AnyAll(any_all) => any_all.serialize(serializer),
            Conditions::List(list) => list.serialize(serializer),
        }
    }
}

// Dispatch on the shape instead of `#[serde(untagged)]` so that errors inside a condition keep
// their field path and a precise reason.
impl<'de> Deserialize<'de> for Conditions {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ConditionsVisitor;

        impl<'de> Visitor<'de> for ConditionsVisitor {
            type Value = Conditions;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map with `any`/`all` lists, or a list of conditions")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Conditions, A::Error> {
                AnyAllConditions::deserialize(MapAccessDeserializer::new(map))
                    .map(Conditions::AnyAll)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Conditions, A::Error> {
                Vec::<Condition>::deserialize(SeqAccessDeserializer::new(seq)).map(Conditions::List)
            }
        }

        deserializer.deserialize_any(ConditionsVisitor)
    }
}

impl JsonSchema for Conditions {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Conditions".into()
    }

    fn inline_schema() -> bool {
        true
    }

    // Two shapes (object or array) cannot be expressed in a structural schema, so the API server
    // is told to keep the value as is; bylaw validates it when the policy is compiled.
    fn json_schema(_generator: &mut SchemaGenerator) -> Schema {
        preserve_unknown_schema(
            "Conditions as `{any: [...], all: [...]}`, or a legacy list of conditions that must all hold.",
        )
    }
}

impl Conditions {
    /// The `any` conditions (empty for the legacy list form).
    pub fn any(&self) -> &[Condition] {
        match self {
            Conditions::AnyAll(any_all) => any_all.any.as_deref().unwrap_or_default(),
            Conditions::List(_) => &[],
        }
    }

    /// The conditions that must all hold: `all` or the legacy list.
    pub fn all(&self) -> &[Condition] {
        match self {
            Conditions::AnyAll(any_all) => any_all.all.as_deref().unwrap_or_default(),
            Conditions::List(list) => list,
        }
    }
}
