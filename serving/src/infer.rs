//! The inference path shared by every front.
//!
//! A front makes one call, [`Inference::serve`], with a function that
//! parses its wire format into an [`InferRequest`] (given the version's
//! [`InputCheck`], so it checks each input's header before decoding its
//! data) and a function that encodes the [`InferResponse`]; `serve`
//! resolves the model version, validates every
//! input against the model's configuration, queues the request in the
//! version's batcher, waits for its outputs until the request's deadline
//! and counts the outcome once, `cancelled` included.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use maas_protocol::validate::{check_data, check_input_header};
use maas_protocol::{strings, DataType, ModelConfig, Platform};

use async_trait::async_trait;
use tokio::sync::oneshot;

use crate::error::{ServeError, ServeResult};
use crate::input_check::InputCheck;
use crate::metrics;
use crate::models::{ModelTable, ModelVersion};
use crate::pending::{Answered, PendingRequest};
use crate::pipeline::{in_step, ModelCalls, PipelineRunner};
use crate::priority;
use crate::version::VersionShared;
use maas_protocol::TensorBytes;
use maas_tenancy::usage::{UsageCounts, UsageMeter};
use maas_tenancy::{Action, Admission, Caller, Limiter};

/// The longest request id accepted, in bytes. An id travels with its batch
/// to the node and is kept with its prediction for feedback, so it must
/// stay small next to the tensors.
pub const MAX_REQUEST_ID_BYTES: usize = 256;

/// A parsed inference request.
#[derive(Debug, Default)]
pub struct InferRequest {
    /// Inputs as the client sent them, in any order.
    pub inputs: Vec<TensorBytes>,
    /// The client's `timeout` parameter.
    pub timeout: Option<Duration>,
    /// The request's `id`: its prediction is kept for feedback.
    pub id: Option<String>,
    /// The client's `priority` parameter (1 is the highest; 0 the default).
    pub priority: Option<u64>,
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
    max_timeout: Duration,
    limiter: Limiter,
    usage: Option<Arc<UsageMeter>>,
    pipelines: Option<Arc<dyn PipelineRunner>>,
}

impl Inference {
    /// Serves from `table`; requests without a timeout get
    /// `default_timeout`, none gets more than `max_timeout`.
    pub fn new(table: Arc<ModelTable>, default_timeout: Duration, max_timeout: Duration) -> Self {
        Inference { table, default_timeout, max_timeout, limiter: Limiter::new(), usage: None, pipelines: None }
    }

    /// Runs pipeline versions with `runner` (without one they answer 503).
    pub fn with_pipelines(mut self, runner: Arc<dyn PipelineRunner>) -> Self {
        self.pipelines = Some(runner);
        self
    }

    /// Counts every request's use in `meter`.
    pub fn with_usage(mut self, meter: Arc<UsageMeter>) -> Self {
        self.usage = Some(meter);
        self
    }

    /// The usage meter, when usage is counted.
    pub fn usage(&self) -> Option<&Arc<UsageMeter>> {
        self.usage.as_ref()
    }

