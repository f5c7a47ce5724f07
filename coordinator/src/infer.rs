//! The inference path shared by every front.
//!
//! A front parses its wire format into an [`InferRequest`]; [`Inference`]
//! resolves the model version, validates every input against the model's
//! configuration, queues the request in the version's batcher and waits for
//! its outputs until the request's deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use maas_protocol::validate::{check_data_len, check_input_header};
use maas_protocol::ModelConfig;

use tokio::sync::oneshot;

use crate::batcher::PendingRequest;
use crate::error::{ServeError, ServeResult};
use crate::metrics;
use crate::models::{ModelTable, ModelVersion};
use crate::tensor::TensorBytes;

/// A parsed inference request.
#[derive(Debug, Default)]
pub struct InferRequest {
    /// Inputs as the client sent them, in any order.
    pub inputs: Vec<TensorBytes>,
    /// The client's `timeout` parameter.
    pub timeout: Option<Duration>,
    /// The request's `id`: its prediction is kept for feedback.
    pub id: Option<String>,
}

/// The outputs of a request and the version that produced them.
#[derive(Debug)]
pub struct InferResponse {
    /// Model name.
    pub model_name: String,
    /// Version that answered.
    pub model_version: u64,
    /// Every output of the model, in configuration order.
    pub outputs: Vec<TensorBytes>,
}

/// Runs requests through the batchers of a [`ModelTable`].
pub struct Inference {
    table: Arc<ModelTable>,
    default_timeout: Duration,
}

impl Inference {
    /// Serves from `table`; requests without a timeout get `default_timeout`.
    pub fn new(table: Arc<ModelTable>, default_timeout: Duration) -> Self {
        Inference { table, default_timeout }
    }

    /// The model table.
    pub fn table(&self) -> &Arc<ModelTable> {
        &self.table
    }

    /// Finds the version a request names; an unknown model or version is
    /// counted here.
    pub fn resolve(&self, model: &str, version: Option<&str>) -> ServeResult<Arc<ModelVersion>> {
        self.table.resolve(model, version).inspect_err(|error| {
            metrics::record_request(metrics::UNKNOWN_MODEL, "", error.outcome(), Duration::ZERO);
        })
    }

    /// Counts a request's outcome once its front has answered it.
    pub fn record<T>(&self, version: &ModelVersion, arrived: Instant, result: &ServeResult<T>) {
        let outcome = match result {
            Ok(_) => "ok",
            Err(error) => error.outcome(),
        };
        count_request(&version.shared, outcome, arrived.elapsed());
    }

    /// Validates a request, queues it in the version's batcher and waits
    /// for its outputs until its deadline.
    pub async fn run(&self, version: &ModelVersion, request: InferRequest, arrived: Instant) -> ServeResult<InferResponse> {
        let shared = &version.shared;
        let _in_flight = shared.monitor.admit();
        let (inputs, rows) = order_and_check(&shared.config, request.inputs)?;
        if !shared.is_ready() {
            return Err(shared.no_replica_error());
        }
        shared.monitor.observe_inputs(&inputs);
        let deadline = arrived + request.timeout.unwrap_or(self.default_timeout);
        let (reply, answer) = oneshot::channel();
        let id = request.id.clone();
        version.batcher.submit(PendingRequest { inputs, rows, enqueued: arrived, deadline, id, reply })?;
        // Armed while the request waits: if the client goes away (its own
        // deadline, a closed connection), the front drops this future and the
        // request would otherwise never be counted.
        let unanswered = Unanswered { version: shared, arrived };
        let waited = tokio::time::timeout_at(deadline.into(), answer).await;
        std::mem::forget(unanswered);
        let outputs = match waited {
            Ok(Ok(result)) => result?,
            Ok(Err(_)) => return Err(ServeError::Internal("the batcher dropped a request; this is a bug".into())),
            Err(_) => {
                return Err(ServeError::Timeout {
                    model: shared.name.clone(),
                    version: shared.version,
                    waited: arrived.elapsed(),
                })
            }
        };
        if let Some(id) = request.id.as_deref() {
            self.table.monitor().record_prediction(&shared.config, shared.version, id, &outputs);
        }
        Ok(InferResponse {
            model_name: shared.name.clone(),
            model_version: shared.version,
            outputs,
        })
    }
}

/// Checks every input against the configuration and puts them in its
/// order; returns them with the request's row count.
fn order_and_check(config: &ModelConfig, inputs: Vec<TensorBytes>) -> ServeResult<(Vec<TensorBytes>, u32)> {
    let model = config.name.as_str();
    let invalid = ServeError::InvalidRequest;
    let mut slots: Vec<Option<TensorBytes>> = vec![None; config.inputs.len()];
    for input in inputs {
        let index = config
            .inputs
            .iter()
            .position(|spec| spec.name == input.name)
            .ok_or_else(|| invalid(format!("unexpected inference input '{}' for model '{model}'", input.name)))?;
        if slots[index].is_some() {
            return Err(invalid(format!("input '{}' for model '{model}' is given more than once", input.name)));
        }
        slots[index] = Some(input);
    }
    let mut ordered = Vec::with_capacity(slots.len());
    let mut rows = None;
    for (spec, slot) in config.inputs.iter().zip(slots) {
        let input =
            slot.ok_or_else(|| invalid(format!("missing input '{}' for model '{model}'", spec.name)))?;
        let input_rows = check_input_header(model, spec, input.datatype, &input.shape, config.max_batch_size)
            .map_err(invalid)?;
        check_data_len(model, &spec.name, input.datatype, &input.shape, input.data.len()).map_err(invalid)?;
        if *rows.get_or_insert(input_rows) != input_rows {
            return Err(invalid(format!(
                "inputs of model '{model}' disagree on the batch size: '{}' has {input_rows} rows",
                spec.name
            )));
        }
        ordered.push(input);
    }
    Ok((ordered, rows.expect("configs have at least one input")))
}

/// Counts a queued request as `cancelled` when its front stops waiting for
/// it; defused with `mem::forget` once an answer (or timeout) is in hand.
struct Unanswered<'a> {
    version: &'a crate::models::VersionShared,
    arrived: Instant,
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        count_request(self.version, "cancelled", self.arrived.elapsed());
    }
}

/// Counts one request of `version` in its Prometheus series and its monitor.
fn count_request(version: &crate::models::VersionShared, outcome: &'static str, elapsed: Duration) {
    version.metrics.request(outcome, elapsed);
    version.monitor.request_done(outcome == "ok", elapsed);
}
