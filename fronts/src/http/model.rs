//! Model metadata, readiness and configuration.

use crate::http::error::HttpResult;
use actix_web::{web, HttpRequest, HttpResponse};
use maas_protocol::TensorSpec;
use serde_json::{json, Value};

use super::error;
use super::AppState;
use crate::triton::ConfigView;
use maas_serving::error::{ServeError, ServeResult};
use maas_serving::models::ModelVersion;

/// The model and optional version named by the path.
pub fn path_model(request: &HttpRequest) -> (String, Option<String>) {
    let info = request.match_info();
    (info.get("model").unwrap_or_default().to_string(), info.get("version").map(str::to_string))
}

fn resolve(state: &AppState, request: &HttpRequest) -> ServeResult<std::sync::Arc<ModelVersion>> {
    let (model, version) = path_model(request);
    state.inference.table().resolve(&model, version.as_deref())
}

fn tensor_metadata(spec: &TensorSpec) -> Value {
    json!({ "name": spec.name, "datatype": spec.datatype.as_str(), "shape": spec.shape })
}

/// `GET /v2/models/{m}[/versions/{v}]`.
pub async fn metadata(state: web::Data<AppState>, request: HttpRequest) -> HttpResult {
    let version = resolve(&state, &request)?;
    let (_, explicit) = path_model(&request);
    let versions: Vec<String> = match explicit {
        Some(v) => vec![v],
        None => crate::catalog::versions_of(&state, &version.shared.name),
    };
    let config = &version.shared.config;
    Ok(HttpResponse::Ok().json(json!({
        "name": config.name,
        "versions": versions,
        "platform": config.platform.name(),
        "inputs": config.inputs.iter().map(tensor_metadata).collect::<Vec<_>>(),
        "outputs": config.outputs.iter().map(tensor_metadata).collect::<Vec<_>>(),
    })))
}

/// `GET /v2/models/{m}[/versions/{v}]/ready`: 200 `{"name", "ready": true}`
/// while a replica is up, 503 with `"ready": false` while none is.
pub async fn ready(state: web::Data<AppState>, request: HttpRequest) -> HttpResult {
    let version = resolve(&state, &request)?;
    let name = &version.shared.name;
    if version.shared.is_ready() {
        return Ok(HttpResponse::Ok().json(json!({ "name": name, "ready": true })));
    }
    let not_ready = ServeError::Unavailable(format!("model '{name}' version {} is not ready", version.shared.version));
    Ok(error::with_fields(&not_ready, json!({ "name": name, "ready": false })))
}

/// `GET /v2/models/{m}[/versions/{v}]/config`: Triton's JSON model configuration.
pub async fn config(state: web::Data<AppState>, request: HttpRequest) -> HttpResult {
    let version = resolve(&state, &request)?;
    Ok(HttpResponse::Ok().json(ConfigView::of(&version.shared.config)))
}
