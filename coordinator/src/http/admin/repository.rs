//! Triton's model repository extension over the registry.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::models::respond;
use crate::http::AppState;

/// `POST /v2/repository/index`: every registry version with its state.
pub async fn index(state: web::Data<AppState>, request: HttpRequest) -> HttpResponse {
    respond(async {
        state.tokens.require_admin(&request)?;
        let table = state.inference.table();
        let mut entries = Vec::new();
        for stored in state.registry.list().await? {
            let record = stored.record;
            let to_load = record.versions_to_load();
            for version in record.versions.keys() {
                let ready = table.resolve(&record.name, Some(&version.to_string())).is_ok_and(|m| m.shared.is_ready());
                let (state_name, reason) = match (record.loaded, ready, to_load.contains(version)) {
                    (false, _, _) => ("UNAVAILABLE", "unloaded"),
                    (true, true, _) => ("READY", ""),
                    (true, false, true) => ("LOADING", "waiting for a node to load it"),
                    (true, false, false) => ("UNAVAILABLE", "not selected by the version policy"),
                };
                entries.push(json!({ "name": record.name, "version": version.to_string(), "state": state_name, "reason": reason }));
            }
        }
        Ok(HttpResponse::Ok().json(entries))
    }
    .await)
}

async fn set_loaded(state: &AppState, request: &HttpRequest, loaded: bool) -> HttpResponse {
    respond(async {
        state.tokens.require_admin(request)?;
        let model = request.match_info().get("model").unwrap_or_default();
        state.registry.set_loaded(model, loaded).await?;
        state.registry_changed().await;
        Ok(HttpResponse::Ok().finish())
    }
    .await)
}

/// `POST /v2/repository/models/{m}/load`.
pub async fn load(state: web::Data<AppState>, request: HttpRequest) -> HttpResponse {
    set_loaded(&state, &request, true).await
}

/// `POST /v2/repository/models/{m}/unload`.
pub async fn unload(state: web::Data<AppState>, request: HttpRequest) -> HttpResponse {
    set_loaded(&state, &request, false).await
}
