//! Publishing a pipeline version: its steps are checked against what they
//! name before anything is written.
//!
//! Every artifact a processor reads must be stored and load (a tokenizer
//! that does not parse fails here, not at the first request); every model a
//! step calls must exist, be a tensor model the publishing key may call,
//! and take and give the tensors the step maps.

use actix_web::HttpResponse;
use maas_api::Published;
use maas_protocol::{ModelConfig, PipelineSpec};
use maas_serving::error::ServeError;
use maas_tenancy::{Action, Caller};

use crate::http::error::HttpResult;
use crate::state::AppState;

/// Checks `config`'s steps and publishes it as the model's next version.
pub async fn publish_pipeline(
    state: &AppState,
    caller: &Caller,
    config: ModelConfig,
    lineage: maas_registry::Lineage,
) -> HttpResult {
    let model = config.name.clone();
    let spec = config.pipeline.as_ref().ok_or_else(|| ServeError::InvalidRequest("'pipeline' is required".into()))?;
    for step in &spec.steps {
        for digest in step.action.artifacts() {
            if state.artifacts.describe(digest).await?.is_none() {
                return Err(ServeError::InvalidRequest(format!(
                    "step '{}': artifact {digest} is not in the store; upload it first (PUT /v1/artifacts)",
                    step.name
                ))
                .into());
            }
        }
    }
    check_model_steps(state, caller, &model, spec)?;
    maas_pipeline::prepared::Prepared::load(spec, Some(&state.artifacts))
        .await
        .map_err(|e| ServeError::InvalidRequest(format!("pipeline '{model}': {e}")))?;
    let version = state.registry.publish_pipeline_version(config, lineage).await?;
    state.model_changed(&model).await;
    let sha256 = state.registry.get(&model).await?.record.versions.get(&version).map(|v| v.artifact.sha256.clone());
    tracing::info!(model, version, "pipeline version published");
    Ok(HttpResponse::Created().json(Published { model, version, sha256: sha256.unwrap_or_default() }))
}

/// Each model step names a tensor model that `caller` may call, with
/// every input mapped and only its own inputs and outputs named.
fn check_model_steps(state: &AppState, caller: &Caller, pipeline: &str, spec: &PipelineSpec) -> Result<(), ServeError> {
    for step in &spec.steps {
        let maas_protocol::pipeline::StepAction::Model(target) = &step.action else { continue };
        let named =
            |what: String| ServeError::InvalidRequest(format!("pipeline '{pipeline}' step '{}': {what}", step.name));
        if target.model == pipeline {
            return Err(named("a pipeline cannot call itself".into()));
        }
        caller.permit(Action::Infer, Some(&target.model)).map_err(|refusal| {
            ServeError::Forbidden(format!("step '{}' calls model '{}': {refusal}", step.name, target.model))
        })?;
        let version = state
            .inference
            .table()
            .resolve(&target.model, target.version.as_deref())
            .map_err(|e| named(e.to_string()))?;
        let config = &version.shared.config;
        if !config.platform.runs_on_nodes() || config.platform.is_generative() {
            return Err(named(format!("model '{}' is a {}, not a tensor model", target.model, config.platform.name())));
        }
        if let Some(missing) = config.inputs.iter().find(|i| !step.input_map.contains_key(&i.name)) {
            return Err(named(format!("input '{}' of model '{}' is not in its input_map", missing.name, target.model)));
        }
        if let Some(extra) = step.input_map.keys().find(|k| config.input(k).is_none()) {
            return Err(named(format!("model '{}' has no input '{extra}'", target.model)));
        }
        if let Some(extra) = step.output_map.keys().find(|k| !config.outputs.iter().any(|o| &o.name == *k)) {
            return Err(named(format!("model '{}' has no output '{extra}'", target.model)));
        }
    }
    Ok(())
}
