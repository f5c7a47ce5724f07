//! What a front checks before it decodes a request's data: that the model
//! has an input of that name, of that datatype, and takes that shape within
//! its batch size; and how large a request the model accepts. A request the
//! model would refuse is refused before its data costs any memory.

use std::sync::Arc;

use maas_protocol::validate::{byte_len, check_input_header};
use maas_protocol::{DataType, ModelConfig};

use crate::error::{ServeError, ServeResult};

/// The checks of one model version's inputs.
#[derive(Debug, Clone)]
pub struct InputCheck {
    config: Arc<ModelConfig>,
}

impl InputCheck {
    /// Checks against `config`.
    pub fn new(config: Arc<ModelConfig>) -> InputCheck {
        InputCheck { config }
    }

    /// The model's configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The largest request in bytes: `limit` (the server's or the caller's
    /// key's), or the model's `max_request_bytes` when that is smaller.
    pub fn request_limit(&self, limit: usize) -> usize {
        match self.config.max_request_bytes {
            Some(model) => limit.min(usize::try_from(model).unwrap_or(usize::MAX)),
            None => limit,
        }
    }

    /// Checks one input's name, datatype and shape; returns the number of
    /// bytes its data must have (`None` for `BYTES`, whose elements each
    /// carry their length: its data is checked once decoded).
    pub fn header(&self, name: &str, datatype: DataType, shape: &[i64]) -> ServeResult<Option<usize>> {
        let model = self.config.name.as_str();
        let spec = self.config.input(name).ok_or_else(|| {
            ServeError::InvalidRequest(format!("unexpected inference input '{name}' for model '{model}'"))
        })?;
        check_input_header(model, spec, datatype, shape, self.config.max_batch_size)
            .map_err(ServeError::InvalidRequest)?;
        if datatype == DataType::Bytes {
            return Ok(None);
        }
        byte_len(datatype, shape).map(Some).ok_or_else(|| {
            ServeError::InvalidRequest(format!("input '{name}' for model '{model}' has no fixed byte size"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(max_request_bytes: Option<u64>) -> InputCheck {
        let mut config: ModelConfig = serde_json::from_value(serde_json::json!({
            "name": "m", "max_batch_size": 4,
            "inputs": [{"name": "x", "datatype": "FP64", "shape": [-1, 3]}],
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 1]}]
        }))
        .unwrap();
        config.max_request_bytes = max_request_bytes;
        InputCheck::new(Arc::new(config))
    }

    #[test]
    fn a_matching_header_gives_its_byte_size() {
        assert_eq!(check(None).header("x", DataType::Fp64, &[2, 3]).unwrap(), Some(48));
    }

    #[test]
    fn names_datatypes_shapes_and_batch_sizes_are_checked() {
        let check = check(None);
        let cases: [(&str, DataType, &[i64], &str); 4] = [
            ("z", DataType::Fp64, &[1, 3], "unexpected inference input 'z'"),
            ("x", DataType::Uint64, &[1, 3], "unexpected datatype UINT64"),
            ("x", DataType::Fp64, &[1, 4], "unexpected shape"),
            ("x", DataType::Fp64, &[1_000_000, 3], "exceeds the maximum batch size 4"),
        ];
        for (name, datatype, shape, expected) in cases {
            let error = check.header(name, datatype, shape).unwrap_err().to_string();
            assert!(error.contains(expected), "{error:?} should contain {expected:?}");
        }
    }

    #[test]
    fn the_model_limit_only_lowers_the_request_limit() {
        assert_eq!(check(None).request_limit(1000), 1000);
        assert_eq!(check(Some(100)).request_limit(1000), 100);
        assert_eq!(check(Some(5000)).request_limit(1000), 1000);
    }
}
