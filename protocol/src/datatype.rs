//! The tensor datatypes of the Open Inference Protocol v2.

use serde::{Deserialize, Serialize};

/// A tensor element type, named as the protocol names it (`"FP32"`, `"INT64"`, ...).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[rkyv(derive(Debug, Clone, Copy, PartialEq, Eq))]
#[serde(rename_all = "UPPERCASE")]
pub enum DataType {
    /// One byte per element, 0 or 1.
    Bool,
    /// Unsigned 8-bit integer.
    Uint8,
    /// Unsigned 16-bit integer.
    Uint16,
    /// Unsigned 32-bit integer.
    Uint32,
    /// Unsigned 64-bit integer.
    Uint64,
    /// Signed 8-bit integer.
    Int8,
    /// Signed 16-bit integer.
    Int16,
    /// Signed 32-bit integer.
    Int32,
    /// Signed 64-bit integer.
    Int64,
    /// IEEE half precision.
    Fp16,
    /// bfloat16.
    Bf16,
    /// IEEE single precision.
    Fp32,
    /// IEEE double precision.
    Fp64,
    /// Variable-length byte strings, each a 4-byte little-endian length and its bytes.
    Bytes,
}

impl DataType {
    /// Every datatype, in protocol order.
    pub const ALL: [DataType; 14] = [
        DataType::Bool,
        DataType::Uint8,
        DataType::Uint16,
        DataType::Uint32,
        DataType::Uint64,
        DataType::Int8,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::Fp16,
        DataType::Bf16,
        DataType::Fp32,
        DataType::Fp64,
        DataType::Bytes,
    ];

    /// The protocol's name for this datatype, e.g. `"FP32"`.
    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Bool => "BOOL",
            DataType::Uint8 => "UINT8",
            DataType::Uint16 => "UINT16",
            DataType::Uint32 => "UINT32",
            DataType::Uint64 => "UINT64",
            DataType::Int8 => "INT8",
            DataType::Int16 => "INT16",
            DataType::Int32 => "INT32",
            DataType::Int64 => "INT64",
            DataType::Fp16 => "FP16",
            DataType::Bf16 => "BF16",
            DataType::Fp32 => "FP32",
            DataType::Fp64 => "FP64",
            DataType::Bytes => "BYTES",
        }
    }

    /// Parses a protocol datatype name; `None` for anything else.
    pub fn parse(name: &str) -> Option<DataType> {
        DataType::ALL.into_iter().find(|dt| dt.as_str() == name)
    }

    /// Bytes per element, or `None` for the variable-length `BYTES`.
    pub fn element_size(self) -> Option<usize> {
        match self {
            DataType::Bool | DataType::Uint8 | DataType::Int8 => Some(1),
            DataType::Uint16 | DataType::Int16 | DataType::Fp16 | DataType::Bf16 => Some(2),
            DataType::Uint32 | DataType::Int32 | DataType::Fp32 => Some(4),
            DataType::Uint64 | DataType::Int64 | DataType::Fp64 => Some(8),
            DataType::Bytes => None,
        }
    }

    /// The name Triton's model configuration uses, e.g. `"TYPE_FP32"`.
    pub fn config_name(self) -> &'static str {
        match self {
            DataType::Bool => "TYPE_BOOL",
            DataType::Uint8 => "TYPE_UINT8",
            DataType::Uint16 => "TYPE_UINT16",
            DataType::Uint32 => "TYPE_UINT32",
            DataType::Uint64 => "TYPE_UINT64",
            DataType::Int8 => "TYPE_INT8",
            DataType::Int16 => "TYPE_INT16",
            DataType::Int32 => "TYPE_INT32",
            DataType::Int64 => "TYPE_INT64",
            DataType::Fp16 => "TYPE_FP16",
            DataType::Bf16 => "TYPE_BF16",
            DataType::Fp32 => "TYPE_FP32",
            DataType::Fp64 => "TYPE_FP64",
            DataType::Bytes => "TYPE_STRING",
        }
    }
}

impl From<ArchivedDataType> for DataType {
    fn from(archived: ArchivedDataType) -> DataType {
        match archived {
            ArchivedDataType::Bool => DataType::Bool,
            ArchivedDataType::Uint8 => DataType::Uint8,
            ArchivedDataType::Uint16 => DataType::Uint16,
            ArchivedDataType::Uint32 => DataType::Uint32,
            ArchivedDataType::Uint64 => DataType::Uint64,
            ArchivedDataType::Int8 => DataType::Int8,
            ArchivedDataType::Int16 => DataType::Int16,
            ArchivedDataType::Int32 => DataType::Int32,
            ArchivedDataType::Int64 => DataType::Int64,
            ArchivedDataType::Fp16 => DataType::Fp16,
            ArchivedDataType::Bf16 => DataType::Bf16,
            ArchivedDataType::Fp32 => DataType::Fp32,
            ArchivedDataType::Fp64 => DataType::Fp64,
            ArchivedDataType::Bytes => DataType::Bytes,
        }
    }
}

impl std::fmt::Display for DataType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for dt in DataType::ALL {
            assert_eq!(DataType::parse(dt.as_str()), Some(dt));
            let json = serde_json::to_string(&dt).unwrap();
            assert_eq!(json, format!("\"{}\"", dt.as_str()));
        }
        assert_eq!(DataType::parse("fp32"), None);
        assert_eq!(DataType::parse("FLOAT"), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(DataType::Fp32.element_size(), Some(4));
        assert_eq!(DataType::Bool.element_size(), Some(1));
        assert_eq!(DataType::Int64.element_size(), Some(8));
        assert_eq!(DataType::Bytes.element_size(), None);
    }
}
