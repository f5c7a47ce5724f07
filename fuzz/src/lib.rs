//! What the fuzz targets share: the models their requests are checked
//! against, and the checks the serving plane and a node run after a
//! decoder accepted its bytes, with the sizes every accepted tensor must
//! then have.
//!
//! The model takes one input of each kind a decoder treats differently: a
//! variable-width float matrix, 64-bit and 8-bit integers, booleans, a
//! 16-bit unsigned integer (narrowed from gRPC's 32-bit `uint_contents`)
//! and half floats. gRPC has no typed field for half floats, so the gRPC
//! targets use the model without that input ([`Model::Grpc`]): a request in
//! typed contents can then be whole.

use std::sync::{Arc, OnceLock};

use maas_protocol::validate::{byte_len, check_data_len, check_input_header};
use maas_protocol::{ArchivedInferBatch, DataType, ModelConfig, TensorBytes};
use maas_serving::infer::{check_request_id, order_and_check, InferRequest};
use maas_serving::input_check::InputCheck;

/// The model's `config.json` (`fuzz/model.json`).
pub const MODEL_CONFIG_JSON: &str = include_str!("../model.json");

/// Which model a target's requests are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// `fuzz/model.json`.
    Full,
    /// `fuzz/model.json` without its FP16 input.
    Grpc,
}

impl Model {
    /// The model's configuration, parsed and checked once.
    pub fn config(self) -> &'static Arc<ModelConfig> {
        static FULL: OnceLock<Arc<ModelConfig>> = OnceLock::new();
        static GRPC: OnceLock<Arc<ModelConfig>> = OnceLock::new();
        let (cell, keep_fp16) = match self {
            Model::Full => (&FULL, true),
            Model::Grpc => (&GRPC, false),
        };
        cell.get_or_init(|| {
            let mut config: ModelConfig =
                serde_json::from_str(MODEL_CONFIG_JSON).expect("the fuzzed model's config parses");
            config.inputs.retain(|spec| keep_fp16 || spec.datatype != DataType::Fp16);
            config.check().expect("the fuzzed model's config is valid");
            Arc::new(config)
        })
    }

    /// The input check a front is given for the model.
    pub fn input_check(self) -> InputCheck {
        InputCheck::new(self.config().clone())
    }
}

/// Runs what `Inference::serve` runs on a parsed request before queueing
/// it, and says whether it would be queued; whatever it accepts must have
/// exactly the bytes its shape needs and rows within the model's batch size.
pub fn serve_checks(model: Model, request: InferRequest) -> bool {
    if check_request_id(request.id.as_deref()).is_err() {
        return false;
    }
    let config = model.config();
    let Ok((inputs, rows)) = order_and_check(config, request.inputs) else { return false };
    assert!(rows >= 1 && rows <= config.max_batch_size, "{rows} rows accepted");
    assert_eq!(inputs.len(), config.inputs.len());
    for (input, spec) in inputs.iter().zip(&config.inputs) {
        assert_eq!(input.name, spec.name, "inputs are in the configuration's order");
        assert_sized(input);
    }
    true
}

/// Asserts that a tensor holds exactly the bytes its shape and datatype need.
pub fn assert_sized(tensor: &TensorBytes) {
    let expected = byte_len(tensor.datatype, &tensor.shape);
    assert_eq!(Some(tensor.data.len()), expected, "input '{}' of shape {:?}", tensor.name, tensor.shape);
}

/// What a node checks on a batch before LibTorch sees it (as
/// `maas-node`'s `runtime::execute::validate`, which links LibTorch):
/// the model's inputs in order, each of its configured datatype and shape
/// with exactly its bytes, one batch size, and request rows summing to it.
/// Returns the batch's rows when the node would run it.
pub fn node_checks(config: &ModelConfig, batch: &ArchivedInferBatch) -> Option<u32> {
    let model = config.name.as_str();
    if batch.inputs.len() != config.inputs.len() {
        return None;
    }
    let mut rows = None;
    for (spec, tensor) in config.inputs.iter().zip(batch.inputs.iter()) {
        if tensor.name.as_str() != spec.name {
            return None;
        }
        let datatype = DataType::from(tensor.datatype);
        let shape = tensor.shape_vec();
        let tensor_rows = check_input_header(model, spec, datatype, &shape, config.max_batch_size).ok()?;
        check_data_len(model, &spec.name, datatype, &shape, tensor.data.len()).ok()?;
        if *rows.get_or_insert(tensor_rows) != tensor_rows {
            return None;
        }
    }
    let rows = rows?;
    let declared: u64 = batch.request_rows.iter().map(|r| u64::from(r.to_native())).sum();
    if declared != u64::from(rows) || batch.request_rows.iter().any(|r| r.to_native() == 0) {
        return None;
    }
    Some(rows)
}

#[cfg(test)]
mod tests {
    use super::Model;

    #[test]
    fn the_fuzzed_models_are_valid() {
        assert_eq!(Model::Full.config().inputs.len(), 6);
        assert_eq!(Model::Grpc.config().inputs.len(), 5);
    }
}
