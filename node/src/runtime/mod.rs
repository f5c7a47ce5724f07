//! The LibTorch side of the node.
//!
//! [`ModelHost`] owns every loaded model version. Each version has one or
//! more instances, each a dedicated OS thread holding its own TorchScript
//! module (see [`instance`]); they drain one bounded queue of batches, so
//! LibTorch never runs on the async runtime. [`execute`] turns a validated
//! batch into tensors, runs `forward` and copies the outputs back.

mod device;
mod execute;
mod host;
mod instance;
mod kind;
mod simulate;

pub use device::resolve_device;
pub use execute::Timings;
pub use host::{HostSettings, ModelHost};

/// Sizes LibTorch's thread pools. Must run before any other torch call.
pub fn configure_threads(inter_op: i32, intra_op: i32) {
    if inter_op > 0 {
        tch::set_num_interop_threads(inter_op);
    }
    if intra_op > 0 {
        tch::set_num_threads(intra_op);
    }
}
