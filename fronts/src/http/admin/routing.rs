//! Aliases, rollback and traffic splits.

use crate::http::error::HttpResult;
use actix_web::{web, HttpRequest, HttpResponse};
use maas_api::{AliasDeleted, AliasRequest, AliasSet, RolledBack, SplitRequest, SplitSet};

use super::parse_json;
use crate::state::AppState;

fn params(request: &HttpRequest) -> (String, String) {
    let info = request.match_info();
    (info.get("model").unwrap_or_default().to_string(), info.get("alias").unwrap_or_default().to_string())
}

/// `PUT /v1/models/{m}/aliases/{a}` with `{"version": n}`.
pub async fn set_alias(state: web::Data<AppState>, request: HttpRequest, body: web::Bytes) -> HttpResult {
    let (model, alias) = params(&request);
    let body: AliasRequest = parse_json(&body)?;
    state.registry.set_alias(&model, &alias, body.version).await?;
    state.registry_changed().await;
    Ok(HttpResponse::Ok().json(AliasSet { model, alias, version: body.version }))
}

/// `DELETE /v1/models/{m}/aliases/{a}`.
pub async fn delete_alias(state: web::Data<AppState>, request: HttpRequest) -> HttpResult {
    let (model, alias) = params(&request);
    state.registry.delete_alias(&model, &alias).await?;
    state.registry_changed().await;
    Ok(HttpResponse::Ok().json(AliasDeleted { model, deleted_alias: alias }))
}

/// `POST /v1/models/{m}/aliases/{a}/rollback`.
pub async fn rollback(state: web::Data<AppState>, request: HttpRequest) -> HttpResult {
    let (model, alias) = params(&request);
    let (from, to) = state.registry.rollback(&model, &alias).await?;
    state.registry_changed().await;
    Ok(HttpResponse::Ok().json(RolledBack { model, alias, from, version: to }))
}

/// `PUT /v1/models/{m}/split` with `{"split": [{"version": 1, "weight": 90}, ...]}`.
pub async fn set_split(state: web::Data<AppState>, request: HttpRequest, body: web::Bytes) -> HttpResult {
    let (model, _) = params(&request);
    let body: SplitRequest = parse_json(&body)?;
    let split = body.split.iter().map(|s| maas_registry::SplitEntry { version: s.version, weight: s.weight }).collect();
    state.registry.set_split(&model, split).await?;
    state.registry_changed().await;
    Ok(HttpResponse::Ok().json(SplitSet { model, split: body.split }))
}
