//! Tensor elements between JSON and raw little-endian bytes.
//!
//! Incoming `data` is parsed straight from the request's JSON text into
//! the tensor's bytes, element by element, without building a JSON tree.

use std::fmt;

use half::{bf16, f16};
use maas_protocol::DataType;
use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;

/// Parses `data` (flat or nested arrays, row-major) into raw bytes of
/// `datatype`, reserving room for `expected` elements; returns the bytes and
/// the element count. Errors name `input`.
pub fn to_bytes(input: &str, datatype: DataType, data: &RawValue, expected: usize) -> Result<(Vec<u8>, usize), String> {
    // The shape is the client's word; the text bounds what it can hold (an
    // element and its comma take at least two characters).
    let possible = data.get().len() / 2 + 1;
    let mut out = Vec::with_capacity(expected.min(possible).saturating_mul(datatype.element_size().unwrap_or(1)));
    let mut count = 0usize;
    let mut parser = serde_json::Deserializer::from_str(data.get());
    Elements { input, datatype, out: &mut out, count: &mut count }
        .deserialize(&mut parser)
        .map_err(|e| e.to_string())?;
    Ok((out, count))
}

/// Appends every element of a (nested) JSON array, or one scalar.
struct Elements<'a> {
    input: &'a str,
    datatype: DataType,
    out: &'a mut Vec<u8>,
    count: &'a mut usize,
}