    /// The keys' rate limits as this coordinator enforces them.
    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }

    /// The model table.
    pub fn table(&self) -> &Arc<ModelTable> {
        &self.table
    }

    /// Serves one request of `caller` through its whole life: resolves the
    /// version `model` and `version` name, checks the caller's scope on the
    /// model and admits it under its key's limits, has the front parse its
    /// `request` with the version's [`InputCheck`] (returning whatever the
    /// front needs to answer, `C`), validates and queues it, waits for its
    /// outputs until its deadline, lets the front build its `answer`, and
    /// counts the outcome (and the tenant's use) once. A front that stops waiting
    /// (the client went away) drops this future: the request is then
    /// counted as `cancelled`. An unknown model or version is counted too.
    pub async fn serve<C, T, R>(
        &self,
        caller: &Caller,
        model: &str,
        version: Option<&str>,
        request: impl FnOnce(InputCheck) -> R,
        answer: impl FnOnce(InferResponse, C) -> ServeResult<T>,
    ) -> ServeResult<T>
    where
        R: Future<Output = ServeResult<(InferRequest, C)>>,
    {
        let arrived = Instant::now();
        let version = self.table.resolve(model, version).inspect_err(|error| {
            metrics::record_request(metrics::UNKNOWN_MODEL, "", error.outcome(), Duration::ZERO);
        })?;
        let life = RequestLife::new(&version.shared, arrived);
        let mut used = UsageCounts { requests: 1, ..UsageCounts::default() };
        let result = async {
            caller.permit(Action::Infer, Some(&version.shared.name))?;
            if version.shared.config.platform.is_generative() {
                return Err(ServeError::InvalidRequest(format!(
                    "model '{}' is a generative model: use /v2/models/{}/generate or /v1/chat/completions",
                    version.shared.name, version.shared.name
                )));
            }
            let admission = self.limiter.admit(caller)?;
            let (request, context) = request(InputCheck::new(version.shared.config.clone())).await?;
            let response = self.run(&version, request, caller, &admission, &mut used, arrived).await?;
            answer(response, context)
        }
        .await;
        match &result {
            Err(ServeError::Forbidden(_)) => {}
            outcome => {
                if matches!(outcome, Err(ServeError::RateLimited { .. })) {
                    metrics::record_rate_limited(caller.tenant());
                }
                used.errors = u64::from(outcome.is_err());
                if let Some(meter) = &self.usage {
                    meter.record(caller.tenant(), &version.shared.name, version.shared.version, &used);
                }
            }
        }
        life.count(&result);
        result
    }

    /// Validates a request, queues it in the version's batcher and waits
    /// for its outputs until its deadline.
    async fn run(
        &self,
        version: &ModelVersion,
        request: InferRequest,
        caller: &Caller,
        admission: &Admission,
        used: &mut UsageCounts,
        arrived: Instant,
    ) -> ServeResult<InferResponse> {
        let shared = &version.shared;
        let _in_flight = shared.monitor.admit();
        check_request_id(request.id.as_deref())?;
        let (inputs, rows) = order_and_check(&shared.config, request.inputs)?;
        used.rows = u64::from(rows);
        used.bytes_in = inputs.iter().map(|input| input.data.len() as u64).sum();
        admission.rows(rows as u64)?;
        let priority = priority::level(request.priority, caller)?;
        // A client's timeout is cut to the server's longest, so that no
        // request holds its place (and its memory) for as long as it asks.
        let deadline = arrived + request.timeout.unwrap_or(self.default_timeout).min(self.max_timeout);
        let outputs = if shared.config.platform == Platform::Pipeline {
            let runner = self.pipelines.as_ref().ok_or_else(|| {
                ServeError::Unavailable(format!("this coordinator does not run pipelines ('{}')", shared.name))
            })?;
            shared
                .monitor
                .observe_inputs(&inputs, || self.table.may_set_reference(&shared.name, shared.version, caller));
            let calls = StepCalls { inference: self, caller, priority, deadline, compute_us: Default::default() };
            let run = runner.run(&shared.config, shared.version, inputs, rows, &calls);
            let outputs = tokio::time::timeout_at(deadline.into(), run).await.map_err(|_| ServeError::Timeout {
                model: shared.name.clone(),
                version: shared.version,
                waited: arrived.elapsed(),
            })??;
            used.compute_us = calls.compute_us.into_inner();
            outputs
        } else {
            let answered =
                self.queue(version, inputs, rows, priority, arrived, deadline, request.id.clone(), caller).await?;
            used.compute_us = answered.compute_us;
            answered.outputs
        };
        used.bytes_out = outputs.iter().map(|output| output.data.len() as u64).sum();
        if let Some(id) = request.id.as_deref() {
            self.table.monitor().record_prediction(&shared.config, shared.version, caller.tenant(), id, &outputs);
        }
        Ok(InferResponse { model_name: shared.name.clone(), model_version: shared.version, outputs })
    }

    /// Queues checked `inputs` of `rows` rows in `version`'s batcher and
    /// waits for their answer until `deadline`.
    #[allow(clippy::too_many_arguments)]
    async fn queue(
        &self,
        version: &ModelVersion,
        inputs: Vec<TensorBytes>,
        rows: u32,
        priority: u32,
        arrived: Instant,
        deadline: Instant,
        id: Option<String>,
        caller: &Caller,
    ) -> ServeResult<Answered> {
        let shared = &version.shared;
        // A version loaded on demand that has no replica yet keeps the
        // request until one is loaded (or its deadline passes); any other
        // version without a replica fails it at once.
        let cold = !shared.is_ready();
        if cold && !shared.loads_on_demand() {
            return Err(shared.no_replica_error());
        }
        if let Some(error) = cold.then(|| shared.cannot_load_error()).flatten() {
            return Err(error);
        }
        let _in_use = shared.activity.touch(arrived);
        let _waiting = cold.then(|| {
            let waiting = shared.activity.wait();
            self.table.nudge_demand();
            waiting
        });
        shared.monitor.observe_inputs(&inputs, || self.table.may_set_reference(&shared.name, shared.version, caller));
        let (reply, answer) = oneshot::channel();
        version.batcher.submit(PendingRequest { inputs, rows, enqueued: arrived, deadline, id, priority, reply })?;
        let waited = tokio::time::timeout_at(deadline.into(), answer).await;
        let answered = match waited {
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
        if cold {
            metrics::record_cold_start(&shared.name, arrived.elapsed());
        }
        Ok(answered)
    }
}

