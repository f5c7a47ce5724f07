//! Checks of a tensor against a model's configuration.
//!
//! The coordinator runs them on every request before it is queued and the
//! node runs them again on every batch before LibTorch sees a byte, because
//! `from_data_size` trusts its caller. Messages name the tensor and model.

use crate::{DataType, TensorSpec};

/// Elements in a tensor of `shape`, or `None` when a dimension is negative
/// or the product overflows.
pub fn element_count(shape: &[i64]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| {
        let d = usize::try_from(d).ok()?;
        acc.checked_mul(d)
    })
}

/// Bytes a fixed-size tensor of `shape` and `datatype` occupies, or `None`
/// for `BYTES`, a negative dimension or an overflow.
pub fn byte_len(datatype: DataType, shape: &[i64]) -> Option<usize> {
    element_count(shape)?.checked_mul(datatype.element_size()?)
}

/// Formats a shape as the protocol's messages do: `[-1,256]`.
pub fn shape_string(shape: &[i64]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(","))
}

/// Checks datatype and shape of input `spec` for `model`, and returns the
/// number of rows (the batch dimension).
pub fn check_input_header(
    model: &str,
    spec: &TensorSpec,
    datatype: DataType,
    shape: &[i64],
    max_batch_size: u32,
) -> Result<u32, String> {
    if datatype != spec.datatype {
        return Err(format!(
            "unexpected datatype {} for input '{}' for model '{}'. Expected {}",
            datatype, spec.name, model, spec.datatype
        ));
    }
    let shape_matches = shape.len() == spec.shape.len()
        && shape.iter().zip(&spec.shape).all(|(&got, &want)| got >= 0 && (want == -1 || got == want));
    if !shape_matches {
        return Err(format!(
            "unexpected shape for input '{}' for model '{}'. Expected {}, got {}",
            spec.name,
            model,
            shape_string(&spec.shape),
            shape_string(shape)
        ));
    }
    let rows = shape[0];
    if rows == 0 {
        return Err(format!("input '{}' for model '{}' has no rows", spec.name, model));
    }
    if rows > i64::from(max_batch_size) {
        return Err(format!(
            "batch size {} of input '{}' for model '{}' exceeds the maximum batch size {}",
            rows, spec.name, model, max_batch_size
        ));
    }
    if byte_len(datatype, shape).is_none() && !(datatype == DataType::Bytes && element_count(shape).is_some()) {
        return Err(format!(
            "shape {} of input '{}' for model '{}' is too large",
            shape_string(shape),
            spec.name,
            model
        ));
    }
    Ok(rows as u32)
}

/// Checks that `data` holds exactly a tensor of `shape`: its byte length
/// for fixed-size types, its elements' count (each length within the
/// data) for `BYTES`.
pub fn check_data(model: &str, name: &str, datatype: DataType, shape: &[i64], data: &[u8]) -> Result<(), String> {
    if datatype != DataType::Bytes {
        return check_data_len(model, name, datatype, shape, data.len());
    }
    let expected = element_count(shape)
        .ok_or_else(|| format!("shape {} of input '{name}' for model '{model}' is too large", shape_string(shape)))?;
    let count = crate::strings::count(data).map_err(|e| format!("input '{name}' for model '{model}': {e}"))?;
    if count != expected {
        return Err(format!(
            "input '{name}' for model '{model}' has {count} BYTES elements, but shape {} needs {expected}",
            shape_string(shape)
        ));
    }
    Ok(())
}

/// Checks that `data_len` bytes hold exactly a tensor of `shape`.
pub fn check_data_len(
    model: &str,
    name: &str,
    datatype: DataType,
    shape: &[i64],
    data_len: usize,
) -> Result<(), String> {
    match byte_len(datatype, shape) {
        Some(expected) if expected == data_len => Ok(()),
        Some(expected) => Err(format!(
            "input '{}' for model '{}' has {} bytes of data, but shape {} of {} needs {}",
            name,
            model,
            data_len,
            shape_string(shape),
            datatype,
            expected
        )),
        None => Err(format!(
            "shape {} of input '{}' for model '{}' has no fixed byte size",
            shape_string(shape),
            name,
            model
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> TensorSpec {
        TensorSpec { name: "INPUT__0".into(), datatype: DataType::Fp32, shape: vec![-1, 256] }
    }

    #[test]
    fn counts() {
        assert_eq!(element_count(&[2, 3, 4]), Some(24));
        assert_eq!(element_count(&[]), Some(1));
        assert_eq!(element_count(&[-1, 3]), None);
        assert_eq!(element_count(&[i64::MAX, i64::MAX]), None);
        assert_eq!(byte_len(DataType::Fp32, &[2, 3]), Some(24));
        assert_eq!(byte_len(DataType::Bytes, &[2]), None);
    }

    #[test]
    fn accepts_matching_tensor() {
        assert_eq!(check_input_header("mlp", &spec(), DataType::Fp32, &[3, 256], 64), Ok(3));
        assert!(check_data_len("mlp", "INPUT__0", DataType::Fp32, &[3, 256], 3 * 256 * 4).is_ok());
    }

    #[test]
    fn bytes_data_is_checked_by_its_elements() {
        let data = crate::strings::encode([b"a".as_slice(), b"bcd"]);
        assert!(check_data("m", "text", DataType::Bytes, &[2, 1], &data).is_ok());
        let error = check_data("m", "text", DataType::Bytes, &[3, 1], &data).unwrap_err();
        assert!(error.contains("has 2 BYTES elements, but shape [3,1] needs 3"), "{error}");
        let error = check_data("m", "text", DataType::Bytes, &[2, 1], &data[..data.len() - 1]).unwrap_err();
        assert!(error.contains("claims more bytes than follow"), "{error}");
        let bytes_spec = TensorSpec { name: "text".into(), datatype: DataType::Bytes, shape: vec![-1, 1] };
        assert_eq!(check_input_header("m", &bytes_spec, DataType::Bytes, &[2, 1], 8), Ok(2));
    }

    #[test]
    fn names_the_problem() {
        let err = check_input_header("mlp", &spec(), DataType::Fp32, &[1, 3], 64).unwrap_err();
        assert_eq!(err, "unexpected shape for input 'INPUT__0' for model 'mlp'. Expected [-1,256], got [1,3]");
        let err = check_input_header("mlp", &spec(), DataType::Int64, &[1, 256], 64).unwrap_err();
        assert!(err.contains("datatype INT64") && err.contains("Expected FP32"), "{err}");
        let err = check_input_header("mlp", &spec(), DataType::Fp32, &[65, 256], 64).unwrap_err();
        assert!(err.contains("exceeds the maximum batch size 64"), "{err}");
        let err = check_input_header("mlp", &spec(), DataType::Fp32, &[0, 256], 64).unwrap_err();
        assert!(err.contains("no rows"), "{err}");
        let err = check_input_header("mlp", &spec(), DataType::Fp32, &[-3, 256], 64).unwrap_err();
        assert!(err.contains("unexpected shape"), "{err}");
        let err = check_data_len("mlp", "INPUT__0", DataType::Fp32, &[1, 256], 1000).unwrap_err();
        assert!(err.contains("1000 bytes") && err.contains("needs 1024"), "{err}");
    }
}
