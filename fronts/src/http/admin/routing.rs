//! Aliases, rollback and traffic splits.

use crate::http::error::HttpResult;
use actix_web::{web, HttpRequest, HttpResponse};
use maas_registry::SplitEntry;
use serde::Deserialize;
use serde_json::json;

use super::parse_json;
use crate::state::AppState;

fn params(request: &HttpRequest) -> (String, String) {
    let info = request.match_info();
    (info.get("model").unwrap_or_default().to_string(), info.get("alias").unwrap_or_default().to_string())
}

#[derive(Deserialize)]
struct AliasBody {
    version: u64,
}

/// `PUT /v1/models/{m}/aliases/{a}` with `{"version": n}`.
pub async fn set_alias(state: web::Data<AppState>, request: HttpRequest, body: web::Bytes) -> HttpResult {
    let (model, alias) = params(&request);
    let body: AliasBody = parse_json(&body)?;
    state.registry.set_alias(&model, &alias, body.version).await?;
    state.registry_changed().await;
    Ok(HttpResponse::Ok().json(json!({ "model": model, "alias": alias, "version": body.version })))
}

/// `DELETE /v1/models/{m}/aliases/{a}`.
pub async fn delete_alias(state: web::Data<AppState>, request: HttpRequest) -> HttpResult {
    let (model, alias) = params(&request);
    state.registry.delete_alias(&model, &alias).await?;
    state.registry_changed().await;
    Ok(HttpResponse::Ok().json(json!({ "model": model, "deleted_alias": alias })))
}

/// `POST /v1/models/{m}/aliases/{a}/rollback`.
pub async fn rollback(state: web::Data<AppState>, request: HttpRequest) -> HttpResult {
    let (model, alias) = params(&request);
    let (from, to) = state.registry.rollback(&model, &alias).await?;
    state.registry_changed().await;
    Ok(HttpResponse::Ok().json(json!({ "model": model, "alias": alias, "from": from, "version": to })))
}

#[derive(Deserialize)]
struct SplitBody {
    split: Vec<SplitEntry>,
}

/// `PUT /v1/models/{m}/split` with `{"split": [{"version": 1, "weight": 90}, ...]}`.
pub async fn set_split(state: web::Data<AppState>, request: HttpRequest, body: web::Bytes) -> HttpResult {
    let (model, _) = params(&request);
    let body: SplitBody = parse_json(&body)?;
    state.registry.set_split(&model, body.split.clone()).await?;
    state.registry_changed().await;
    Ok(HttpResponse::Ok().json(json!({ "model": model, "split": body.split })))
}
