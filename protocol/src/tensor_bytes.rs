//! A tensor whose elements are shared bytes, as the coordinator handles
//! requests and answers.
//!
//! `data` is a [`Bytes`], so an input can be a slice of the HTTP body and an
//! output a slice of the node's answer, without copies.

use crate::DataType;
use bytes::Bytes;

/// A named tensor whose elements are raw little-endian bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorBytes {
    /// Input or output name.
    pub name: String,
    /// Element type.
    pub datatype: DataType,
    /// Dimensions, batch first.
    pub shape: Vec<i64>,
    /// Elements, row-major, little-endian (BYTES: length-prefixed strings).
    pub data: Bytes,
}
