//! Choosing the device models run on.

use anyhow::{bail, Result};
use tch::Device;

/// Loads LibTorch's CUDA library. The binary links only against the
/// symbols it calls, which all live in `libtorch_cpu`, so the linker drops
/// `libtorch_cuda` and LibTorch would see no GPU; loading it registers the
/// CUDA backend. Returns whether it loaded (it is absent from CPU-only
/// LibTorch builds).
fn load_cuda_backend() -> bool {
    // SAFETY: dlopen with a valid NUL-terminated name; the handle is kept
    // for the life of the process on purpose.
    let handle = unsafe { libc::dlopen(c"libtorch_cuda.so".as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    !handle.is_null()
}

/// Whether this machine has an NVIDIA driver. Without one, loading the
/// CUDA backend only costs memory: it maps cuBLAS and friends, about
/// 200 MiB of resident memory per process.
fn nvidia_driver_present() -> bool {
    std::path::Path::new("/proc/driver/nvidia/version").exists() || std::path::Path::new("/dev/nvidiactl").exists()
}

/// Parses `auto`, `cpu`, `cuda` or `cuda:N`. `auto` picks CUDA device 0
/// when LibTorch sees a GPU and the CPU otherwise.
pub fn resolve_device(flag: &str) -> Result<Device> {
    let wants_cuda = match flag {
        "cpu" => false,
        "auto" => nvidia_driver_present(),
        _ => true,
    };
    if wants_cuda && !load_cuda_backend() {
        tracing::debug!("LibTorch's CUDA library is not available; only the CPU can be used");
    }
    let device = match flag {
        "auto" => Device::cuda_if_available(),
        "cpu" => Device::Cpu,
        "cuda" => Device::Cuda(0),
        other => match other.strip_prefix("cuda:").and_then(|n| n.parse::<usize>().ok()) {
            Some(index) => Device::Cuda(index),
            None => bail!("unknown device '{flag}': use auto, cpu, cuda or cuda:N"),
        },
    };
    if let Device::Cuda(index) = device {
        let count = tch::Cuda::device_count() as usize;
        if index >= count {
            bail!("device cuda:{index} requested, but LibTorch sees {count} CUDA device(s)");
        }
    }
    Ok(device)
}
