//! Choosing the device models run on.

use anyhow::{bail, Result};
use tch::Device;

/// Parses `auto`, `cpu`, `cuda` or `cuda:N`. `auto` picks CUDA device 0
/// when LibTorch sees a GPU and the CPU otherwise.
pub fn resolve_device(flag: &str) -> Result<Device> {
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
