//! Model metadata, readiness and configuration.

use actix_web::{web, HttpRequest, HttpResponse};
use maas_protocol::TensorSpec;
use serde_json::{json, Value};

use super::error;
use super::AppState;
use crate::error::{ServeError, ServeResult};
use crate::models::ModelVersion;
use crate::triton::{self, ConfigView};

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
                "platform": triton::PLATFORM,
                "inputs": config.inputs.iter().map(tensor_metadata).collect::<Vec<_>>(),
                "outputs": config.outputs.iter().map(tensor_metadata).collect::<Vec<_>>(),
            }))
        }
        Err(e) => error::response(&e),
    }
}

/// `GET /v2/models/{m}[/versions/{v}]/ready`: 200 `{"name", "ready": true}`
/// while a replica is up, 503 with `"ready": false` while none is.
pub async fn ready(state: web::Data<AppState>, request: HttpRequest) -> HttpResponse {
    match resolve(&state, &request) {
        Ok(version) if version.shared.is_ready() => {
            HttpResponse::Ok().json(json!({ "name": version.shared.name, "ready": true }))
        }
        Ok(version) => error::with_fields(
            &ServeError::Unavailable(format!(
                "model '{}' version {} is not ready",
                version.shared.name, version.shared.version
            )),
            json!({ "name": version.shared.name, "ready": false }),
        ),
        Err(e) => error::response(&e),
    }
}

/// `GET /v2/models/{m}[/versions/{v}]/config`: Triton's JSON model configuration.
pub async fn config(state: web::Data<AppState>, request: HttpRequest) -> HttpResponse {
    match resolve(&state, &request) {
        Ok(version) => HttpResponse::Ok().json(ConfigView::of(&version.shared.config)),
        Err(e) => error::response(&e),
    }
}
