//! Model metadata, readiness and configuration.

use actix_web::{web, HttpRequest, HttpResponse};
use maas_protocol::{ModelConfig, TensorSpec};
use serde_json::{json, Value};

use super::error;
use super::AppState;
use crate::error::{ServeError, ServeResult};
use crate::models::ModelVersion;

/// The model and optional version named by the path.
pub fn path_model(request: &HttpRequest) -> (String, Option<String>) {
    let info = request.match_info();
    (
        info.get("model").unwrap_or_default().to_string(),
        info.get("version").map(str::to_string),
    )
}

fn resolve(state: &AppState, request: &HttpRequest) -> ServeResult<std::sync::Arc<ModelVersion>> {
    let (model, version) = path_model(request);
    state.inference.table().resolve(&model, version.as_deref())
}

fn tensor_metadata(spec: &TensorSpec) -> Value {
    json!({ "name": spec.name, "datatype": spec.datatype.as_str(), "shape": spec.shape })
}

/// `GET /v2/models/{m}[/versions/{v}]`.
pub async fn metadata(state: web::Data<AppState>, request: HttpRequest) -> HttpResponse {
    match resolve(&state, &request) {
        Ok(version) => {
            let (_, explicit) = path_model(&request);
            let versions: Vec<String> = match explicit {
                Some(v) => vec![v],
                None => crate::catalog::versions_of(&state, &version.shared.name),
            };
            let config = &version.shared.config;
            HttpResponse::Ok().json(json!({
                "name": config.name,
                "versions": versions,
                "platform": "pytorch_libtorch",
                "inputs": config.inputs.iter().map(tensor_metadata).collect::<Vec<_>>(),
                "outputs": config.outputs.iter().map(tensor_metadata).collect::<Vec<_>>(),
            }))
        }
        Err(e) => error::response(&e),
    }
}

/// `GET /v2/models/{m}[/versions/{v}]/ready`: 200 while a replica is up.
pub async fn ready(state: web::Data<AppState>, request: HttpRequest) -> HttpResponse {
    match resolve(&state, &request) {
        Ok(version) if version.shared.is_ready() => HttpResponse::Ok().finish(),
        Ok(version) => error::response(&ServeError::InvalidRequest(format!(
            "model '{}' version {} is not ready",
            version.shared.name, version.shared.version
        ))),
        Err(e) => error::response(&e),
    }
}

/// `GET /v2/models/{m}[/versions/{v}]/config`: Triton's JSON model configuration.
pub async fn config(state: web::Data<AppState>, request: HttpRequest) -> HttpResponse {
    match resolve(&state, &request) {
        Ok(version) => HttpResponse::Ok().json(triton_config(&version.shared.config)),
        Err(e) => error::response(&e),
    }
}

/// The configuration in the shape of Triton's `config.pbtxt` as JSON; dims
/// leave out the batch dimension, as Triton's do when `max_batch_size > 0`.
pub fn triton_config(config: &ModelConfig) -> Value {
    let tensor = |spec: &TensorSpec| {
        json!({
            "name": spec.name,
            "data_type": spec.datatype.config_name(),
            "format": "FORMAT_NONE",
            "dims": spec.shape[1..],
        })
    };
    json!({
        "name": config.name,
        "platform": "pytorch_libtorch",
        "backend": "pytorch",
        "version_policy": { "latest": { "num_versions": 1 } },
        "max_batch_size": config.max_batch_size,
        "input": config.inputs.iter().map(tensor).collect::<Vec<_>>(),
        "output": config.outputs.iter().map(tensor).collect::<Vec<_>>(),
        "dynamic_batching": {
            "preferred_batch_size": [config.max_batch_size],
            "max_queue_delay_microseconds": config.max_queue_delay_us,
        },
        "instance_group": [{
            "name": format!("{}_0", config.name),
            "kind": "KIND_AUTO",
            "count": config.instance_count,
        }],
    })
}
