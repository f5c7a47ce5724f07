//! A named tensor as it travels: datatype, shape and raw little-endian bytes.

use crate::DataType;

/// A tensor on the wire. `data` holds the elements row-major and little-endian;
/// its length is checked against `shape` by [`crate::validate`] before use.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Tensor {
    /// The input or output name from the model configuration.
    pub name: String,
    /// Element type.
    pub datatype: DataType,
    /// Dimensions, batch dimension first.
    pub shape: Vec<i64>,
    /// Raw elements, row-major, little-endian.
    pub data: Vec<u8>,
}

impl ArchivedTensor {
    /// The shape as native integers.
    pub fn shape_vec(&self) -> Vec<i64> {
        self.shape.iter().map(|d| d.to_native()).collect()
    }
}
