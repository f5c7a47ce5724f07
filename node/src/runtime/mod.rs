//! The LibTorch side of the node.
//!
//! [`ModelHost`] owns every loaded model version. Each version has one or
//! more instances, each a dedicated OS thread holding its own loaded model
//! (see [`instance`]); they drain one bounded queue of batches, so LibTorch
//! and ONNX Runtime never run on the async runtime. A model is a
//! [`backend::Backend`] in one of three formats: TorchScript, an
//! AOTInductor package ([`aoti`]) or ONNX ([`onnx`]). [`execute`] turns a
//! validated batch into tensors (or [`value::TextTensor`]s for BYTES, which
//! ONNX models take), runs the model and copies the outputs back.

mod aoti;
mod aoti_sweep;
pub mod backend;
mod execute;
mod host;
mod instance;
mod kind;
mod load_gate;
mod onnx;
mod refused;
mod simulate;
mod value;

pub use aoti_sweep::{
    sweep_orphans as sweep_orphaned_packages, GRACE as PACKAGE_SWEEP_GRACE, UNPACK_ROOT as PACKAGE_UNPACK_ROOT,
};
pub use backend::{load as load_model, warm_up, Backend};
pub use host::{HostSettings, ModelHost, Reservation};
pub use onnx::set_library as set_onnxruntime_library;
