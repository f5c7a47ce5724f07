//! The web console: a page, its script and its style, embedded in the
//! binary and served by every coordinator at `/console` (open: they hold
//! no data), and the two routes it reads besides the management API:
//! `GET /v1/whoami` (what the signed-in key may do) and
//! `GET /v1/console/stream` ([`stream`]: one tick of live data a second).
//!
//! The page keeps the key in the tab's session storage and sends it as a
//! bearer token on every call; what a key may see and do is decided by the
//! API, the page only leaves out what would be refused.

pub mod stream;

use actix_web::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use actix_web::{web, HttpRequest, HttpResponse};
use maas_api::Whoami;
use maas_tenancy::{Action, Caller, Role};

use super::error::HttpResult;
use super::routes::caller;

/// The page, script and style, by file name.
const ASSETS: &[(&str, &str, &str)] = &[
    ("index.html", "text/html; charset=utf-8", include_str!("../../../console/index.html")),
    ("console.js", "text/javascript; charset=utf-8", include_str!("../../../console/console.js")),
    ("charts.js", "text/javascript; charset=utf-8", include_str!("../../../console/charts.js")),
    ("console.css", "text/css; charset=utf-8", include_str!("../../../console/console.css")),
];

/// Only this origin's script and style; no frames, no inline code.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                      connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

fn asset_response(name: &str) -> HttpResponse {
    match ASSETS.iter().find(|(file, _, _)| *file == name) {
        Some((_, content_type, body)) => HttpResponse::Ok()
            .content_type(*content_type)
            .insert_header((CONTENT_SECURITY_POLICY, POLICY))
            .insert_header((X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .insert_header((X_FRAME_OPTIONS, "DENY"))
            .insert_header((CACHE_CONTROL, "no-cache"))
            .insert_header((REFERRER_POLICY, "no-referrer"))
            .body(*body),
        None => HttpResponse::NotFound().json(serde_json::json!({"error": "no such console file"})),
    }
}

/// `GET /console`: the page.
pub async fn page() -> HttpResponse {
    asset_response("index.html")
}

/// `GET /console/{asset}`: its script and style.
pub async fn asset(name: web::Path<String>) -> HttpResponse {
    asset_response(&name)
}

/// What `caller` is and may do.
pub fn whoami_of(caller: &Caller) -> Whoami {
    // An admin key reaches every model, whatever its scope says.
    let scope = match caller.key() {
        Some(key) if key.role != Role::Admin && !key.scope.is_everything() => key.scope.patterns().to_vec(),
        _ => vec!["*".to_string()],
    };
    Whoami {
        tenant: caller.tenant().to_string(),
        role: caller.role().to_string(),
        scope,
        may_deploy: caller.permit(Action::Deploy, None).is_ok(),
        may_administer: caller.permit(Action::Administer, None).is_ok(),
    }
}

/// `GET /v1/whoami`.
pub async fn whoami(request: HttpRequest) -> HttpResult {
    Ok(HttpResponse::Ok().json(whoami_of(&caller(&request)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_the_page_names_is_served() {
        let page = ASSETS[0].2;
        for (file, _, _) in &ASSETS[1..] {
            assert!(page.contains(&format!("/console/{file}")), "index.html does not load {file}");
        }
        assert_eq!(asset_response("nothing.js").status(), 404);
        let served = asset_response("console.js");
        assert_eq!(served.headers().get(CONTENT_SECURITY_POLICY).unwrap(), POLICY);
    }
}
