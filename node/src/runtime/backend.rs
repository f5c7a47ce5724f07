//! The model formats a node runs, behind one face: load and warm up an
//! instance, then run batches of tensors through it. Validation, batching,
//! failure isolation, metrics and monitoring sit around it and are the
//! same for every format.

use anyhow::{anyhow, Context, Result};
use maas_protocol::{DataType, ModelConfig, Platform};
use tch::{CModule, Device, IValue, Tensor};

use super::aoti::AotiModel;
use super::kind::to_kind;
use super::value::{TextTensor, Value};

/// One loaded instance of a model, in whatever format.
pub trait Backend: Send {
    /// Runs the model on `inputs` (on the instance's device, in the
    /// configuration's order) and returns its outputs in order.
    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, String>;

    /// Runs the model on values that may hold text. Formats without string
    /// tensors run [`Backend::forward`] (their configurations hold no BYTES,
    /// which publishing checks).
    fn forward_values(&self, inputs: &[Value]) -> Result<Vec<Value>, String> {
        let tensors = inputs
            .iter()
            .map(|value| match value {
                Value::Tensor(tensor) => Ok(tensor.shallow_clone()),
                Value::Text(_) => Err("this model format takes no text inputs".to_string()),
            })
            .collect::<Result<Vec<Tensor>, String>>()?;
        Ok(self.forward(&tensors)?.into_iter().map(Value::Tensor).collect())
    }
}

/// Loads the artifact at `path` in the format `config.platform` names.
pub fn load(config: &ModelConfig, path: &std::path::Path, device: Device) -> Result<Box<dyn Backend>> {
    Ok(match config.platform {
        Platform::PytorchLibtorch => {
            let mut module = CModule::load_on_device(path, device)
                .with_context(|| format!("loading TorchScript {} on {device:?}", path.display()))?;
            module.set_eval();
            Box::new(TorchScript(module))
        }
        Platform::TorchAoti => Box::new(AotiModel::load(path, device)?),
        Platform::OnnxruntimeOnnx => Box::new(super::onnx::OnnxModel::load(path, device)?),
        Platform::OpenaiEngine => anyhow::bail!("an openai_engine version is served by its engine, not by a node"),
        Platform::Pipeline => anyhow::bail!("a pipeline version is run by the coordinator, step by step"),
        Platform::PytorchDecoder => {
            anyhow::bail!("a pytorch_decoder version runs on its decoder thread, not as batches")
        }
    })
}

/// Runs `backend` twice at each of the configuration's warm-up batch sizes
/// (TorchScript's profiling executor specialises on the first shapes it
/// sees; other formats allocate their buffers).
pub fn warm_up(backend: &dyn Backend, config: &ModelConfig, device: Device) -> Result<()> {
    for rows in config.warmup_sizes() {
        let inputs = warmup_inputs(config, device, i64::from(rows))?;
        for _ in 0..2 {
            backend
                .forward_values(&inputs)
                .map_err(|error| anyhow!("warming up model '{}' at batch size {rows}: {error}", config.name))?;
        }
    }
    Ok(())
}

fn warmup_inputs(config: &ModelConfig, device: Device, rows: i64) -> Result<Vec<Value>> {
    config
        .inputs
        .iter()
        .map(|spec| {
            let shape = spec.shape_at(rows);
            if spec.datatype == DataType::Bytes {
                let count = shape.iter().product::<i64>().max(0) as usize;
                return Ok(Value::Text(TextTensor { shape, elements: vec![String::new(); count] }));
            }
            let kind = to_kind(spec.datatype).ok_or_else(|| {
                anyhow!("input '{}' has datatype {}, which LibTorch cannot hold", spec.name, spec.datatype)
            })?;
            Ok(Value::Tensor(Tensor::zeros(shape, (kind, device))))
        })
        .collect()
}

/// A TorchScript module.
struct TorchScript(CModule);

impl Backend for TorchScript {
    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, String> {
        let inputs: Vec<IValue> = inputs.iter().map(|t| IValue::Tensor(t.shallow_clone())).collect();
        let output = self.0.forward_is(&inputs).map_err(|e| torch_error_summary(&e.to_string()))?;
        match output {
            IValue::Tensor(t) => Ok(vec![t]),
            IValue::Tuple(values) | IValue::GenericList(values) => values
                .into_iter()
                .map(|v| match v {
                    IValue::Tensor(t) => Ok(t),
                    other => Err(format!("returned a non-tensor {other:?}")),
                })
                .collect(),
            other => Err(format!("returned {other:?} instead of tensors")),
        }
    }
}

impl Backend for AotiModel {
    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, String> {
        self.run(inputs)
    }
}

/// The useful line of a TorchScript error: the exception, not the traceback.
fn torch_error_summary(message: &str) -> String {
    let lines: Vec<&str> = message.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    lines
        .iter()
        .rev()
        .find(|l| l.contains("Error:") || l.contains("Exception:"))
        .or(lines.first())
        .map(|l| l.to_string())
        .unwrap_or_else(|| "forward failed".into())
}

#[cfg(test)]
mod tests {
    use super::torch_error_summary;

    #[test]
    fn summary_keeps_the_exception() {
        let message = "The following operation failed in the TorchScript interpreter.\n\
                       Traceback of TorchScript (most recent call last):\n  File \"x.py\", line 3\n\
                       builtins.ValueError: negative input is not allowed\n";
        assert_eq!(torch_error_summary(message), "builtins.ValueError: negative input is not allowed");
        assert_eq!(torch_error_summary("plain failure"), "plain failure");
    }
}
