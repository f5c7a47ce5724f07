//! What goes into and comes out of a model: a LibTorch tensor, or a tensor
//! of text for the formats that take strings (ONNX Runtime's string
//! tensors). BYTES on the wire becomes [`Value::Text`] here, checked to be
//! UTF-8 without NUL bytes (ONNX Runtime copies each element as a C string).

use maas_protocol::strings;
use tch::Tensor;

/// One input or output of a model.
pub enum Value {
    /// Numbers, on the instance's device.
    Tensor(Tensor),
    /// Text elements, row-major.
    Text(TextTensor),
}

/// A tensor of strings.
#[derive(Debug, Clone, PartialEq)]
pub struct TextTensor {
    /// Its shape; the first dimension is the batch.
    pub shape: Vec<i64>,
    /// Its elements, row-major; as many as the shape holds.
    pub elements: Vec<String>,
}

impl TextTensor {
    /// Reads checked BYTES data (see `strings::count`) of `shape`;
    /// refuses an element that is not UTF-8 or holds a NUL byte.
    pub fn from_bytes(name: &str, shape: Vec<i64>, data: &[u8]) -> Result<TextTensor, String> {
        let elements = strings::elements(data)
            .enumerate()
            .map(|(index, element)| {
                let text = strings::as_text(element).map_err(|why| format!("input '{name}': element {index} {why}"))?;
                Ok(text.to_string())
            })
            .collect::<Result<Vec<String>, String>>()?;
        Ok(TextTensor { shape, elements })
    }

    /// The BYTES wire form of the elements.
    pub fn to_bytes(&self) -> Vec<u8> {
        strings::encode(self.elements.iter().map(String::as_bytes))
    }

    /// Rows `start..start + len`.
    pub fn rows(&self, start: i64, len: i64) -> TextTensor {
        let per_row: usize = self.shape.iter().skip(1).map(|&d| d.max(0) as usize).product();
        let first = start as usize * per_row;
        let mut shape = self.shape.clone();
        shape[0] = len;
        TextTensor { shape, elements: self.elements[first..first + len as usize * per_row].to_vec() }
    }
}

impl Value {
    /// Rows `start..start + len` (a view for tensors, a copy for text).
    pub fn rows(&self, start: i64, len: i64) -> Value {
        match self {
            Value::Tensor(tensor) => Value::Tensor(tensor.narrow(0, start, len)),
            Value::Text(text) => Value::Text(text.rows(start, len)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_and_slices_by_rows() {
        let data = strings::encode(["a", "bé", "", "dd", "e", "f"].map(str::as_bytes));
        let text = TextTensor::from_bytes("t", vec![3, 2], &data).unwrap();
        assert_eq!(text.to_bytes(), data);
        let middle = text.rows(1, 1);
        assert_eq!(middle.shape, vec![1, 2]);
        assert_eq!(middle.elements, vec!["", "dd"]);
    }

    #[test]
    fn refuses_what_onnx_runtime_cannot_hold() {
        let data = strings::encode([b"fine".as_slice(), &[0xff, 0xfe]]);
        let error = TextTensor::from_bytes("t", vec![2, 1], &data).unwrap_err();
        assert_eq!(error, "input 't': element 1 is not UTF-8 text");
        let data = strings::encode([b"a\0b".as_slice()]);
        assert_eq!(
            TextTensor::from_bytes("t", vec![1, 1], &data).unwrap_err(),
            "input 't': element 0 holds a NUL byte"
        );
    }
}
