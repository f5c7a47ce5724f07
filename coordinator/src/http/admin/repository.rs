//! Triton's model repository extension over the registry.

use actix_web::{web, HttpRequest, HttpResponse};

use super::models::respond;
use crate::catalog;
use crate::http::AppState;

/// `POST /v2/repository/index`: every registry version with its state.
pub async fn index(state: web::Data<AppState>) -> HttpResponse {
    respond(async { Ok(HttpResponse::Ok().json(catalog::repository_index(&state).await?)) }.await)
}

async fn set_loaded(state: &AppState, request: &HttpRequest, loaded: bool) -> HttpResponse {
    respond(
        async {
            let model = request.match_info().get("model").unwrap_or_default();
            catalog::set_loaded(state, model, loaded).await?;
            Ok(HttpResponse::Ok().finish())
        }
        .await,
    )
}

/// `POST /v2/repository/models/{m}/load`.
pub async fn load(state: web::Data<AppState>, request: HttpRequest) -> HttpResponse {
    set_loaded(&state, &request, true).await
}

/// `POST /v2/repository/models/{m}/unload`.
pub async fn unload(state: web::Data<AppState>, request: HttpRequest) -> HttpResponse {
    set_loaded(&state, &request, false).await
}
