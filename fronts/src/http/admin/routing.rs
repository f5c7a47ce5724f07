//! Aliases, rollback and traffic splits. Moving an alias or the split to a
//! version waits until that version is ready ([`crate::rollout`]).

use crate::http::error::HttpResult;
use actix_web::{web, HttpRequest, HttpResponse};
use maas_api::{AliasDeleted, AliasRequest, AliasSet, RolledBack, SplitRequest, SplitSet};

use super::parse_json;
use crate::rollout::move_when_ready;
use crate::state::AppState;

fn params(request: &HttpRequest) -> (String, String) {
    let info = request.match_info();
    (info.get("model").unwrap_or_default().to_string(), info.get("alias").unwrap_or_default().to_string())
}

/// `PUT /v1/models/{m}/aliases/{a}` with `{"version": n}`.
pub async fn set_alias(state: web::Data<AppState>, request: HttpRequest, body: web::Bytes) -> HttpResult {
    let (model, alias) = params(&request);
    let body: AliasRequest = parse_json(&body)?;
    let version = body.version;
    let (name, alias_name) = (model.clone(), alias.clone());
    move_when_ready(state, model.clone(), vec![version], move |state| async move {
        state.registry.set_alias(&name, &alias_name, version).await
    })
    .await?;
    Ok(HttpResponse::Ok().json(AliasSet { model, alias, version }))
}

/// `DELETE /v1/models/{m}/aliases/{a}`.
pub async fn delete_alias(state: web::Data<AppState>, request: HttpRequest) -> HttpResult {
    let (model, alias) = params(&request);
    state.registry.delete_alias(&model, &alias).await?;
    state.model_changed(&model).await;
    Ok(HttpResponse::Ok().json(AliasDeleted { model, deleted_alias: alias }))
}

/// `POST /v1/models/{m}/aliases/{a}/rollback`.
pub async fn rollback(state: web::Data<AppState>, request: HttpRequest) -> HttpResult {
    let (model, alias) = params(&request);
    let record = state.registry.get(&model).await?.record;
    let previous = record.aliases.get(&alias).and_then(|a| a.history.last().copied());
    let (name, alias_name) = (model.clone(), alias.clone());
    let rollback = move |state: web::Data<AppState>| async move { state.registry.rollback(&name, &alias_name).await };
    // With no previous target the registry's own error answers.
    let (from, to) = move_when_ready(state, model.clone(), previous.into_iter().collect(), rollback).await?;
    Ok(HttpResponse::Ok().json(RolledBack { model, alias, from, version: to }))
}

/// `PUT /v1/models/{m}/split` with `{"split": [{"version": 1, "weight": 90}, ...]}`.
pub async fn set_split(state: web::Data<AppState>, request: HttpRequest, body: web::Bytes) -> HttpResult {
    let (model, _) = params(&request);
    let body: SplitRequest = parse_json(&body)?;
    let split: Vec<_> =
        body.split.iter().map(|s| maas_registry::SplitEntry { version: s.version, weight: s.weight }).collect();
    let versions = split.iter().map(|s| s.version).collect();
    let name = model.clone();
    move_when_ready(state, model.clone(), versions, move |state| async move {
        state.registry.set_split(&name, split).await
    })
    .await?;
    Ok(HttpResponse::Ok().json(SplitSet { model, split: body.split }))
}
