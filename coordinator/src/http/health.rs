//! Health and server metadata.

use actix_web::{web, HttpResponse};

use super::error;
use super::AppState;
use crate::error::ServeError;

/// Extensions of the protocol this server implements.
pub const EXTENSIONS: &[&str] = &["binary_tensor_data", "model_configuration", "parameters"];

/// `GET /v2/health/live`: the process answers.
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().finish()
}

/// `GET /v2/health/ready`: at least one model version can serve.
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    if state.inference.table().any_ready() {
        HttpResponse::Ok().finish()
    } else {
        error::response(&ServeError::Unavailable("no model is ready to serve".into()))
    }
}

/// `GET /v2`: name, version and extensions.
pub async fn server_metadata() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "name": "maas",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": EXTENSIONS,
    }))
}