/// The model calls of one pipeline request.
struct StepCalls<'a> {
    inference: &'a Inference,
    caller: &'a Caller,
    priority: u32,
    deadline: Instant,
    /// Node compute the steps used, in microseconds.
    compute_us: AtomicU64,
}

#[async_trait]
impl ModelCalls for StepCalls<'_> {
    async fn infer(
        &self,
        step: &str,
        model: &str,
        version: Option<&str>,
        inputs: Vec<TensorBytes>,
    ) -> ServeResult<Vec<TensorBytes>> {
        // The caller must reach the step's model too: a pipeline is not a
        // way around a key's scope.
        self.caller.permit(Action::Infer, Some(model)).map_err(|e| in_step(step, e.into()))?;
        let resolved = self.inference.table().resolve(model, version).map_err(|e| in_step(step, e))?;
        let shared = &resolved.shared;
        if !shared.config.platform.runs_on_nodes() || shared.config.platform.is_generative() {
            return Err(in_step(
                step,
                ServeError::Unavailable(format!(
                    "model '{model}' is a {}, not a tensor model",
                    shared.config.platform.name()
                )),
            ));
        }
        let arrived = Instant::now();
        let life = RequestLife::new(shared, arrived);
        let result = async {
            let (inputs, rows) = order_and_check(&shared.config, inputs)?;
            self.inference
                .queue(&resolved, inputs, rows, self.priority, arrived, self.deadline, None, self.caller)
                .await
        }
        .await;
        life.count(&result);
        let answered = result.map_err(|e| in_step(step, e))?;
        self.compute_us.fetch_add(answered.compute_us, Ordering::Relaxed);
        Ok(answered.outputs)
    }
}

/// Refuses an id longer than [`MAX_REQUEST_ID_BYTES`] (requests, and
/// feedback, which names requests by id).
pub fn check_request_id(id: Option<&str>) -> ServeResult<()> {
    match id {
        Some(id) if id.len() > MAX_REQUEST_ID_BYTES => Err(ServeError::InvalidRequest(format!(
            "the request id has {} bytes; at most {MAX_REQUEST_ID_BYTES} are accepted",
            id.len()
        ))),
        _ => Ok(()),
    }
}

/// Refuses an output list that names an output more than once: each
/// repetition would encode the same tensor again in the answer.
pub fn check_unique_outputs<'a>(names: impl IntoIterator<Item = &'a str>) -> ServeResult<()> {
    let mut seen = std::collections::HashSet::new();
    for name in names {
        if !seen.insert(name) {
            return Err(ServeError::InvalidRequest(format!("output '{name}' is requested more than once")));
        }
    }
    Ok(())
}

/// Checks every input against the configuration and puts them in its
/// order; returns them with the request's row count. Public for the fuzz
/// targets (`fuzz/`), which run the fronts' parsers through it.
#[doc(hidden)]
pub fn order_and_check(config: &ModelConfig, inputs: Vec<TensorBytes>) -> ServeResult<(Vec<TensorBytes>, u32)> {
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
        let input = slot.ok_or_else(|| invalid(format!("missing input '{}' for model '{model}'", spec.name)))?;
        let input_rows =
            check_input_header(model, spec, input.datatype, &input.shape, config.max_batch_size).map_err(invalid)?;
        check_data(model, &spec.name, input.datatype, &input.shape, &input.data).map_err(invalid)?;
        if input.datatype == DataType::Bytes && config.platform.bytes_are_text() {
            strings::check_text(&input.data)
                .map_err(|why| invalid(format!("input '{}' for model '{model}': {why}", spec.name)))?;
        }
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

/// One request between its arrival and its count: counted once, with its
/// outcome by [`RequestLife::count`], or as `cancelled` when dropped first
/// (its front stopped waiting).
struct RequestLife<'a> {
    version: &'a VersionShared,
    arrived: Instant,
    counted: bool,
}

