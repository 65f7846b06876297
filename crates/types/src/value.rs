use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A record's metadata: schemaless, every record may carry different keys.
pub type Metadata = BTreeMap<String, Value>;

/// A JSON-like metadata value.
///
/// Externally tagged so that non-self-describing encoders (bincode) can store it. `Int` and
/// `Float` are distinct: `Int(2)` and `Float(2.0)` round-trip as what they were.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub enum Value {
    /// JSON `null`.
    #[default]
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A signed 64-bit integer.
    Int(i64),
    /// A 64-bit float (always finite when it came from JSON).
    Float(f64),
    /// A UTF-8 string.
    Str(String),
    /// An ordered list of values.
    List(Vec<Value>),
    /// A nested object.
    Map(BTreeMap<String, Value>),
}

/// Why a JSON value could not become a [`Value`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// An integer outside the `i64` range (JSON allows `u64` up to 2^64-1).
    #[error("integer {0} does not fit in a signed 64-bit integer")]
    IntegerOutOfRange(String),
    /// Metadata must be a JSON object at the top level.
    #[error("metadata must be a JSON object, got {0}")]
    NotAnObject(&'static str),
}

impl Value {
    /// A short name of the value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Map(_) => "object",
        }
    }

    /// The value as `f64` when it is a number (int or float).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Int(i) => Some(i as f64),
            Value::Float(f) => Some(f),
            _ => None,
        }
    }

    /// The string, when the value is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Follows a JSON path of object keys and list indexes; `None` when any step is missing.
    pub fn get_path<'a>(&'a self, path: &[PathStep<'_>]) -> Option<&'a Value> {
        let mut cur = self;
        for step in path {
            cur = match (step, cur) {
                (PathStep::Key(k), Value::Map(m)) => m.get(*k)?,
                (PathStep::Index(i), Value::List(l)) => l.get(*i)?,
                _ => return None,
            };
        }
        Some(cur)
    }
}

/// One step of a JSON path into a [`Value`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathStep<'a> {
    /// An object key.
    Key(&'a str),
    /// A list index.
    Index(usize),
}

impl TryFrom<serde_json::Value> for Value {
    type Error = ValueError;
    fn try_from(v: serde_json::Value) -> Result<Self, ValueError> {
        Ok(match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Value::Int(i)
                } else if n.is_u64() {
                    return Err(ValueError::IntegerOutOfRange(n.to_string()));
                } else {
                    // serde_json numbers that are neither i64 nor u64 are finite f64.
                    Value::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            serde_json::Value::String(s) => Value::Str(s),
            serde_json::Value::Array(a) => Value::List(
                a.into_iter()
                    .map(Value::try_from)
                    .collect::<Result<_, _>>()?,
            ),
            serde_json::Value::Object(o) => Value::Map(
                o.into_iter()
                    .map(|(k, v)| Ok((k, Value::try_from(v)?)))
                    .collect::<Result<_, ValueError>>()?,
            ),
        })
    }
}

/// Converts a JSON object into [`Metadata`]; anything but an object is an error.
pub fn metadata_from_json(v: serde_json::Value) -> Result<Metadata, ValueError> {
    match Value::try_from(v)? {
        Value::Map(m) => Ok(m),
        other => Err(ValueError::NotAnObject(other.type_name())),
    }
}

/// Converts [`Metadata`] into a JSON object.
pub fn metadata_to_json(m: Metadata) -> serde_json::Value {
    Value::Map(m).into()
}

impl From<Value> for serde_json::Value {
    /// Lossless except for non-finite floats, which JSON cannot hold: they become `null`.
    fn from(v: Value) -> Self {
        match v {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(b),
            Value::Int(i) => serde_json::Value::from(i),
            Value::Float(f) => serde_json::Number::from_f64(f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Str(s) => serde_json::Value::String(s),
            Value::List(l) => serde_json::Value::Array(l.into_iter().map(Into::into).collect()),
            Value::Map(m) => {
                serde_json::Value::Object(m.into_iter().map(|(k, v)| (k, v.into())).collect())
            }
        }
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int(v.into())
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}
impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(v: Vec<T>) -> Self {
        Value::List(v.into_iter().map(Into::into).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_round_trip_keeps_int_and_float_apart() {
        let j = json!({"i": 2, "f": 2.0, "n": null, "b": true, "s": "x",
                       "l": [1, "a", [2.5]], "m": {"deep": {"k": -7}}});
        let v = Value::try_from(j.clone()).unwrap();
        let Value::Map(m) = &v else {
            panic!("not a map")
        };
        assert_eq!(m["i"], Value::Int(2));
        assert_eq!(m["f"], Value::Float(2.0));
        assert_eq!(serde_json::Value::from(v), j);
    }

    #[test]
    fn huge_unsigned_is_an_error_not_a_truncation() {
        let err = Value::try_from(json!(u64::MAX)).unwrap_err();
        assert!(matches!(err, ValueError::IntegerOutOfRange(_)));
    }

    #[test]
    fn metadata_must_be_an_object() {
        assert_eq!(
            metadata_from_json(json!([1])).unwrap_err(),
            ValueError::NotAnObject("list")
        );
    }

    #[test]
    fn paths_walk_keys_and_indexes() {
        let v = Value::try_from(json!({"a": {"b": [10, 20]}})).unwrap();
        let p = [PathStep::Key("a"), PathStep::Key("b"), PathStep::Index(1)];
        assert_eq!(v.get_path(&p), Some(&Value::Int(20)));
        assert_eq!(v.get_path(&[PathStep::Key("zz")]), None);
        assert_eq!(v.get_path(&[PathStep::Index(0)]), None);
    }
}
