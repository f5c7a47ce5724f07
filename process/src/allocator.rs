//! Keeping freed memory in the process.
//!
//! Serving allocates and frees the same large buffers over and over: a
//! batch's frame (megabytes for image rows), and in the node every
//! intermediate tensor of a forward pass, which LibTorch takes from the C
//! allocator. With glibc's defaults, blocks above a moving threshold are
//! `mmap`ed and returned with `munmap` on free, and a heap whose free top
//! passes another threshold is shrunk with `brk`; every batch then takes its
//! pages afresh from the kernel. On a small CNN at batch 32 half of the
//! forward's time went to page faults (and which regime a run fell into
//! changed from run to run); in the coordinator a fifth of its time under
//! image load. Raising both thresholds keeps the pages for the next batch;
//! the resident size settles at its high-water mark instead, and
//! [`release_free_memory`] gives back what one-off work (loading a model)
//! left free.

/// Blocks below this size come from the heap, never from `mmap`.
const MMAP_THRESHOLD_BYTES: i32 = 512 << 20;
/// Free memory at the top of the heap kept rather than returned.
const TRIM_THRESHOLD_BYTES: i32 = 1 << 30;

/// Tunes glibc's allocator as described in the module docs. Does nothing
/// with other C libraries.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters, under the
        // allocator's own lock.
        let applied = unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
        };
        if !applied {
            tracing::warn!("could not tune the C allocator; forward passes may pay page faults");
        }
    }
}

/// Returns the allocator's free memory to the kernel, in every arena and
/// in the middle of heaps too. For after one-off work such as loading and
/// warming up a model, whose temporaries the thresholds above would keep.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free pages, under the allocator's locks.
    unsafe {
        libc::malloc_trim(0);
    }
}
