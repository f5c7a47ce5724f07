//! How much freed memory a process keeps.
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
//! image load. Fixing both thresholds keeps the pages for the next batch.
//!
//! How much to keep differs by process ([`FreedMemory`]). A node keeps up
//! to a gigabyte, its forward passes' working set, and
//! [`release_free_memory`] gives back what one-off work (loading a model)
//! left free. A coordinator's working set is a few batch frames, but a
//! burst of large request bodies (tens of MiB each, refused or not) would
//! leave hundreds of MiB resident for good under the node's setting; it
//! keeps a bounded amount (32 MiB by default) in each heap, and blocks
//! larger than that are mapped and unmapped on their own.

/// How much freed memory the C allocator keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreedMemory {
    /// Blocks below this size come from the heap, never from `mmap`.
    pub map_above_bytes: usize,
    /// Free memory at the top of a heap kept rather than returned.
    pub keep_bytes: usize,
}

impl FreedMemory {
    /// A node's: forward passes reuse up to a gigabyte of tensors.
    pub const FORWARD_PASSES: FreedMemory = FreedMemory { map_above_bytes: 512 << 20, keep_bytes: 1 << 30 };

    /// At most `bytes` kept per heap, and blocks larger than that mapped on
    /// their own, so that a spike of large requests is returned when they are.
    pub const fn up_to(bytes: usize) -> FreedMemory {
        FreedMemory { map_above_bytes: bytes, keep_bytes: bytes }
    }
}

/// Tunes glibc's allocator as described in the module docs. Does nothing
/// with other C libraries.
pub fn keep_freed_memory(setting: FreedMemory) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let clamp = |bytes: usize| libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only changes allocator parameters, under the
        // allocator's own lock.
        let applied = unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, clamp(setting.map_above_bytes)) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, clamp(setting.keep_bytes)) == 1
        };
        if !applied {
            tracing::warn!(?setting, "could not tune the C allocator; batches may pay page faults");
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = setting;
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

/// Bytes the C allocator has handed out and not taken back, in every arena
/// and in mapped blocks; `None` with other C libraries. A node measures a
/// model's load by the change in this figure: unlike the resident size, it
/// falls when memory is freed even while the allocator keeps the pages.
pub fn allocated_bytes() -> Option<u64> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's counters, under its locks.
        let info = unsafe { libc::mallinfo2() };
        Some((info.uordblks as u64).saturating_add(info.hblkhd as u64))
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    None
}

/// The process's resident memory in bytes, from `/proc/self/status`.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Sets the gauges `heap` (the allocator's bytes in use) and `resident`
/// (the resident size) to the process's memory now: what a leak, a
/// load/unload cycle or thousands of idle models change.
pub fn record_memory(heap: &'static str, resident: &'static str) {
    if let Some(bytes) = allocated_bytes() {
        metrics::gauge!(heap).set(bytes as f64);
    }
    if let Some(bytes) = resident_bytes() {
        metrics::gauge!(resident).set(bytes as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn allocated_bytes_follow_an_allocation_and_its_release() {
        const SIZE: usize = 64 << 20;
        let before = allocated_bytes().unwrap();
        let block = vec![1u8; SIZE];
        let during = allocated_bytes().unwrap();
        assert!(during >= before + SIZE as u64 - (1 << 20), "before {before}, during {during}");
        drop(std::hint::black_box(block));
        let after = allocated_bytes().unwrap();
        assert!(after + (SIZE as u64) / 2 < during, "during {during}, after {after}");
    }
}
