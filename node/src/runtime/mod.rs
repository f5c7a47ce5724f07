//! The LibTorch side of the node.
//!
//! [`ModelHost`] owns every loaded model version. Each version has one or
//! more instances, each a dedicated OS thread holding its own TorchScript
//! module (see [`instance`]); they drain one bounded queue of batches, so
//! LibTorch never runs on the async runtime. [`execute`] turns a validated
//! batch into tensors, runs `forward` and copies the outputs back.

mod execute;
mod host;
mod instance;
mod kind;
mod load_gate;
mod refused;
mod simulate;

pub use host::{HostSettings, ModelHost, Reservation};
