//! ONNX models, run by ONNX Runtime through the `ort` crate. The runtime is
//! a shared library loaded when the first ONNX model is: the one PyPI's
//! `onnxruntime` wheel ships, found where the build saw it (beside the
//! LibTorch the node links) unless `--onnxruntime-lib` names another.
//! Inputs are handed to it as views of the tch tensors (no copy); outputs
//! are copied once into tch tensors. BYTES tensors are ONNX string tensors,
//! copied both ways (ONNX Runtime owns its strings).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Context, Result};
use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{Session, SessionInputValue};
use ort::value::{DynValue, TensorElementType, TensorRef};
use parking_lot::Mutex;
use tch::{Device, Kind, Tensor};

use super::backend::Backend;
use super::value::{TextTensor, Value};

static LIBRARY: OnceLock<PathBuf> = OnceLock::new();
static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();

/// Where ONNX Runtime's library is; call before the first ONNX load.
pub fn set_library(path: PathBuf) {
    let _ = LIBRARY.set(path);
}

/// The library the build found in the project's Python environment.
fn built_in_library() -> Option<PathBuf> {
    option_env!("MAAS_ONNXRUNTIME_LIB").map(PathBuf::from)
}

/// The process's one ONNX Runtime environment, made at the first load.
fn environment() -> Result<&'static Environment> {
    let made = ENVIRONMENT.get_or_init(|| {
        let path = LIBRARY.get().cloned().or_else(built_in_library).ok_or_else(|| {
            "no ONNX Runtime library is known: install onnxruntime into the project's venv \
             (scripts/setup.sh does) or start the node with --onnxruntime-lib"
                .to_string()
        })?;
        if !path.is_file() {
            return Err(format!("ONNX Runtime library {} does not exist", path.display()));
        }
        let builder =
            ort::init_from(&path).map_err(|e| format!("loading ONNX Runtime from {}: {e}", path.display()))?;
        builder.with_name("maas-node").build().map_err(|e| format!("starting ONNX Runtime: {e}"))
    });
    made.as_ref().map_err(|message| anyhow!("{message}"))
}

/// One ONNX model's session. ONNX Runtime's `run` takes the session
/// mutably; the instance thread that owns it is its only caller.
pub struct OnnxModel {
    session: Mutex<Session>,
    input_names: Vec<String>,
}

impl OnnxModel {
    /// Loads the model at `path`, with as many threads per run as LibTorch
    /// uses, on the CPU (this build has no CUDA execution provider).
    pub fn load(path: &Path, device: Device) -> Result<OnnxModel> {
        if device.is_cuda() {
            bail!("ONNX models run on the CPU in this build; set the model's device to cpu");
        }
        let configure = || -> Result<ort::session::builder::SessionBuilder> {
            let builder = Session::builder(environment()?).map_err(|e| anyhow!("{e}"))?;
            let builder =
                builder.with_optimization_level(GraphOptimizationLevel::Level3).map_err(|e| anyhow!("{e}"))?;
            builder.with_intra_threads(tch::get_num_threads().max(1) as usize).map_err(|e| anyhow!("{e}"))
        };
        let session = configure()
            .context("configuring an ONNX Runtime session")?
            .commit_from_file(path)
            .map_err(|e| anyhow!("{e}"))
            .with_context(|| format!("loading ONNX model {}", path.display()))?;
        let input_names = session.inputs().iter().map(|input| input.name().to_string()).collect();
        Ok(OnnxModel { session: Mutex::new(session), input_names })
    }
}

