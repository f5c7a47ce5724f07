//! The ceiling: rows/s of the model run directly by LibTorch in this process.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tch::{CModule, Device, Kind, Tensor};

/// Throughput of one batch size.
pub struct RawPoint {
    /// Rows per forward.
    pub batch: i64,
    /// Rows per second.
    pub rows_per_second: f64,
    /// Median forward time.
    pub p50: Duration,
}

/// Runs `forward` on random FP32 batches of each size for `duration`,
/// counting the copy of the inputs to the device and of the outputs back.
pub fn measure(
    model: &Path,
    row_shape: &[i64],
    batches: &[i64],
    threads: i32,
    duration: Duration,
    device: Device,
) -> Result<Vec<RawPoint>> {
    // The same allocator and thread settings as a node's.
    maas_torch::prepare_process(0, threads);
    let _no_grad = tch::no_grad_guard();
    let mut module = CModule::load_on_device(model, device).with_context(|| format!("loading {}", model.display()))?;
    module.set_eval();
    let mut points = Vec::new();
    for &batch in batches {
        let shape: Vec<i64> = std::iter::once(batch).chain(row_shape.iter().copied()).collect();
        let input = Tensor::randn(&shape, (Kind::Float, Device::Cpu));
        for _ in 0..20 {
            let _ = module.forward_ts(&[&input.to_device(device)])?;
        }
        let mut times = Vec::new();
        let started = Instant::now();
        while started.elapsed() < duration {
            let t = Instant::now();
            let output = module.forward_ts(&[&input.to_device(device)])?;
            // Include the copy out, as a server must.
            let _ = Vec::<f32>::try_from(output.flatten(0, -1))?;
            times.push(t.elapsed());
        }
        let elapsed = started.elapsed();
        times.sort();
        points.push(RawPoint {
            batch,
            rows_per_second: (times.len() as f64 * batch as f64) / elapsed.as_secs_f64(),
            p50: times[times.len() / 2],
        });
    }
    Ok(points)
}
