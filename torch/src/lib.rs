//! Process-wide LibTorch set-up, shared by the node and the raw benchmark so
//! that the ceiling is measured under the same conditions the node serves in.
//!
//! Call [`prepare_process`] first thing in `main`, before any other torch
//! call; then [`resolve_device`] for each `--device` flag.

mod allocator;
mod device;

pub use allocator::keep_freed_memory;
pub use device::resolve_device;

/// Sizes LibTorch's thread pools (values ≤ 0 keep LibTorch's default) and
/// tunes the C allocator for tensor workloads. Must run before any other
/// torch call.
pub fn prepare_process(inter_op_threads: i32, intra_op_threads: i32) {
    keep_freed_memory();
    if inter_op_threads > 0 {
        tch::set_num_interop_threads(inter_op_threads);
    }
    if intra_op_threads > 0 {
        tch::set_num_threads(intra_op_threads);
    }
}
