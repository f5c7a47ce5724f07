//! `/v1/keys`: tenants' API keys, created (the key shown once), listed
//! without secrets, revoked. Admin only.

use actix_web::{web, HttpRequest, HttpResponse};
use maas_api::{KeyCreate, KeyInfo, KeyIssued, KeyLimits, KeyList, KeyRevoked};
use maas_tenancy::{KeyRecord, KeySpec, Limits, Role, Scope};

use super::parse_json;
use crate::http::error::HttpResult;
use crate::state::AppState;
use maas_serving::error::ServeError;

/// Largest key creation body.
const MAX_BODY: usize = 64 * 1024;

/// `GET /v1/keys`.
pub async fn list(state: web::Data<AppState>) -> HttpResponse {
    let keys = state.gate.keys().list().iter().map(|record| info(record)).collect();
    HttpResponse::Ok().json(KeyList { keys })
}

/// `POST /v1/keys`: `{tenant, role, scope, limits?, priority?, description?}`.
pub async fn create(state: web::Data<AppState>, body: web::Bytes) -> HttpResult {
    if body.len() > MAX_BODY {
        return Err(ServeError::PayloadTooLarge { size: body.len(), limit: MAX_BODY }.into());
    }
    let request: KeyCreate = parse_json(&body)?;
    let invalid = ServeError::InvalidRequest;
    let spec = KeySpec {
        role: request.role.parse::<Role>().map_err(invalid)?,
        scope: Scope::new(request.scope).map_err(invalid)?,
        limits: request.limits.map(limits_of).unwrap_or_default(),
        priority: request.priority,
        description: request.description.unwrap_or_default(),
        tenant: request.tenant,
    };
    let issued = match maas_tenancy::issue(spec) {
        Ok(issued) => issued,
        Err(message) => return Err(invalid(message).into()),
    };
    state
        .gate
        .keys()
        .store_issued(&issued)
        .await
        .map_err(|e| ServeError::Internal(format!("storing the key: {e:#}")))?;
    tracing::info!(id = %issued.record.id, tenant = %issued.record.tenant, role = %issued.record.role, "created a key");
    Ok(HttpResponse::Created().json(KeyIssued { key: issued.key, info: info(&issued.record) }))
}

/// `DELETE /v1/keys/{key}`: revokes a key by id; every coordinator refuses
/// it from the next change notice on.
pub async fn revoke(state: web::Data<AppState>, request: HttpRequest) -> HttpResult {
    let id = request.match_info().get("key").unwrap_or_default().to_string();
    let existed =
        state.gate.keys().revoke(&id).await.map_err(|e| ServeError::Internal(format!("revoking the key: {e:#}")))?;
    if !existed {
        return Err(ServeError::RouteNotFound(format!("no key with id '{id}'")).into());
    }
    tracing::info!(%id, "revoked a key");
    Ok(HttpResponse::Ok().json(KeyRevoked { id }))
}

/// Limits as the API sends them, as the tenancy crate keeps them.
pub(super) fn limits_of(limits: KeyLimits) -> Limits {
    Limits {
        requests_per_second: limits.requests_per_second,
        requests_burst: limits.requests_burst,
        rows_per_second: limits.rows_per_second,
        rows_burst: limits.rows_burst,
        tokens_per_minute: limits.tokens_per_minute,
        tokens_burst: limits.tokens_burst,
        max_concurrent: limits.max_concurrent,
        max_request_bytes: limits.max_request_bytes,
    }
}

/// A key's limits as the API shows them (the inverse of [`limits_of`]).
pub(super) fn shown_limits(limits: &Limits) -> KeyLimits {
    KeyLimits {
        requests_per_second: limits.requests_per_second,
        requests_burst: limits.requests_burst,
        rows_per_second: limits.rows_per_second,
        rows_burst: limits.rows_burst,
        tokens_per_minute: limits.tokens_per_minute,
        tokens_burst: limits.tokens_burst,
        max_concurrent: limits.max_concurrent,
        max_request_bytes: limits.max_request_bytes,
    }
}

fn info(record: &KeyRecord) -> KeyInfo {
    KeyInfo {
        id: record.id.clone(),
        tenant: record.tenant.clone(),
        role: record.role.to_string(),
        scope: record.scope.patterns().to_vec(),
        limits: shown_limits(&record.limits),
        priority: record.priority,
        description: record.description.clone(),
        created_unix: record.created_unix,
    }
}
