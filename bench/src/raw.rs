//! The ceiling: rows/s of the model run directly in this process, by the
//! same backend a node runs it with (LibTorch for TorchScript and
//! AOTInductor packages, ONNX Runtime for ONNX), with nothing around it.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use maas_protocol::{DataType, ModelConfig};
use tch::{Device, Kind, Tensor};

/// Throughput of one batch size.
pub struct RawPoint {
    /// Rows per forward.
    pub batch: i64,
    /// Rows per second.
    pub rows_per_second: f64,
    /// Median forward time.
    pub p50: Duration,
}

/// Runs the model on random batches of each size for `duration`, counting
/// the copy of the inputs to the device and of the outputs back. Float
/// inputs are drawn from a normal distribution, integer ones are 0 or 1
/// (valid token ids and masks alike).
pub fn measure(
    model: &Path,
    config: &ModelConfig,
    batches: &[i64],
    threads: i32,
    duration: Duration,
    device: Device,
) -> Result<Vec<RawPoint>> {
    // The same allocator and thread settings as a node's.
    maas_torch::prepare_process(0, threads);
    let _no_grad = tch::no_grad_guard();
    let backend = maas_node::load_model(config, model, device)?;
    let mut points = Vec::new();
    for &batch in batches {
        let inputs = random_inputs(config, batch)?;
        let run = || -> Result<Vec<Tensor>> {
            let on_device: Vec<Tensor> = inputs.iter().map(|t| t.to_device(device)).collect();
            backend.forward(&on_device).map_err(|e| anyhow!("{e}"))
        };
        for _ in 0..20 {
            run()?;
        }
        let mut times = Vec::new();
        let started = Instant::now();
        while started.elapsed() < duration {
            let t = Instant::now();
            // Include the copy out, as a server must.
            for output in run()? {
                let output = output.to_device(Device::Cpu).contiguous();
                let mut bytes = vec![0u8; output.numel() * output.kind().elt_size_in_bytes()];
                output.f_copy_data_u8(&mut bytes, output.numel())?;
            }
            times.push(t.elapsed());
        }
        let elapsed = started.elapsed();
        times.sort();
        points.push(RawPoint {
            batch,
            rows_per_second: (times.len() as f64 * batch as f64) / elapsed.as_secs_f64(),
            p50: times[times.len() / 2],
        });
    }
    Ok(points)
}

/// Random inputs of `rows` rows for every input of `config`.
fn random_inputs(config: &ModelConfig, rows: i64) -> Result<Vec<Tensor>> {
    config
        .inputs
        .iter()
        .map(|spec| {
            let shape = spec.shape_at(rows);
            let options = |kind| (kind, Device::Cpu);
            Ok(match spec.datatype {
                DataType::Fp32 => Tensor::randn(&shape, options(Kind::Float)),
                DataType::Fp64 => Tensor::randn(&shape, options(Kind::Double)),
                DataType::Fp16 => Tensor::randn(&shape, options(Kind::Half)),
                DataType::Bf16 => Tensor::randn(&shape, options(Kind::BFloat16)),
                DataType::Int64 => Tensor::randint(2, &shape, options(Kind::Int64)),
                DataType::Int32 => Tensor::randint(2, &shape, options(Kind::Int)),
                other => anyhow::bail!("input '{}' is {other}, which the raw benchmark does not fill", spec.name),
            })
        })
        .collect()
}

/// The configuration of a model with one FP32 input of `row_shape` and
/// one output, for a TorchScript file given without a config.
pub fn single_input_config(row_shape: &[i64]) -> ModelConfig {
    let shape: Vec<i64> = std::iter::once(-1).chain(row_shape.iter().copied()).collect();
    serde_json::from_value(serde_json::json!({
        "name": "raw", "max_batch_size": 1,
        "inputs": [{"name": "INPUT__0", "datatype": "FP32", "shape": shape}],
        "outputs": [{"name": "OUTPUT__0", "datatype": "FP32", "shape": [-1]}]
    }))
    .expect("a valid configuration")
}