impl Backend for OnnxModel {
    fn forward(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, String> {
        let values: Vec<Value> = inputs.iter().map(|t| Value::Tensor(t.shallow_clone())).collect();
        self.forward_values(&values)?
            .into_iter()
            .map(|value| match value {
                Value::Tensor(tensor) => Ok(tensor),
                Value::Text(_) => Err("the ONNX model returned text where tensors were expected".to_string()),
            })
            .collect()
    }

    fn forward_values(&self, inputs: &[Value]) -> Result<Vec<Value>, String> {
        if inputs.len() != self.input_names.len() {
            return Err(format!("the ONNX model takes {} inputs, not {}", self.input_names.len(), inputs.len()));
        }
        // Kept alive until the run ends: the inputs are views of them.
        let contiguous: Vec<Option<Tensor>> = inputs
            .iter()
            .map(|value| match value {
                Value::Tensor(tensor) => Some(tensor.contiguous()),
                Value::Text(_) => None,
            })
            .collect();
        let mut values: Vec<(&str, SessionInputValue<'_>)> = Vec::with_capacity(inputs.len());
        for ((name, value), tensor) in self.input_names.iter().zip(inputs).zip(&contiguous) {
            let input = match (value, tensor) {
                (_, Some(tensor)) => view(tensor)?,
                (Value::Text(text), None) => text_input(text)?,
                (Value::Tensor(_), None) => unreachable!("every tensor input has its contiguous copy"),
            };
            values.push((name.as_str(), input));
        }
        let mut session = self.session.lock();
        let outputs = session.run(values).map_err(|e| e.to_string())?;
        outputs.iter().map(|(name, value)| to_value(name, &value)).collect()
    }
}

/// A text input as an ONNX Runtime string tensor (a copy: ONNX Runtime
/// keeps its own strings).
fn text_input(text: &TextTensor) -> Result<SessionInputValue<'static>, String> {
    let tensor = ort::value::Tensor::from_string_array((text.shape.clone(), text.elements.as_slice()))
        .map_err(|e| format!("building a string tensor: {e}"))?;
    Ok(SessionInputValue::from(tensor.into_dyn()))
}

/// The elements of a contiguous CPU tensor as a slice of `T`.
///
/// # Safety
/// `T` must be the tensor's element type.
unsafe fn elements<T>(tensor: &Tensor) -> &[T] {
    let count = tensor.numel();
    if count == 0 {
        return &[];
    }
    std::slice::from_raw_parts(tensor.data_ptr() as *const T, count)
}

/// A view of `tensor` as an ONNX Runtime input.
fn view(tensor: &Tensor) -> Result<SessionInputValue<'_>, String> {
    let shape = tensor.size();
    macro_rules! view_as {
        ($t:ty) => {
            // SAFETY: the kind matched says the elements are `$t`.
            TensorRef::<$t>::from_array_view((shape, unsafe { elements::<$t>(tensor) }))
                .map(|v| SessionInputValue::from(v.into_dyn()))
                .map_err(|e| e.to_string())
        };
    }
    match tensor.kind() {
        Kind::Float => view_as!(f32),
        Kind::Double => view_as!(f64),
        Kind::Half => view_as!(half::f16),
        Kind::BFloat16 => view_as!(half::bf16),
        Kind::Int64 => view_as!(i64),
        Kind::Int => view_as!(i32),
        Kind::Int16 => view_as!(i16),
        Kind::Int8 => view_as!(i8),
        Kind::Uint8 => view_as!(u8),
        Kind::Bool => view_as!(bool),
        other => Err(format!("inputs of kind {other:?} cannot go to ONNX Runtime")),
    }
}

/// Copies an ONNX Runtime output into a tch tensor, or its strings into
/// a [`TextTensor`].
fn to_value(name: &str, value: &DynValue) -> Result<Value, String> {
    let element = value.dtype().tensor_type().ok_or_else(|| format!("output '{name}' is not a tensor"))?;
    if element == TensorElementType::String {
        let (shape, elements) =
            value.try_extract_strings().map_err(|e| format!("reading string output '{name}': {e}"))?;
        return Ok(Value::Text(TextTensor { shape: shape.iter().copied().collect(), elements }));
    }
    macro_rules! copy_as {
        ($t:ty, $kind:expr) => {{
            let (shape, data) = value.try_extract_tensor::<$t>().map_err(|e| e.to_string())?;
            let shape: Vec<i64> = shape.iter().copied().collect();
            // SAFETY: `data` is a slice of `$t`; its bytes are read once.
            let bytes = unsafe { std::slice::from_raw_parts(data.as_ptr() as *const u8, std::mem::size_of_val(data)) };
            Tensor::f_from_data_size(bytes, &shape, $kind).map_err(|e| e.to_string())
        }};
    }
    let tensor = match element {
        TensorElementType::Float32 => copy_as!(f32, Kind::Float),
        TensorElementType::Float64 => copy_as!(f64, Kind::Double),
        TensorElementType::Float16 => copy_as!(half::f16, Kind::Half),
        TensorElementType::Bfloat16 => copy_as!(half::bf16, Kind::BFloat16),
        TensorElementType::Int64 => copy_as!(i64, Kind::Int64),
        TensorElementType::Int32 => copy_as!(i32, Kind::Int),
        TensorElementType::Int16 => copy_as!(i16, Kind::Int16),
        TensorElementType::Int8 => copy_as!(i8, Kind::Int8),
        TensorElementType::Uint8 => copy_as!(u8, Kind::Uint8),
        TensorElementType::Bool => copy_as!(bool, Kind::Bool),
        other => Err(format!("output '{name}' is of type {other:?}, which maas does not serve")),
    };
    tensor.map(Value::Tensor)
}
