//! Pipeline versions in the serving path.
//!
//! `Inference::serve` checks a pipeline's request against the pipeline's
//! own configuration and hands it to a [`PipelineRunner`] (installed with
//! `Inference::with_pipelines`; `maas-pipeline` implements it). The runner
//! calls the deployed models of its steps through [`ModelCalls`]: each such
//! call is a request of that model in its own right — resolved through its
//! aliases and split, checked, batched with other clients' requests and
//! counted — under the pipeline request's caller, priority and deadline.

use async_trait::async_trait;
use maas_protocol::{ModelConfig, TensorBytes};

use crate::error::{ServeError, ServeResult};

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
        ServeError::Forbidden(message) => ServeError::Forbidden(format!("pipeline step '{step}': {message}")),
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
