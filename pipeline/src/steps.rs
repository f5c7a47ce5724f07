//! Running a pipeline's steps over one (micro-)batch of rows.
//!
//! Tensors live in a map by pipeline name. Each step gets its inputs under
//! its own names, runs (a processor on the blocking pool, a model through
//! [`ModelCalls`], so through that model's batcher and nodes), and its
//! outputs go back into the map under their pipeline names. Tensors are
//! `Bytes`: handing one to the next step copies nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use maas_protocol::pipeline::{PipelineStep, StepAction};
use maas_protocol::{ModelConfig, TensorBytes};
use maas_serving::metrics::PIPELINE_STEP_SECONDS;
use maas_serving::pipeline::{in_step, ModelCalls};
use maas_serving::{ServeError, ServeResult};
use tokio::sync::Semaphore;

use crate::prepared::Prepared;
use crate::tensors::StepError;

/// Runs every step of `config` on `inputs` (in configuration order, `rows`
/// rows each), each processor once one of `permits` is free; returns the
/// pipeline's outputs in configuration order.
pub async fn run(
    config: &ModelConfig,
    prepared: &Arc<Prepared>,
    inputs: Vec<TensorBytes>,
    rows: usize,
    models: &dyn ModelCalls,
    permits: &Arc<Semaphore>,
) -> ServeResult<Vec<TensorBytes>> {
    let spec = config.pipeline.as_ref().ok_or_else(|| ServeError::Internal("a pipeline without steps".into()))?;
    let mut tensors: HashMap<String, TensorBytes> = inputs.into_iter().map(|t| (t.name.clone(), t)).collect();
    for (index, step) in spec.steps.iter().enumerate() {
        let started = Instant::now();
        let step_inputs: Vec<TensorBytes> = step
            .input_map
            .iter()
            .map(|(own, wired)| {
                let tensor = tensors.get(wired).ok_or_else(|| {
                    ServeError::Internal(format!("pipeline step '{}': no tensor '{wired}' before it", step.name))
                })?;
                Ok(TensorBytes { name: own.clone(), ..tensor.clone() })
            })
            .collect::<ServeResult<_>>()?;
        let outputs = match &step.action {
            StepAction::Model(model) => {
                models.infer(&step.name, &model.model, model.version.as_deref(), step_inputs).await?
            }
            _ => process(prepared, index, step_inputs, rows, permits).await.map_err(|e| step_error(config, step, e))?,
        };
        metrics::histogram!(PIPELINE_STEP_SECONDS, "model" => config.name.clone(), "step" => step.name.clone())
            .record(started.elapsed().as_secs_f64());
        for (own, wired) in &step.output_map {
            let output = outputs
                .iter()
                .find(|o| &o.name == own)
                .ok_or_else(|| in_step(&step.name, ServeError::Internal(format!("the step gave no output '{own}'"))))?;
            tensors.insert(wired.clone(), TensorBytes { name: wired.clone(), ..output.clone() });
        }
    }
    config
        .outputs
        .iter()
        .map(|spec| {
            let tensor = tensors.remove(&spec.name).ok_or_else(|| {
                ServeError::Internal(format!("pipeline '{}' gave no output '{}'", config.name, spec.name))
            })?;
            if tensor.datatype != spec.datatype {
                return Err(ServeError::Internal(format!(
                    "pipeline '{}': output '{}' is {}, but its configuration says {}",
                    config.name, spec.name, tensor.datatype, spec.datatype
                )));
            }
            Ok(tensor)
        })
        .collect()
}

/// Runs processor step `index` on the blocking pool once a permit is
/// free. A request that stops waiting first (its deadline passed, its
/// client went away) never starts its processor.
async fn process(
    prepared: &Arc<Prepared>,
    index: usize,
    inputs: Vec<TensorBytes>,
    rows: usize,
    permits: &Arc<Semaphore>,
) -> Result<Vec<TensorBytes>, StepError> {
    let permit = permits.clone().acquire_owned().await.map_err(|e| StepError::Pipeline(e.to_string()))?;
    let prepared = prepared.clone();
    tokio::task::spawn_blocking(move || {
        let _running = permit;
        prepared.process(index, &inputs, rows)
    })
    .await
    .map_err(|e| StepError::Pipeline(format!("the step panicked: {e}")))?
}

/// A processor's error as the client sees it: bad input is theirs (400),
/// anything else the pipeline's (500); both name the step.
fn step_error(config: &ModelConfig, step: &PipelineStep, error: StepError) -> ServeError {
    match error {
        StepError::Input(message) => ServeError::InvalidRequest(format!("pipeline step '{}': {message}", step.name)),
        StepError::Pipeline(message) => {
            ServeError::Internal(format!("pipeline '{}' step '{}': {message}", config.name, step.name))
        }
    }
}
