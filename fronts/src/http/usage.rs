//! `GET /v1/usage?from=&to=&tenant=`: use per tenant × model version.
//!
//! Times are seconds since the epoch; the default is the last hour. An
//! admin sees every tenant (or the one it names); any other key sees its
//! own tenant only.

use actix_web::{web, HttpRequest, HttpResponse};
use maas_api::{UsageLine, UsageReport};
use maas_tenancy::usage::now_unix;
use maas_tenancy::{Caller, Role};
use serde::Deserialize;

use super::routes::caller;
use crate::http::error::HttpResult;
use crate::state::AppState;
use maas_serving::error::ServeError;

/// The longest range one call reads.
const MAX_RANGE_SECONDS: u64 = 31 * 24 * 3600;

/// The query string.
#[derive(Deserialize)]
pub struct UsageQuery {
    from: Option<u64>,
    to: Option<u64>,
    tenant: Option<String>,
}

/// `GET /v1/usage`.
pub async fn usage(state: web::Data<AppState>, request: HttpRequest) -> HttpResult {
    let caller = caller(&request)?;
    let query = web::Query::<UsageQuery>::from_query(request.query_string())
        .map_err(|e| ServeError::InvalidRequest(format!("invalid usage query: {e}")))?
        .into_inner();
    let now = now_unix();
    let to = query.to.unwrap_or(now + 1);
    let from = query.from.unwrap_or(to.saturating_sub(3600));
    if from >= to || to - from > MAX_RANGE_SECONDS {
        return Err(ServeError::InvalidRequest(format!(
            "the range [{from}, {to}) is empty or longer than {MAX_RANGE_SECONDS} seconds"
        ))
        .into());
    }
    let tenant = tenant_filter(&caller, query.tenant)?;
    let meter = state
        .inference
        .usage()
        .ok_or_else(|| ServeError::Unavailable("usage is not metered on this coordinator".into()))?;
    let entries = meter
        .query(from, to, tenant.as_deref())
        .await
        .map_err(|e| ServeError::Unavailable(format!("reading usage: {e:#}")))?;
    let usage = entries
        .into_iter()
        .map(|entry| UsageLine {
            tenant: entry.key.tenant,
            model: entry.key.model,
            version: entry.key.version,
            requests: entry.counts.requests,
            rows: entry.counts.rows,
            errors: entry.counts.errors,
            bytes_in: entry.counts.bytes_in,
            bytes_out: entry.counts.bytes_out,
            compute_us: entry.counts.compute_us,
            prompt_tokens: entry.counts.prompt_tokens,
            completion_tokens: entry.counts.completion_tokens,
        })
        .collect();
    Ok(HttpResponse::Ok().json(UsageReport { from, to, usage }))
}

/// The tenant whose use `caller` may read: any (or the one asked) for an
/// admin, its own for every other key.
fn tenant_filter(caller: &Caller, asked: Option<String>) -> Result<Option<String>, ServeError> {
    if caller.role() == Role::Admin {
        return Ok(asked);
    }
    let own = caller.tenant();
    match asked {
        Some(other) if other != own => {
            Err(ServeError::Forbidden(format!("this key may read the usage of tenant '{own}' only")))
        }
        _ => Ok(Some(own.to_string())),
    }
}
