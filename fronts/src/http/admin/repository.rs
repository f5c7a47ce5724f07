//! Triton's model repository extension over the registry.

use crate::http::error::HttpResult;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::catalog;
use crate::state::AppState;

/// `POST /v2/repository/index`: every registry version with its state.
pub async fn index(state: web::Data<AppState>, request: HttpRequest) -> HttpResult {
    let caller = crate::http::routes::caller(&request)?;
    Ok(HttpResponse::Ok().json(catalog::repository_index(&state, &caller).await?))
}

async fn set_loaded(state: web::Data<AppState>, request: &HttpRequest, loaded: bool) -> HttpResult {
    let model = request.match_info().get("model").unwrap_or_default();
    catalog::set_loaded(state.clone(), model, loaded).await?;
    Ok(HttpResponse::Ok().finish())
}

/// `POST /v2/repository/models/{m}/load`.
pub async fn load(state: web::Data<AppState>, request: HttpRequest) -> HttpResult {
    set_loaded(state, &request, true).await
}

/// `POST /v2/repository/models/{m}/unload`.
pub async fn unload(state: web::Data<AppState>, request: HttpRequest) -> HttpResult {
    set_loaded(state, &request, false).await
}
