//! Simulated compute, for load-testing the coordinator with many nodes on
//! one machine: a batch is validated like a real one, then answered with
//! zeros of the configured output shapes after a fixed compute time. No
//! model runs, so its outputs mean nothing; never use it for model results.

use std::time::{Duration, Instant};

use maas_protocol::{BatchOutcome, ModelConfig, NodeError, Tensor};

use super::execute::{validate, BatchView};
use crate::metrics::Timings;

/// Answers `batch` with zeros after `compute`.
pub fn execute(
    config: &ModelConfig,
    batch: &BatchView<'_>,
    compute: Duration,
) -> Result<(BatchOutcome, Timings), NodeError> {
    let rows = validate(config, batch).map_err(|message| NodeError::InvalidInput { message })?;
    let started = Instant::now();
    std::thread::sleep(compute);
    let infer_ns = started.elapsed().as_nanos() as u64;
    let outputs = config
        .outputs
        .iter()
        .map(|spec| {
            let shape = spec.shape_at(rows);
            let elements: i64 = shape.iter().product();
            let size = spec.datatype.element_size().unwrap_or(4);
            Tensor { name: spec.name.clone(), datatype: spec.datatype, shape, data: vec![0; elements as usize * size] }
        })
        .collect();
    Ok((BatchOutcome::Whole(outputs), Timings { input_ns: 0, infer_ns, output_ns: 0 }))
}
