//! Pipeline versions in the serving path.
//!
//! `Inference::serve` checks a pipeline's request against the pipeline's
//! own configuration and hands it to a [`PipelineRunner`] (installed with
//! `Inference::with_pipelines`; `maas-pipeline` implements it). The runner
//! calls the deployed models of its steps through [`ModelCalls`]: each such
//! call is a request of that model in its own right — resolved through its
//! aliases and split, checked, batched with other clients' requests and
//! counted — under the pipeline request's caller, priority and deadline.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use async_trait::async_trait;
use maas_protocol::{ModelConfig, TensorBytes};
use maas_tenancy::Caller;

use crate::error::{ServeError, ServeResult};
use crate::infer::{order_and_check, Inference, RequestLife};

/// Runs the steps of pipeline versions.
#[async_trait]
pub trait PipelineRunner: Send + Sync {
    /// Runs `config`'s steps (version `version`) on `inputs`, checked
    /// against its inputs and in their order, of `rows` rows; returns its
    /// outputs in configuration order.
    async fn run(
        &self,
        config: &ModelConfig,
        version: u64,
        inputs: Vec<TensorBytes>,
        rows: u32,
        models: &dyn ModelCalls,
    ) -> ServeResult<Vec<TensorBytes>>;
}

/// How a pipeline's step calls a deployed model.
#[async_trait]
pub trait ModelCalls: Send + Sync {
    /// Runs `inputs` through `model` (`version`: a number or alias; the
    /// model's routing when `None`) for the step named `step`; an error
    /// names the step.
    async fn infer(
        &self,
        step: &str,
        model: &str,
        version: Option<&str>,
        inputs: Vec<TensorBytes>,
    ) -> ServeResult<Vec<TensorBytes>>;
}

/// The model calls of one pipeline request.
pub(crate) struct StepCalls<'a> {
    pub inference: &'a Inference,
    pub caller: &'a Caller,
    pub priority: u32,
    pub deadline: Instant,
    /// Node compute the steps used, in microseconds.
    pub compute_us: AtomicU64,
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

/// `error` of the step named `step`, saying so: a step's model that is
/// missing is the pipeline's fault (503), a request it refuses the
/// client's (400), and the rest keep their kind.
pub fn in_step(step: &str, error: ServeError) -> ServeError {
    match error {
        ServeError::ModelNotFound { .. } | ServeError::VersionNotFound { .. } => {
            ServeError::Unavailable(format!("pipeline step '{step}': {error}"))
        }
        ServeError::InvalidRequest(message) => ServeError::InvalidRequest(format!("pipeline step '{step}': {message}")),
        ServeError::Unavailable(message) => ServeError::Unavailable(format!("pipeline step '{step}': {message}")),
        ServeError::ModelFailed { model, message } => {
            ServeError::ModelFailed { model, message: format!("(pipeline step '{step}') {message}") }
        }
        ServeError::Internal(message) => ServeError::Internal(format!("pipeline step '{step}': {message}")),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_errors_name_the_step_and_keep_their_status() {
        let refused = in_step("tokenize", ServeError::InvalidRequest("text is not UTF-8".into()));
        assert_eq!(
            (refused.http_status(), refused.to_string().as_str()),
            (400, "pipeline step 'tokenize': text is not UTF-8")
        );
        let missing = in_step("classify", ServeError::ModelNotFound { model: "bert".into() });
        assert_eq!(missing.http_status(), 503);
        assert!(
            missing.to_string().contains("pipeline step 'classify': Request for unknown model: 'bert'"),
            "{missing}"
        );
        let late = ServeError::Timeout { model: "bert".into(), version: 1, waited: std::time::Duration::ZERO };
        assert_eq!(in_step("classify", late.clone()), late);
    }
}
