//! Tensor elements as numbers, for the monitors.

use maas_protocol::DataType;

use maas_protocol::TensorBytes;

/// The elements of `tensor` as `f64` (`None` for BYTES), at most `limit`
/// elements per row, with the row length used.
pub fn rows_as_f64(tensor: &TensorBytes, limit: usize) -> Option<(Vec<f64>, usize)> {
    let size = tensor.datatype.element_size()?;
    let row_len: usize = tensor.shape.iter().skip(1).map(|d| usize::try_from(*d).unwrap_or(0)).product();
    let rows = usize::try_from(*tensor.shape.first()?).ok()?;
    if row_len == 0 || tensor.data.len() != rows * row_len * size {
        return None;
    }
    let kept = row_len.min(limit);
    let mut values = Vec::with_capacity(rows * kept);
    for row in tensor.data.chunks_exact(row_len * size) {
        for element in row.chunks_exact(size).take(kept) {
            values.push(element_as_f64(tensor.datatype, element));
        }
    }
    Some((values, kept))
}

fn element_as_f64(datatype: DataType, bytes: &[u8]) -> f64 {
    let array = |n: usize| -> [u8; 8] {
        let mut buffer = [0u8; 8];
        buffer[..n].copy_from_slice(&bytes[..n]);
        buffer
    };
    match datatype {
        DataType::Bool | DataType::Uint8 => f64::from(bytes[0]),
        DataType::Int8 => f64::from(bytes[0] as i8),
        DataType::Uint16 => f64::from(u16::from_le_bytes([bytes[0], bytes[1]])),
        DataType::Int16 => f64::from(i16::from_le_bytes([bytes[0], bytes[1]])),
        DataType::Uint32 => f64::from(u32::from_le_bytes(array(4)[..4].try_into().expect("4 bytes"))),
        DataType::Int32 => f64::from(i32::from_le_bytes(array(4)[..4].try_into().expect("4 bytes"))),
        DataType::Uint64 => u64::from_le_bytes(array(8)) as f64,
        DataType::Int64 => i64::from_le_bytes(array(8)) as f64,
        DataType::Fp16 => f64::from(half::f16::from_le_bytes([bytes[0], bytes[1]])),
        DataType::Bf16 => f64::from(half::bf16::from_le_bytes([bytes[0], bytes[1]])),
        DataType::Fp32 => f64::from(f32::from_le_bytes(array(4)[..4].try_into().expect("4 bytes"))),
        DataType::Fp64 => f64::from_le_bytes(array(8)),
        DataType::Bytes => f64::NAN,
    }
}

/// The index of the largest of `values` (the first on ties).
pub fn argmax(values: &[f64]) -> usize {
    values.iter().enumerate().fold(0, |best, (i, v)| if *v > values[best] { i } else { best })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn rows_decode_and_are_cut_to_the_limit() {
        let data: Vec<u8> = [1.5f32, -2.0, 3.0, 4.0, 5.0, 6.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let tensor =
            TensorBytes { name: "x".into(), datatype: DataType::Fp32, shape: vec![2, 3], data: Bytes::from(data) };
        assert_eq!(rows_as_f64(&tensor, 8), Some((vec![1.5, -2.0, 3.0, 4.0, 5.0, 6.0], 3)));
        assert_eq!(rows_as_f64(&tensor, 2), Some((vec![1.5, -2.0, 4.0, 5.0], 2)));
        let ints: Vec<u8> = [-3i64, 7].iter().flat_map(|v| v.to_le_bytes()).collect();
        let tensor =
            TensorBytes { name: "i".into(), datatype: DataType::Int64, shape: vec![2, 1], data: Bytes::from(ints) };
        assert_eq!(rows_as_f64(&tensor, 8), Some((vec![-3.0, 7.0], 1)));
        assert_eq!(argmax(&[0.1, 0.7, 0.7, 0.2]), 1);
    }
}
