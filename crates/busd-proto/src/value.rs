//! ValueSet: the SDK's typed payload, MessagePack on the wire.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// One value in a [`ValueSet`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    /// No value.
    Nil,
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// An unsigned integer too large for `i64`.
    UInt(u64),
    /// A float.
    Float(f64),
    /// A string.
    String(String),
    /// Raw bytes.
    Bytes(ByteBuf),
    /// A list.
    Array(Vec<Value>),
    /// A nested map.
    Map(BTreeMap<String, Value>),
}

// Untagged derive would read MessagePack `bin` as a string (rmp-serde lets a
// UTF-8 bin pass as str), so the visitor maps each wire type by hand.
impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> serde::de::Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a MessagePack value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::UInt(v), Value::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Bytes(ByteBuf::from(v)))
    }
    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bytes(ByteBuf::from(v)))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = BTreeMap::new();
        while let Some((k, v)) = map.next_entry::<String, Value>()? {
            entries.insert(k, v);
        }
        Ok(Value::Map(entries))
    }
}

/// A map of string keys to values, as Windows app services pass a
/// `ValueSet`; encoded as a MessagePack map.
///
/// Any serde type converts to and from it:
/// ```
/// use busd_proto::{Value, ValueSet};
/// #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
/// struct Forecast { city: String, high: i64 }
///
/// let f = Forecast { city: "Paris".into(), high: 21 };
/// let set = ValueSet::from_serde(&f)?;
/// assert_eq!(set.get("high"), Some(&Value::Int(21)));
/// let bytes = set.to_bytes()?;
/// let back: Forecast = ValueSet::from_bytes(&bytes)?.to_serde()?;
/// assert_eq!(back, f);
/// # Ok::<(), busd_proto::ValueSetError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ValueSet(BTreeMap<String, Value>);

/// Why a value set could not be built or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ValueSetError {
    /// Encoding failed (the value is not a map of string keys).
    #[error("cannot encode as a value set: {0}")]
    Encode(String),
    /// The bytes are not a MessagePack map, or not of the asked type.
    #[error("cannot decode the value set: {0}")]
    Decode(String),
}

impl ValueSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value`, returning the value it had.
    pub fn insert(&mut self, key: impl Into<String>, value: Value) -> Option<Value> {
        self.0.insert(key.into(), value)
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// The entries, ordered by key.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.0.iter()
    }

    /// Converts any serde value that serializes as a map.
    ///
    /// # Errors
    /// [`ValueSetError`] if `value` is not a map or struct.
    pub fn from_serde<T: Serialize>(value: &T) -> Result<Self, ValueSetError> {
        let bytes =
            rmp_serde::to_vec_named(value).map_err(|e| ValueSetError::Encode(e.to_string()))?;
        Self::from_bytes(&bytes)
    }

    /// Converts into any serde type.
    ///
    /// # Errors
    /// [`ValueSetError::Decode`] if the entries do not fit `T`.
    pub fn to_serde<T: DeserializeOwned>(&self) -> Result<T, ValueSetError> {
        let bytes = self.to_bytes()?;
        rmp_serde::from_slice(&bytes).map_err(|e| ValueSetError::Decode(e.to_string()))
    }

    /// Encodes as a MessagePack map, the payload form.
    ///
    /// # Errors
    /// [`ValueSetError::Encode`], which a value set never gives in practice.
    pub fn to_bytes(&self) -> Result<Bytes, ValueSetError> {
        rmp_serde::to_vec_named(self)
            .map(Bytes::from)
            .map_err(|e| ValueSetError::Encode(e.to_string()))
    }

    /// Decodes a payload.
    ///
    /// # Errors
    /// [`ValueSetError::Decode`] if `bytes` is not a MessagePack map with string keys.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ValueSetError> {
        rmp_serde::from_slice(bytes).map_err(|e| ValueSetError::Decode(e.to_string()))
    }
}

impl FromIterator<(String, Value)> for ValueSet {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_values_round_trip() {
        let mut inner = BTreeMap::new();
        inner.insert("x".to_owned(), Value::Float(1.5));
        let set: ValueSet = [
            ("nil".to_owned(), Value::Nil),
            ("flag".to_owned(), Value::Bool(true)),
            ("neg".to_owned(), Value::Int(-3)),
            ("big".to_owned(), Value::UInt(u64::MAX)),
            ("name".to_owned(), Value::String("Paris".into())),
            ("raw".to_owned(), Value::Bytes(ByteBuf::from(vec![1, 2, 3]))),
            (
                "list".to_owned(),
                Value::Array(vec![Value::Int(1), Value::String("a".into())]),
            ),
            ("map".to_owned(), Value::Map(inner)),
        ]
        .into_iter()
        .collect();
        let bytes = set.to_bytes().unwrap();
        assert_eq!(ValueSet::from_bytes(&bytes).unwrap(), set);
    }

    #[test]
    fn non_map_payload_is_refused() {
        let bytes = rmp_serde::to_vec(&42u8).unwrap();
        assert!(ValueSet::from_bytes(&bytes).is_err());
        assert!(ValueSet::from_bytes(b"not msgpack at all").is_err());
    }
}
