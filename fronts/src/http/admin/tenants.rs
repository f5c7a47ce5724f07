//! `/v1/tenants`: the limits every key of a tenant shares, listed, set and
//! cleared. Admin only. Every coordinator applies a change from its next
//! change notice on.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use maas_api::{KeyLimits, TenantInfo, TenantList};
use maas_serving::error::ServeError;
use maas_tenancy::Limits;

use super::keys::{limits_of, shown_limits};
use super::parse_json;
use crate::http::error::HttpResult;
use crate::state::AppState;

/// Largest limits body.
const MAX_BODY: usize = 16 * 1024;

/// `GET /v1/tenants`: every tenant with a key or limits.
pub async fn list(state: web::Data<AppState>) -> HttpResponse {
    let keys = state.gate.keys();
    let mut tenants: BTreeMap<String, TenantInfo> = BTreeMap::new();
    for (tenant, limits) in keys.all_tenant_limits() {
        tenants.insert(tenant.clone(), TenantInfo { tenant, limits: shown_limits(&limits), keys: 0 });
    }
    for key in keys.list() {
        let entry = tenants.entry(key.tenant.clone()).or_insert_with(|| TenantInfo {
            tenant: key.tenant.clone(),
            limits: shown_limits(&Limits::default()),
            keys: 0,
        });
        entry.keys += 1;
    }
    HttpResponse::Ok().json(TenantList { tenants: tenants.into_values().collect() })
}

/// `PUT /v1/tenants/{tenant}/limits`: the tenant's new limits, replacing
/// any it had.
pub async fn set_limits(state: web::Data<AppState>, request: HttpRequest, body: web::Bytes) -> HttpResult {
    if body.len() > MAX_BODY {
        return Err(ServeError::PayloadTooLarge { size: body.len(), limit: MAX_BODY }.into());
    }
    let tenant = tenant_of(&request);
    let limits = limits_of(parse_json::<KeyLimits>(&body)?);
    limits.check().map_err(ServeError::InvalidRequest)?;
    maas_tenancy::check_tenant(&tenant).map_err(ServeError::InvalidRequest)?;
    let stored = if limits.is_unlimited() { None } else { Some(limits.clone()) };
    state
        .gate
        .keys()
        .set_tenant_limits(&tenant, stored)
        .await
        .map_err(|e| ServeError::Internal(format!("storing the tenant's limits: {e:#}")))?;
    tracing::info!(%tenant, ?limits, "set a tenant's limits");
    Ok(HttpResponse::Ok().json(info(&state, tenant, &limits)))
}

/// `DELETE /v1/tenants/{tenant}/limits`: the tenant is unlimited again
/// (its keys keep their own limits).
pub async fn clear_limits(state: web::Data<AppState>, request: HttpRequest) -> HttpResult {
    let tenant = tenant_of(&request);
    maas_tenancy::check_tenant(&tenant).map_err(ServeError::InvalidRequest)?;
    let existed = state
        .gate
        .keys()
        .set_tenant_limits(&tenant, None)
        .await
        .map_err(|e| ServeError::Internal(format!("clearing the tenant's limits: {e:#}")))?;
    if !existed {
        return Err(ServeError::RouteNotFound(format!("tenant '{tenant}' has no limits")).into());
    }
    tracing::info!(%tenant, "cleared a tenant's limits");
    Ok(HttpResponse::Ok().json(info(&state, tenant, &Limits::default())))
}

fn tenant_of(request: &HttpRequest) -> String {
    request.match_info().get("tenant").unwrap_or_default().to_string()
}

fn info(state: &AppState, tenant: String, limits: &Limits) -> TenantInfo {
    let keys = state.gate.keys().list().iter().filter(|key| key.tenant == tenant).count();
    TenantInfo { tenant, limits: shown_limits(limits), keys: u32::try_from(keys).unwrap_or(u32::MAX) }
}
