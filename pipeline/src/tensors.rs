//! Tensors between steps: reading numbers out, building new ones, and
//! cutting a request's rows into micro-batches and joining them again.

use bytes::Bytes;
use maas_protocol::{strings, DataType, TensorBytes};

/// A step's failure, before the step's name is put on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepError {
    /// The request's data is bad for this step (400).
    Input(String),
    /// The pipeline or its artifacts are wrong (500).
    Pipeline(String),
}

/// The FP32 values of `tensor`, as `rows` rows of equal length.
pub fn f32_rows(tensor: &TensorBytes, rows: usize) -> Result<(Vec<f32>, usize), StepError> {
    if tensor.datatype != DataType::Fp32 {
        return Err(StepError::Pipeline(format!("'{}' is {}, not FP32", tensor.name, tensor.datatype)));
    }
    let values: Vec<f32> =
        tensor.data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect();
    if rows == 0 || values.len() % rows != 0 {
        return Err(StepError::Pipeline(format!("'{}' does not split into {rows} rows", tensor.name)));
    }
    let per_row = values.len() / rows;
    if per_row == 0 {
        return Err(StepError::Input(format!("'{}' has no values in its rows", tensor.name)));
    }
    Ok((values, per_row))
}

/// The strings of a BYTES tensor holding one element per row.
pub fn one_string_per_row(tensor: &TensorBytes, rows: usize) -> Result<Vec<&[u8]>, StepError> {
    if tensor.datatype != DataType::Bytes {
        return Err(StepError::Input(format!("'{}' is {}, not BYTES", tensor.name, tensor.datatype)));
    }
    let elements: Vec<&[u8]> = strings::elements(&tensor.data).collect();
    if elements.len() != rows {
        return Err(StepError::Input(format!(
            "'{}' has {} elements for {rows} rows; give one per row",
            tensor.name,
            elements.len()
        )));
    }
    Ok(elements)
}

/// A tensor named `name` of `shape` from little-endian `data`.
pub fn tensor(name: &str, datatype: DataType, shape: Vec<i64>, data: Vec<u8>) -> TensorBytes {
    TensorBytes { name: name.to_string(), datatype, shape, data: Bytes::from(data) }
}

/// An INT64 tensor of `rows` rows of `per_row` values.
pub fn int64(name: &str, rows: usize, per_row: usize, values: impl IntoIterator<Item = i64>) -> TensorBytes {
    let data: Vec<u8> = values.into_iter().flat_map(i64::to_le_bytes).collect();
    tensor(name, DataType::Int64, vec![rows as i64, per_row as i64], data)
}

/// An FP32 tensor of `shape`.
pub fn fp32(name: &str, shape: Vec<i64>, values: &[f32]) -> TensorBytes {
    tensor(name, DataType::Fp32, shape, values.iter().flat_map(|v| v.to_le_bytes()).collect())
}

/// Where each of `tensor`'s `rows` rows starts in its data, and where the
/// last ends (`rows + 1` offsets), found in one pass.
pub fn row_offsets(tensor: &TensorBytes, rows: usize) -> Vec<usize> {
    if tensor.datatype == DataType::Bytes {
        let per_row: usize = tensor.shape[1..].iter().map(|&d| d.max(0) as usize).product();
        let ends = strings::row_ends(&tensor.data, rows, per_row).expect("checked BYTES data holds its rows");
        std::iter::once(0).chain(ends).collect()
    } else {
        let row_bytes = tensor.data.len() / rows.max(1);
        (0..=rows).map(|row| row * row_bytes).collect()
    }
}

/// `tensor`'s rows `start..end`, by its [`row_offsets`], sharing its bytes.
pub fn slice_rows(tensor: &TensorBytes, offsets: &[usize], start: usize, end: usize) -> TensorBytes {
    let range = offsets[start]..offsets[end];
    let mut shape = tensor.shape.clone();
    shape[0] = (end - start) as i64;
    TensorBytes { name: tensor.name.clone(), datatype: tensor.datatype, shape, data: tensor.data.slice(range) }
}

/// The parts of one tensor, in row order, joined along the first
/// dimension; refused when they disagree on anything but their rows.
pub fn concat_rows(parts: Vec<TensorBytes>) -> Result<TensorBytes, String> {
    if parts.len() == 1 {
        return Ok(parts.into_iter().next().expect("one part"));
    }
    let first = &parts[0];
    if let Some(odd) = parts.iter().find(|p| p.datatype != first.datatype || p.shape[1..] != first.shape[1..]) {
        return Err(format!(
            "micro-batches of '{}' disagree: {} {:?} and {} {:?}",
            odd.name, first.datatype, first.shape, odd.datatype, odd.shape
        ));
    }
    let mut shape = parts[0].shape.clone();
    shape[0] = parts.iter().map(|p| p.shape[0]).sum();
    let mut data = Vec::with_capacity(parts.iter().map(|p| p.data.len()).sum());
    for part in &parts {
        data.extend_from_slice(&part.data);
    }
    Ok(tensor(&parts[0].name, parts[0].datatype, shape, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_cut_and_join_back_for_numbers_and_strings() {
        let numbers = fp32("x", vec![3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let text = tensor("t", DataType::Bytes, vec![3, 1], strings::encode([b"a".as_slice(), b"bcd", b""]));
        for original in [numbers, text] {
            let offsets = row_offsets(&original, 3);
            let parts = vec![slice_rows(&original, &offsets, 0, 2), slice_rows(&original, &offsets, 2, 3)];
            assert_eq!(parts[0].shape[0], 2);
            assert_eq!(concat_rows(parts), Ok(original));
        }
        let wide = fp32("x", vec![1, 3], &[1.0, 2.0, 3.0]);
        let narrow = fp32("x", vec![1, 2], &[1.0, 2.0]);
        assert!(concat_rows(vec![wide, narrow]).unwrap_err().contains("disagree"));
    }

    #[test]
    fn strings_must_be_one_per_row() {
        let text = tensor("t", DataType::Bytes, vec![2, 1], strings::encode([b"a".as_slice(), b"b"]));
        assert_eq!(one_string_per_row(&text, 2).unwrap(), vec![b"a".as_slice(), b"b"]);
        assert!(matches!(one_string_per_row(&text, 3), Err(StepError::Input(_))));
        let numbers = fp32("x", vec![1, 1], &[1.0]);
        assert!(matches!(one_string_per_row(&numbers, 1), Err(StepError::Input(_))));
    }
}
