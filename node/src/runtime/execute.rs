//! Running one batch through a model instance, whatever its format.
//!
//! Every input is checked against the model's configuration (name, datatype,
//! shape, byte length, row counts) before LibTorch sees it. If `forward`
//! fails on a batch holding several client requests, each request is run on
//! its own, so one bad request fails alone instead of its whole batch.

use std::time::Instant;

use maas_protocol::validate::{check_data, check_input_header};
use maas_protocol::{
    ArchivedBatchInput, ArchivedInferBatch, BatchOutcome, DataType, ModelConfig, NodeError, RequestOutcome,
    Tensor as WireTensor, TensorSpec,
};
use tch::{Device, Tensor};

use super::backend::Backend;
use super::kind::to_kind;
use super::value::{TextTensor, Value};
use crate::metrics::Timings;

/// The parts of a batch `execute` reads, borrowed from the archived frame.
pub struct BatchView<'a> {
    /// Input tensors, in the configuration's order.
    pub inputs: &'a [ArchivedBatchInput],
    /// Rows of each client request.
    pub request_rows: Vec<u32>,
}

impl<'a> BatchView<'a> {
    /// Borrows the inputs and row counts of an archived batch.
    pub fn of(batch: &'a ArchivedInferBatch) -> BatchView<'a> {
        BatchView {
            inputs: batch.inputs.as_slice(),
            request_rows: batch.request_rows.iter().map(|r| r.to_native()).collect(),
        }
    }
}

/// Validates and runs a batch.
pub fn execute(
    backend: &dyn Backend,
    config: &ModelConfig,
    device: Device,
    batch: &BatchView<'_>,
) -> Result<(BatchOutcome, Timings), NodeError> {
    let rows = validate(config, batch).map_err(|message| NodeError::InvalidInput { message })?;
    let mut timings = Timings::default();
    let started = Instant::now();
    let inputs = build_inputs(config, device, batch.inputs)?;
    timings.input_ns = elapsed_ns(started);

    match run(backend, config, &inputs, rows, &mut timings) {
        Ok(outputs) => Ok((BatchOutcome::Whole(outputs), timings)),
        Err(error) if batch.request_rows.len() > 1 => {
            tracing::debug!(model = %config.name, %error, "batch failed; running its requests one by one");
            let mut outcomes = Vec::with_capacity(batch.request_rows.len());
            let mut start = 0i64;
            for &request_rows in &batch.request_rows {
                let len = i64::from(request_rows);
                let slice: Vec<Value> = inputs.iter().map(|value| value.rows(start, len)).collect();
                outcomes.push(match run(backend, config, &slice, len, &mut timings) {
                    Ok(outputs) => RequestOutcome::Ok(outputs),
                    Err(error) => RequestOutcome::Err(error),
                });
                start += len;
            }
            Ok((BatchOutcome::PerRequest(outcomes), timings))
        }
        Err(error) => Ok((BatchOutcome::PerRequest(vec![RequestOutcome::Err(error)]), timings)),
    }
}

/// Checks every input against the configuration; returns the batch's rows.
pub(super) fn validate(config: &ModelConfig, batch: &BatchView<'_>) -> Result<i64, String> {
    let model = config.name.as_str();
    if batch.inputs.len() != config.inputs.len() {
        return Err(format!(
            "model '{model}' takes {} inputs, the batch has {}",
            config.inputs.len(),
            batch.inputs.len()
        ));
    }
    let mut rows = None;
    for (spec, tensor) in config.inputs.iter().zip(batch.inputs) {
        if tensor.name.as_str() != spec.name {
            return Err(format!(
                "input '{}' for model '{model}' is out of order: expected '{}'",
                tensor.name.as_str(),
                spec.name
            ));
        }
        let datatype = DataType::from(tensor.datatype);
        let shape = tensor.shape_vec();
        let tensor_rows = check_input_header(model, spec, datatype, &shape, config.max_batch_size)?;
        check_data(model, &spec.name, datatype, &shape, tensor.data.as_slice())?;
        if *rows.get_or_insert(tensor_rows) != tensor_rows {
            return Err(format!("inputs of model '{model}' disagree on the batch size"));
        }
    }
    let rows = i64::from(rows.unwrap_or(0));
    let declared: i64 = batch.request_rows.iter().map(|&r| i64::from(r)).sum();
    if declared != rows || batch.request_rows.contains(&0) {
        return Err(format!("batch for model '{model}' has {rows} rows but its requests declare {declared}"));
    }
    Ok(rows)
}

fn build_inputs(config: &ModelConfig, device: Device, inputs: &[ArchivedBatchInput]) -> Result<Vec<Value>, NodeError> {
    inputs
        .iter()
        .map(|tensor| {
            let datatype = DataType::from(tensor.datatype);
            if datatype == DataType::Bytes {
                let text = TextTensor::from_bytes(tensor.name.as_str(), tensor.shape_vec(), tensor.data.as_slice())
                    .map_err(|message| NodeError::InvalidInput { message })?;
                return Ok(Value::Text(text));
            }
            let kind = to_kind(datatype).ok_or_else(|| NodeError::InvalidInput {
                message: format!("datatype {datatype} is not supported by LibTorch models"),
            })?;
            let cpu = Tensor::f_from_data_size(tensor.data.as_slice(), &tensor.shape_vec(), kind)
                .map_err(|e| internal(config, e))?;
            Ok(Value::Tensor(if device == Device::Cpu { cpu } else { cpu.to_device(device) }))
        })
        .collect()
}

fn run(
    backend: &dyn Backend,
    config: &ModelConfig,
    inputs: &[Value],
    rows: i64,
    timings: &mut Timings,
) -> Result<Vec<WireTensor>, NodeError> {
    let started = Instant::now();
    let output = backend
        .forward_values(inputs)
        .map_err(|message| NodeError::ModelFailed { model: config.name.clone(), message });
    timings.infer_ns += elapsed_ns(started);
    let started = Instant::now();
    let outputs = output.and_then(|value| collect_outputs(config, value, rows));
    timings.output_ns += elapsed_ns(started);
    outputs
}

fn collect_outputs(config: &ModelConfig, values: Vec<Value>, rows: i64) -> Result<Vec<WireTensor>, NodeError> {
    if values.len() != config.outputs.len() {
        return Err(bad_output(
            config,
            format!("returned {} outputs, its configuration lists {}", values.len(), config.outputs.len()),
        ));
    }
    config
        .outputs
        .iter()
        .zip(values)
        .map(|(spec, value)| {
            let tensor = match (value, spec.datatype) {
                (Value::Text(text), DataType::Bytes) => {
                    check_output_shape(config, spec, &text.shape, rows)?;
                    let data = text.to_bytes();
                    return Ok(WireTensor {
                        name: spec.name.clone(),
                        datatype: spec.datatype,
                        shape: text.shape,
                        data,
                    });
                }
                (Value::Tensor(tensor), _) if Some(tensor.kind()) == to_kind(spec.datatype) => tensor,
                (value, _) => {
                    let got = match value {
                        Value::Tensor(tensor) => format!("{:?}", tensor.kind()),
                        Value::Text(_) => "text".to_string(),
                    };
                    return Err(bad_output(
                        config,
                        format!("output '{}' is {got}, its configuration says {}", spec.name, spec.datatype),
                    ));
                }
            };
            let shape = tensor.size();
            check_output_shape(config, spec, &shape, rows)?;
            let numel = tensor.numel();
            let element_size = spec.datatype.element_size().expect("configs hold fixed-size types; checked at load");
            let mut data = vec![0u8; numel * element_size];
            tensor.f_copy_data_u8(&mut data, numel).map_err(|e| internal(config, e))?;
            Ok(WireTensor { name: spec.name.clone(), datatype: spec.datatype, shape, data })
        })
        .collect()
}

/// Checks an output's shape against its configuration for `rows` rows.
fn check_output_shape(config: &ModelConfig, spec: &TensorSpec, shape: &[i64], rows: i64) -> Result<(), NodeError> {
    let matches = shape.len() == spec.shape.len()
        && shape[0] == rows
        && shape.iter().zip(&spec.shape).skip(1).all(|(&got, &want)| want == -1 || got == want);
    if matches {
        return Ok(());
    }
    Err(bad_output(
        config,
        format!("output '{}' has shape {:?} for {rows} rows, configured {:?}", spec.name, shape, spec.shape),
    ))
}

fn bad_output(config: &ModelConfig, message: String) -> NodeError {
    NodeError::ModelFailed { model: config.name.clone(), message }
}

fn internal(config: &ModelConfig, error: tch::TchError) -> NodeError {
    NodeError::Internal { message: format!("model '{}': {error}", config.name) }
}

fn elapsed_ns(started: Instant) -> u64 {
    started.elapsed().as_nanos() as u64
}
