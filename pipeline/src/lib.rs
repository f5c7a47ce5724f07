//! Pipelines run by the coordinator: raw inputs in, answers out.
//!
//! A `pipeline` version lists steps (`maas_protocol::pipeline`): deployed
//! models, called through their own batchers on whichever nodes hold them,
//! and built-in processors run here on the blocking pool — a tokenizer
//! ([`tokenize`]), an image decoder ([`image`]) and post-processing
//! ([`post`]). [`Pipelines`] is the serving plane's [`PipelineRunner`]:
//! it loads a version's processors at its first request ([`prepared`]),
//! cuts a request into micro-batches when the pipeline asks, and runs the
//! steps ([`steps`]). Intermediate tensors go from step to step through
//! the coordinator: one hop to a node and back per model step.
#![warn(missing_docs)]

pub mod image;
pub mod post;
pub mod prepared;
pub mod steps;
pub mod tensors;
pub mod tokenize;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use maas_protocol::{ModelConfig, TensorBytes};
use maas_registry::ArtifactStore;
use maas_serving::pipeline::{ModelCalls, PipelineRunner};
use maas_serving::{ServeError, ServeResult};
use parking_lot::Mutex;
use tokio::sync::Semaphore;

use crate::prepared::Prepared;

/// Most pipeline versions whose processors are kept loaded.
const MAX_PREPARED: usize = 256;

/// Runs pipeline versions, keeping each one's processors loaded.
pub struct Pipelines {
    artifacts: Option<ArtifactStore>,
    prepared: Mutex<HashMap<(String, u64), Arc<Prepared>>>,
    /// Processors running at once: twice the cores, so that a burst of
    /// large images queues here (and its late requests never start) instead
    /// of filling the blocking pool.
    permits: Arc<Semaphore>,
}

impl Pipelines {
    /// Runs pipelines whose artifacts are in `artifacts`.
    pub fn new(artifacts: Option<ArtifactStore>) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Pipelines { artifacts, prepared: Mutex::new(HashMap::new()), permits: Arc::new(Semaphore::new(2 * cores)) }
    }

    /// The loaded processors of `config` version `version`.
    async fn prepared(&self, config: &ModelConfig, version: u64) -> ServeResult<Arc<Prepared>> {
        let key = (config.name.clone(), version);
        if let Some(prepared) = self.prepared.lock().get(&key) {
            return Ok(prepared.clone());
        }
        let spec = config.pipeline.as_ref().ok_or_else(|| ServeError::Internal("a pipeline without steps".into()))?;
        let prepared = Prepared::load(spec, self.artifacts.as_ref()).await.map_err(|e| {
            ServeError::Unavailable(format!("pipeline '{}' version {version} cannot load its steps: {e}", config.name))
        })?;
        let prepared = Arc::new(prepared);
        let mut cache = self.prepared.lock();
        if cache.len() >= MAX_PREPARED {
            cache.clear();
        }
        cache.insert(key, prepared.clone());
        Ok(prepared)
    }
}

#[async_trait]
impl PipelineRunner for Pipelines {
    async fn run(
        &self,
        config: &ModelConfig,
        version: u64,
        inputs: Vec<TensorBytes>,
        rows: u32,
        models: &dyn ModelCalls,
    ) -> ServeResult<Vec<TensorBytes>> {
        let prepared = self.prepared(config, version).await?;
        let rows = rows as usize;
        let part = config.pipeline.as_ref().and_then(|p| p.micro_batch_rows).map_or(rows, |m| m as usize);
        if part >= rows {
            return steps::run(config, &prepared, inputs, rows, models, &self.permits).await;
        }
        // Micro-batches go through the steps at once: while one is on the
        // second stage's node, the next is on the first's.
        let offsets: Vec<Vec<usize>> = inputs.iter().map(|t| tensors::row_offsets(t, rows)).collect();
        let parts = (0..rows).step_by(part).map(|start| {
            let end = (start + part).min(rows);
            let slices = inputs.iter().zip(&offsets).map(|(t, o)| tensors::slice_rows(t, o, start, end)).collect();
            steps::run(config, &prepared, slices, end - start, models, &self.permits)
        });
        let answers = futures_util::future::try_join_all(parts).await?;
        let outputs = config.outputs.len();
        let mut by_output: Vec<Vec<TensorBytes>> = (0..outputs).map(|_| Vec::new()).collect();
        for answer in answers {
            for (index, tensor) in answer.into_iter().enumerate() {
                by_output[index].push(tensor);
            }
        }
        by_output
            .into_iter()
            .map(|parts| {
                tensors::concat_rows(parts)
                    .map_err(|e| ServeError::Internal(format!("pipeline '{}': {e}", config.name)))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use maas_protocol::DataType;
    use parking_lot::Mutex;

    use super::*;

    /// A model step that adds one to every FP32 element and notes the rows
    /// of each call (the batching here is what is tested, not a model).
    #[derive(Default)]
    struct AddOne {
        calls: Mutex<Vec<i64>>,
    }

    #[async_trait]
    impl ModelCalls for AddOne {
        async fn infer(
            &self,
            _: &str,
            _: &str,
            _: Option<&str>,
            inputs: Vec<TensorBytes>,
        ) -> ServeResult<Vec<TensorBytes>> {
            let input = &inputs[0];
            self.calls.lock().push(input.shape[0]);
            let values: Vec<f32> =
                input.data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()) + 1.0).collect();
            Ok(vec![tensors::fp32("y", input.shape.clone(), &values)])
        }
    }

    fn two_stages(micro_batch_rows: Option<u32>) -> ModelConfig {
        serde_json::from_value(serde_json::json!({
            "name": "deep", "platform": "pipeline", "max_batch_size": 8,
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
            "outputs": [{"name": "out", "datatype": "FP32", "shape": [-1, 2]}],
            "pipeline": {"micro_batch_rows": micro_batch_rows, "steps": [
                {"name": "stage0", "model": {"model": "s0"}, "input_map": {"x": "x"}, "output_map": {"y": "mid"}},
                {"name": "stage1", "model": {"model": "s1"}, "input_map": {"x": "mid"}, "output_map": {"y": "out"}}
            ]}
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn micro_batches_go_through_every_stage_and_come_back_in_order() {
        let values: Vec<f32> = (0..10).map(|v| v as f32).collect();
        let input = tensors::fp32("x", vec![5, 2], &values);
        for (micro, calls) in [(None, vec![5, 5]), (Some(2), vec![2, 2, 1, 2, 2, 1])] {
            let config = two_stages(micro);
            assert_eq!(config.check(), Ok(()));
            let model = AddOne::default();
            let outputs = Pipelines::new(None).run(&config, 1, vec![input.clone()], 5, &model).await.unwrap();
            let got: Vec<f32> =
                outputs[0].data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
            assert_eq!(got, values.iter().map(|v| v + 2.0).collect::<Vec<_>>());
            assert_eq!(
                (outputs[0].name.as_str(), outputs[0].datatype, &outputs[0].shape),
                ("out", DataType::Fp32, &vec![5, 2])
            );
            let mut seen = model.calls.lock().clone();
            seen.sort_unstable();
            let mut expected = calls;
            expected.sort_unstable();
            assert_eq!(seen, expected, "micro_batch_rows {micro:?}");
        }
    }
}
