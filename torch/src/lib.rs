//! Process-wide LibTorch set-up, shared by the node and the raw benchmark so
//! that the ceiling is measured under the same conditions the node serves in.
//!
//! Call [`prepare_process`] first thing in `main`, before any other torch
//! call; then [`resolve_device`] for each `--device` flag.

mod device;

pub use device::resolve_device;

/// Sizes LibTorch's thread pools (values ≤ 0 keep LibTorch's default) and
/// keeps freed tensor memory in the process (see [`maas_process::keep_freed_memory`]). Must run before any other
/// torch call.
pub fn prepare_process(inter_op_threads: i32, intra_op_threads: i32) {
    maas_process::keep_freed_memory(maas_process::FreedMemory::FORWARD_PASSES);
    if inter_op_threads > 0 {
        tch::set_num_interop_threads(inter_op_threads);
    }
    if intra_op_threads > 0 {
        tch::set_num_threads(intra_op_threads);
    }
}