impl<'a> RequestLife<'a> {
    /// A request of `version` that arrived at `arrived`.
    pub fn new(version: &'a VersionShared, arrived: Instant) -> Self {
        RequestLife { version, arrived, counted: false }
    }

    /// Counts the request with the outcome of `result`.
    pub fn count<T>(mut self, result: &ServeResult<T>) {
        let outcome = match result {
            Ok(_) => "ok",
            Err(error) => error.outcome(),
        };
        count_request(self.version, outcome, self.arrived.elapsed());
        self.counted = true;
    }
}

impl Drop for RequestLife<'_> {
    fn drop(&mut self) {
        if !self.counted {
            count_request(self.version, "cancelled", self.arrived.elapsed());
        }
    }
}

/// Counts one request of `version` in its Prometheus series and its monitor.
pub fn count_request(version: &VersionShared, outcome: &'static str, elapsed: Duration) {
    version.metrics().request(outcome, elapsed);
    version.monitor.request_done(outcome == "ok", elapsed);
}

#[cfg(test)]
mod tests {
    use maas_protocol::DataType;

    use super::*;

    fn config() -> ModelConfig {
        serde_json::from_value(serde_json::json!({
            "name": "two", "max_batch_size": 8,
            "inputs": [{"name": "a", "datatype": "FP32", "shape": [-1, 2]},
                       {"name": "b", "datatype": "INT64", "shape": [-1, 1]}],
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 1]}]
        }))
        .unwrap()
    }

    fn tensor(name: &str, datatype: DataType, shape: &[i64]) -> TensorBytes {
        let count: i64 = shape.iter().product();
        let data = vec![0u8; count as usize * datatype.element_size().unwrap_or(1)];
        TensorBytes { name: name.into(), datatype, shape: shape.to_vec(), data: data.into() }
    }

    #[test]
    fn inputs_come_back_in_configuration_order_with_their_rows() {
        let given = vec![tensor("b", DataType::Int64, &[3, 1]), tensor("a", DataType::Fp32, &[3, 2])];
        let (ordered, rows) = order_and_check(&config(), given).unwrap();
        let names: Vec<&str> = ordered.iter().map(|t| t.name.as_str()).collect();
        assert_eq!((names, rows), (vec!["a", "b"], 3));
    }

    #[test]
    fn bad_input_sets_are_refused_with_the_reason() {
        let cases = [
            (vec![tensor("a", DataType::Fp32, &[1, 2])], "missing input 'b'"),
            (
                vec![
                    tensor("a", DataType::Fp32, &[1, 2]),
                    tensor("a", DataType::Fp32, &[1, 2]),
                    tensor("b", DataType::Int64, &[1, 1]),
                ],
                "input 'a' for model 'two' is given more than once",
            ),
            (
                vec![tensor("a", DataType::Fp32, &[1, 2]), tensor("c", DataType::Int64, &[1, 1])],
                "unexpected inference input 'c'",
            ),
            (
                vec![tensor("a", DataType::Fp32, &[2, 2]), tensor("b", DataType::Int64, &[3, 1])],
                "disagree on the batch size",
            ),
        ];
        for (inputs, expected) in cases {
            let error = order_and_check(&config(), inputs).unwrap_err().to_string();
            assert!(error.contains(expected), "{error:?} should contain {expected:?}");
        }
        let short = TensorBytes { data: vec![0u8; 4].into(), ..tensor("a", DataType::Fp32, &[1, 2]) };
        assert!(order_and_check(&config(), vec![short, tensor("b", DataType::Int64, &[1, 1])]).is_err());
    }

    #[test]
    fn request_ids_are_capped() {
        assert!(check_request_id(None).is_ok());
        assert!(check_request_id(Some(&"x".repeat(MAX_REQUEST_ID_BYTES))).is_ok());
        let error = check_request_id(Some(&"x".repeat(MAX_REQUEST_ID_BYTES + 1))).unwrap_err();
        assert!(matches!(error, ServeError::InvalidRequest(_)), "{error:?}");
        assert!(error.to_string().contains("257 bytes"), "{error}");
    }

    #[test]
    fn an_output_named_twice_is_refused() {
        assert!(check_unique_outputs(["y", "z"]).is_ok());
        let error = check_unique_outputs(["y", "z", "y"]).unwrap_err();
        assert_eq!(error.to_string(), "output 'y' is requested more than once");
    }
}
