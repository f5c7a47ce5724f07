//! OpenAPI schemas derived from the API's own types.
//!
//! [`api_type!`](crate::api_type) declares a struct once: the struct with its
//! serde derives, and its [`Schema`] from the field types and the doc
//! comments. [`FieldSchema`] gives each field type its schema; API types
//! appear as references to their component.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// A type with a component in `docs/openapi.yaml`.
pub trait Schema {
    /// The component's name.
    const NAME: &'static str;
    /// The component's schema.
    fn schema() -> Value;
}

/// The schema of a field of this type, and whether the field may be left out.
pub trait FieldSchema {
    /// The field's schema.
    fn field_schema() -> Value;
    /// Whether a field of this type may be absent.
    fn optional() -> bool {
        false
    }
}

macro_rules! scalar {
    ($($t:ty => $schema:tt),* $(,)?) => {
        $(impl FieldSchema for $t {
            fn field_schema() -> Value {
                json!($schema)
            }
        })*
    };
}

scalar! {
    String => {"type": "string"},
    bool => {"type": "boolean"},
    u32 => {"type": "integer", "minimum": 0},
    u64 => {"type": "integer", "minimum": 0},
    i64 => {"type": "integer"},
    f64 => {"type": "number"},
}

impl<T: FieldSchema> FieldSchema for Option<T> {
    fn field_schema() -> Value {
        T::field_schema()
    }

    fn optional() -> bool {
        true
    }
}

impl<T: FieldSchema> FieldSchema for Vec<T> {
    fn field_schema() -> Value {
        json!({"type": "array", "items": T::field_schema()})
    }
}

impl<T: FieldSchema> FieldSchema for BTreeMap<String, T> {
    fn field_schema() -> Value {
        json!({"type": "object", "additionalProperties": T::field_schema()})
    }
}

impl FieldSchema for serde_json::Value {
    fn field_schema() -> Value {
        json!({})
    }
}

impl FieldSchema for maas_protocol::ModelConfig {
    fn field_schema() -> Value {
        reference("ModelConfig")
    }
}

/// A reference to the component `name`.
pub fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// Adds a description to a field's schema (beside a `$ref`, as an `allOf`).
pub fn described(schema: Value, description: &str) -> Value {
    if description.is_empty() {
        return schema;
    }
    match schema {
        Value::Object(mut map) if !map.contains_key("$ref") => {
            map.insert("description".into(), description.into());
            Value::Object(map)
        }
        other => json!({"allOf": [other], "description": description}),
    }
}

/// The text of doc comments, joined into one line.
pub fn doc_text(lines: &[&str]) -> String {
    lines.iter().map(|l| l.trim()).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

/// Declares an API type: a struct with serde derives, and its [`Schema`].
#[macro_export]
macro_rules! api_type {
    (
        $(#[doc = $doc:literal])*
        pub struct $name:ident {
            $(
                $(#[doc = $field_doc:literal])*
                $(#[serde($($serde:tt)*)])?
                pub $field:ident : $ty:ty
            ),* $(,)?
        }
    ) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        pub struct $name {
            $(
                $(#[doc = $field_doc])*
                $(#[serde($($serde)*)])?
                pub $field: $ty,
            )*
        }

        impl $crate::schema::Schema for $name {
            const NAME: &'static str = stringify!($name);

            fn schema() -> serde_json::Value {
                let mut properties = serde_json::Map::new();
                let mut required: Vec<&str> = Vec::new();
                $(
                    properties.insert(
                        stringify!($field).to_string(),
                        $crate::schema::described(
                            <$ty as $crate::schema::FieldSchema>::field_schema(),
                            &$crate::schema::doc_text(&[$($field_doc),*]),
                        ),
                    );
                    if !<$ty as $crate::schema::FieldSchema>::optional() {
                        required.push(stringify!($field));
                    }
                )*
                serde_json::json!({
                    "type": "object",
                    "description": $crate::schema::doc_text(&[$($doc),*]),
                    "required": required,
                    "properties": properties,
                })
            }
        }

        impl $crate::schema::FieldSchema for $name {
            fn field_schema() -> serde_json::Value {
                $crate::schema::reference(stringify!($name))
            }
        }
    };
}