impl Elements<'_> {
    fn push<E: de::Error>(self, scalar: Value) -> Result<(), E> {
        push_element(self.out, self.datatype, &scalar).ok_or_else(|| {
            E::custom(format!(
                "element {} of input '{}' is not a valid {}: {scalar}",
                self.count, self.input, self.datatype
            ))
        })?;
        *self.count += 1;
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Elements<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Elements<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        write!(formatter, "{} elements of input '{}' in (nested) arrays", self.datatype, self.input)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        let Elements { input, datatype, out, count } = self;
        while items.next_element_seed(Elements { input, datatype, out: &mut *out, count: &mut *count })?.is_some() {}
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<(), E> {
        self.push(Value::from(value))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<(), E> {
        self.push(Value::from(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<(), E> {
        self.push(Value::from(value))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<(), E> {
        self.push(Value::from(value))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<(), E> {
        self.push(Value::from(value))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.push(Value::Null)
    }

    fn visit_map<A: de::MapAccess<'de>>(self, _map: A) -> Result<(), A::Error> {
        self.push(Value::Object(Default::default()))
    }
}

fn push_element(out: &mut Vec<u8>, datatype: DataType, value: &Value) -> Option<()> {
    match datatype {
        DataType::Bool => out.push(u8::from(value.as_bool()?)),
        DataType::Uint8 => out.push(u8::try_from(value.as_u64()?).ok()?),
        DataType::Uint16 => out.extend_from_slice(&u16::try_from(value.as_u64()?).ok()?.to_le_bytes()),
        DataType::Uint32 => out.extend_from_slice(&u32::try_from(value.as_u64()?).ok()?.to_le_bytes()),
        DataType::Uint64 => out.extend_from_slice(&value.as_u64()?.to_le_bytes()),
        DataType::Int8 => out.extend_from_slice(&i8::try_from(value.as_i64()?).ok()?.to_le_bytes()),
        DataType::Int16 => out.extend_from_slice(&i16::try_from(value.as_i64()?).ok()?.to_le_bytes()),
        DataType::Int32 => out.extend_from_slice(&i32::try_from(value.as_i64()?).ok()?.to_le_bytes()),
        DataType::Int64 => out.extend_from_slice(&value.as_i64()?.to_le_bytes()),
        DataType::Fp16 => out.extend_from_slice(&f16::from_f64(value.as_f64()?).to_le_bytes()),
        DataType::Bf16 => out.extend_from_slice(&bf16::from_f64(value.as_f64()?).to_le_bytes()),
        DataType::Fp32 => out.extend_from_slice(&(value.as_f64()? as f32).to_le_bytes()),
        DataType::Fp64 => out.extend_from_slice(&value.as_f64()?.to_le_bytes()),
        DataType::Bytes => {
            let text = value.as_str()?;
            out.extend_from_slice(&u32::try_from(text.len()).ok()?.to_le_bytes());
            out.extend_from_slice(text.as_bytes());
        }
    }
    Some(())
}

/// Raw tensor bytes serialized as a flat JSON array.
pub struct JsonData<'a> {
    /// Element type.
    pub datatype: DataType,
    /// Raw little-endian elements.
    pub bytes: &'a [u8],
}

impl serde::Serialize for JsonData<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        macro_rules! numbers {
            ($ty:ty, $size:expr, $convert:expr) => {{
                let mut seq = serializer.serialize_seq(Some(self.bytes.len() / $size))?;
                for chunk in self.bytes.chunks_exact($size) {
                    let value = <$ty>::from_le_bytes(chunk.try_into().expect("chunks_exact yields whole elements"));
                    seq.serialize_element(&$convert(value))?;
                }
                seq.end()
            }};
        }
        match self.datatype {
            DataType::Bool => {
                let mut seq = serializer.serialize_seq(Some(self.bytes.len()))?;
                for &b in self.bytes {
                    seq.serialize_element(&(b != 0))?;
                }
                seq.end()
            }
            DataType::Uint8 => numbers!(u8, 1, |v| v),
            DataType::Uint16 => numbers!(u16, 2, |v| v),
            DataType::Uint32 => numbers!(u32, 4, |v| v),
            DataType::Uint64 => numbers!(u64, 8, |v| v),
            DataType::Int8 => numbers!(i8, 1, |v| v),
            DataType::Int16 => numbers!(i16, 2, |v| v),
            DataType::Int32 => numbers!(i32, 4, |v| v),
            DataType::Int64 => numbers!(i64, 8, |v| v),
            DataType::Fp16 => numbers!(u16, 2, |v| f16::from_bits(v).to_f32()),
            DataType::Bf16 => numbers!(u16, 2, |v| bf16::from_bits(v).to_f32()),
            DataType::Fp32 => numbers!(f32, 4, |v| v),
            DataType::Fp64 => numbers!(f64, 8, |v| v),
            DataType::Bytes => {
                let mut seq = serializer.serialize_seq(None)?;
                let mut rest = self.bytes;
                while rest.len() >= 4 {
                    let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
                    let end = (4 + len).min(rest.len());
                    seq.serialize_element(&String::from_utf8_lossy(&rest[4..end]))?;
                    rest = &rest[end..];
                }
                seq.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(input: &str, datatype: DataType, data: Value) -> Result<(Vec<u8>, usize), String> {
        let raw = RawValue::from_string(data.to_string()).unwrap();
        to_bytes(input, datatype, &raw, 0)
    }

    fn round_trip(datatype: DataType, data: Value) -> Value {
        let (bytes, _) = parse("x", datatype, data).unwrap();
        serde_json::to_value(JsonData { datatype, bytes: &bytes }).unwrap()
    }

    #[test]
    fn nested_arrays_flatten_row_major() {
        let (bytes, count) = parse("x", DataType::Int32, json!([[1, 2], [3, 4]])).unwrap();
        assert_eq!(count, 4);
        assert_eq!(bytes, [1i32, 2, 3, 4].iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>());
    }

    #[test]
    fn every_datatype_round_trips() {
        assert_eq!(round_trip(DataType::Bool, json!([true, false])), json!([true, false]));
        assert_eq!(round_trip(DataType::Uint8, json!([0, 255])), json!([0, 255]));
        assert_eq!(round_trip(DataType::Uint64, json!([u64::MAX])), json!([u64::MAX]));
        assert_eq!(round_trip(DataType::Int8, json!([-128, 127])), json!([-128, 127]));
        assert_eq!(round_trip(DataType::Int64, json!([i64::MIN])), json!([i64::MIN]));
        assert_eq!(round_trip(DataType::Fp16, json!([0.5, -2.0])), json!([0.5, -2.0]));
        assert_eq!(round_trip(DataType::Bf16, json!([1.5])), json!([1.5]));
        assert_eq!(round_trip(DataType::Fp32, json!([0.1])), json!([0.1f32]));
        assert_eq!(round_trip(DataType::Fp64, json!([0.1])), json!([0.1]));
        assert_eq!(round_trip(DataType::Bytes, json!(["ab", ""])), json!(["ab", ""]));
    }

    #[test]
    fn bad_elements_are_named() {
        let err = parse("ids", DataType::Int8, json!([1, 300])).unwrap_err();
        assert!(err.contains("element 1 of input 'ids' is not a valid INT8"), "{err}");
        let err = parse("x", DataType::Fp32, json!([1.0, "a"])).unwrap_err();
        assert!(err.contains("element 1"), "{err}");
        assert!(parse("b", DataType::Bool, json!([1])).is_err());
        assert!(parse("u", DataType::Uint32, json!([-1])).is_err());
        let err = parse("x", DataType::Fp32, json!([[1.0], {"a": 1}])).unwrap_err();
        assert!(err.contains("element 1 of input 'x' is not a valid FP32"), "{err}");
        assert!(parse("x", DataType::Fp32, json!(null)).is_err());
    }
}
