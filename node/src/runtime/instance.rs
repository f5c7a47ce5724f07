//! One model instance: an OS thread that owns a loaded model (a
//! [`Backend`]: TorchScript, an AOTInductor package or ONNX).
//!
//! The thread loads the model, warms it up on the configured batch sizes,
//! reports that it is ready, then runs batches from its model's queue until
//! the queue closes. Gradient tracking is off for the thread's life.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use maas_protocol::frame::ValidatedBatch;
use maas_protocol::{BatchReply, BatchResult, ModelConfig};
use tch::Device;
use tokio::sync::oneshot;

use super::backend::{self, Backend};
use super::execute::{execute, BatchView};
use crate::metrics;

/// A batch waiting for an instance.
pub struct Job {
    /// The batch, validated once when it arrived.
    pub batch: ValidatedBatch,
    /// When the batch entered the model's queue.
    pub enqueued: Instant,
    /// Where the answer goes.
    pub reply: oneshot::Sender<BatchReply>,
}

/// What an instance thread needs to start.
pub struct InstanceSpec {
    /// The model's configuration.
    pub config: Arc<ModelConfig>,
    /// Version number, for logs and metrics.
    pub version: u64,
    /// The artifact, in the format the config's platform names.
    pub path: PathBuf,
    /// Device to load on.
    pub device: Device,
    /// Index among the version's instances.
    pub index: u32,
    /// Load-testing mode: run no model, answer zeros after this long.
    pub simulate: Option<std::time::Duration>,
}

/// What an instance runs batches with.
enum Engine {
    Model(Box<dyn Backend>),
    Simulated(std::time::Duration),
}

/// Starts an instance thread. `loaded` receives `Ok` once the module is
/// loaded and warm, or the reason it could not be.
pub fn spawn(spec: InstanceSpec, jobs: flume::Receiver<Job>, loaded: oneshot::Sender<Result<()>>) -> Result<()> {
    let name = format!("{}-v{}-{}", spec.config.name, spec.version, spec.index);
    let thread_name = name.clone();
    let spec_name = spec.config.name.clone();
    std::thread::Builder::new()
        .name(thread_name)
        .spawn(move || {
            let _no_grad = tch::no_grad_guard();
            let engine = match spec.simulate {
                Some(compute) => Ok(Engine::Simulated(compute)),
                None => load_and_warm(&spec).map(Engine::Model),
            };
            let engine = match engine {
                Ok(engine) => {
                    let _ = loaded.send(Ok(()));
                    engine
                }
                Err(error) => {
                    let _ = loaded.send(Err(error));
                    return;
                }
            };
            serve(&spec, &engine, jobs);
            tracing::info!(instance = %name, "instance stopped");
        })
        .with_context(|| format!("spawning an instance thread for model '{}'", spec_name))?;
    Ok(())
}

/// Loads and warms up one instance on the calling thread, then drops it.
pub fn trial(spec: &InstanceSpec) -> Result<()> {
    if spec.simulate.is_some() {
        return Ok(());
    }
    let _no_grad = tch::no_grad_guard();
    load_and_warm(spec).map(drop)
}

fn load_and_warm(spec: &InstanceSpec) -> Result<Box<dyn Backend>> {
    let started = Instant::now();
    let model = backend::load(&spec.config, &spec.path, spec.device)?;
    backend::warm_up(model.as_ref(), &spec.config, spec.device)?;
    tracing::info!(
        model = %spec.config.name,
        version = spec.version,
        instance = spec.index,
        platform = spec.config.platform.name(),
        device = ?spec.device,
        ms = started.elapsed().as_millis() as u64,
        "instance loaded and warm"
    );
    Ok(model)
}

fn serve(spec: &InstanceSpec, engine: &Engine, jobs: flume::Receiver<Job>) {
    let version_label = spec.version.to_string();
    while let Ok(job) = jobs.recv() {
        let queue_ns = job.enqueued.elapsed().as_nanos() as u64;
        let batch = job.batch.batch();
        let view = BatchView::of(batch);
        let rows: u64 = view.request_rows.iter().map(|&r| u64::from(r)).sum();
        let batch_id = batch.batch_id.to_native();
        let result = match engine {
            Engine::Model(model) => execute(model.as_ref(), &spec.config, spec.device, &view),
            Engine::Simulated(compute) => super::simulate::execute(&spec.config, &view, *compute),
        };
        let response = match result {
            Ok((outcome, timings)) => {
                metrics::record_batch(&spec.config.name, &version_label, rows, queue_ns, &timings, &outcome);
                if tracing::enabled!(tracing::Level::DEBUG) {
                    let ids: Vec<&str> = batch.request_ids.iter().map(|id| id.as_str()).collect();
                    tracing::debug!(
                        batch_id, model = %spec.config.name, version = spec.version, instance = spec.index, rows,
                        queue_us = queue_ns / 1000, infer_us = timings.infer_ns / 1000, request_ids = ?ids,
                        "batch run"
                    );
                }
                BatchReply::Ran(BatchResult {
                    batch_id,
                    queue_ns,
                    compute_input_ns: timings.input_ns,
                    compute_infer_ns: timings.infer_ns,
                    compute_output_ns: timings.output_ns,
                    outcome,
                })
            }
            Err(error) => {
                tracing::debug!(batch_id, model = %spec.config.name, %error, "batch refused");
                metrics::record_rejected_batch(&spec.config.name, &version_label);
                BatchReply::Failed(error)
            }
        };
        // The stream may have gone away meanwhile; nothing waits for the answer then.
        let _ = job.reply.send(response);
    }
}
