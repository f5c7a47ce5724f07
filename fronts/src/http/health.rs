//! Health and server metadata.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::error;
use super::AppState;
use crate::triton::EXTENSIONS;
use maas_serving::error::ServeError;

/// `GET /v2/health/live`: the process answers, `{"live": true}`.
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "live": true }))
}

/// `GET /v2/health/ready`: at least one model version can serve; 200
/// `{"ready": true}`, else 503 `{"ready": false, "error": ...}`.
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    if state.inference.table().any_ready() {
        HttpResponse::Ok().json(json!({ "ready": true }))
    } else {
        error::with_fields(&ServeError::Unavailable("no model is ready to serve".into()), json!({ "ready": false }))
    }
}

/// `GET /v2`: name, version and extensions.
pub async fn server_metadata() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "name": "maas",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": EXTENSIONS,
    }))
}
