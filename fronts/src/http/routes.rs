//! Every HTTP route with the [`Access`] it needs, in one table.
//!
//! [`register`] adds each route as its own resource wrapped in
//! [`authorize`], which admits the caller's bearer token for the route's
//! access before the handler runs; handlers never check tokens. A route
//! cannot be added without an access, and [`ROUTES`] lists them all for
//! the tests and the docs. Routes are tried in table order (inference first:
//! each dynamic route tried costs a pattern match).

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::AUTHORIZATION;
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, Error, HttpMessage};

use super::{admin, console, error, generate, health, infer, model, monitoring, usage, AppState};
use crate::auth::{self, bearer_token, Access};
use maas_tenancy::Caller;

/// One route of the table.
#[cfg_attr(not(test), allow(dead_code, reason = "read by the route and spec tests"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// HTTP method.
    pub method: &'static str,
    /// Path pattern, actix syntax.
    pub path: &'static str,
    /// What the caller must hold.
    pub access: Access,
}

macro_rules! route_table {
    ($($method:ident $path:literal $access:ident => $handler:path;)*) => {
        /// Every route, in the order they are tried.
        #[cfg_attr(not(test), allow(dead_code, reason = "read by the route and spec tests"))]
        pub const ROUTES: &[Route] = &[
            $(Route { method: stringify!($method), path: $path, access: Access::$access },)*
        ];

        /// Adds every route of [`ROUTES`], each behind its access check.
        pub fn register(config: &mut web::ServiceConfig) {
            $(
                config.service(
                    web::resource($path)
                        .guard(method::$method())
                        .route(web::route().to($handler))
                        .wrap(from_fn(|request, next| authorize(Access::$access, request, next))),
                );
            )*
        }
    };
}

route_table! {
    Post "/v2/models/{model}/infer" Infer => infer::infer;
    Post "/v2/models/{model}/versions/{version}/infer" Infer => infer::infer;
    Post "/v1/chat/completions" Infer => generate::chat;
    Post "/v1/completions" Infer => generate::completions;
    Post "/v2/models/{model}/generate" Infer => generate::generate;
    Post "/v2/models/{model}/versions/{version}/generate" Infer => generate::generate;
    Post "/v2/models/{model}/generate_stream" Infer => generate::generate_stream;
    Post "/v2/models/{model}/versions/{version}/generate_stream" Infer => generate::generate_stream;
    Get "/v2/health/live" Open => health::live;
    Get "/v2/health/ready" Open => health::ready;
    Get "/v2" Open => health::server_metadata;
    Get "/v2/models/stats" Read => monitoring::stats;
    Get "/v2/models/{model}/stats" Read => monitoring::stats;
    Get "/v2/models/{model}/versions/{version}/stats" Read => monitoring::stats;
    Get "/console" Open => console::page;
    Get "/console/{asset}" Open => console::asset;
    Get "/v1/whoami" Read => console::whoami;
    Get "/v1/console/stream" View => console::stream::stream;
    Get "/v1/alerts" View => monitoring::alerts;
    Get "/v1/monitor" View => monitoring::live;
    Get "/v1/usage" Read => usage::usage;
    Post "/v1/models/{model}/feedback" Infer => monitoring::feedback;
    Get "/v1/models/{model}/evaluation" View => monitoring::evaluation;
    Get "/v2/models/{model}" Read => model::metadata;
    Get "/v2/models/{model}/versions/{version}" Read => model::metadata;
    Get "/v2/models/{model}/ready" Read => model::ready;
    Get "/v2/models/{model}/versions/{version}/ready" Read => model::ready;
    Get "/v2/models/{model}/config" Read => model::config;
    Get "/v2/models/{model}/versions/{version}/config" Read => model::config;
    Get "/metrics" Metrics => super::metrics;
    Put "/v1/artifacts" Deploy => admin::artifacts::upload;
    Get "/v1/cluster" Admin => admin::cluster::status;
    Post "/v1/cluster/nodes/{node}/drain" Admin => admin::cluster::drain;
    Get "/v1/keys" Admin => admin::keys::list;
    Post "/v1/keys" Admin => admin::keys::create;
    Delete "/v1/keys/{key}" Admin => admin::keys::revoke;
    Get "/v1/tenants" Admin => admin::tenants::list;
    Put "/v1/tenants/{tenant}/limits" Admin => admin::tenants::set_limits;
    Delete "/v1/tenants/{tenant}/limits" Admin => admin::tenants::clear_limits;
    Get "/v1/models" Read => admin::models::list;
    Get "/v1/models/{model}" View => admin::models::describe;
    Post "/v1/models/{model}/versions" Deploy => admin::models::publish;
    Delete "/v1/models/{model}/versions/{version}" Deploy => admin::models::delete_version;
    Put "/v1/models/{model}/aliases/{alias}" Deploy => admin::routing::set_alias;
    Delete "/v1/models/{model}/aliases/{alias}" Deploy => admin::routing::delete_alias;
    Post "/v1/models/{model}/aliases/{alias}/rollback" Deploy => admin::routing::rollback;
    Put "/v1/models/{model}/split" Deploy => admin::routing::set_split;
    Post "/v2/repository/index" View => admin::repository::index;
    Post "/v2/repository/models/{model}/load" Deploy => admin::repository::load;
    Post "/v2/repository/models/{model}/unload" Deploy => admin::repository::unload;
}

/// The guard of each method in the table. A GET route answers HEAD too, with
/// the same status and headers and no body, as health probes and caches
/// expect.
#[allow(non_snake_case, reason = "named as the table names methods")]
mod method {
    use actix_web::guard::{self, Guard};

    pub fn Get() -> impl Guard {
        guard::Any(guard::Get()).or(guard::Head())
    }

    pub fn Post() -> impl Guard {
        guard::Post()
    }

    pub fn Put() -> impl Guard {
        guard::Put()
    }

    pub fn Delete() -> impl Guard {
        guard::Delete()
    }
}

/// Runs the route's handler if the caller's token admits `access` (on the
/// route's `{model}`, when it has one), with the [`Caller`] in the
/// request's extensions; else answers 401 or 403 with the reason.
async fn authorize(
    access: Access,
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let state = request.app_data::<web::Data<AppState>>().expect("the app state is registered; this is a bug");
    let token = request.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer_token);
    match auth::admit(&state.gate, access, token, request.match_info().get("model")) {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            Ok(next.call(request).await?.map_into_left_body())
        }
        Err(refused) => Ok(request.into_response(error::response(&refused)).map_into_right_body()),
    }
}

/// The caller the route's layer admitted; every routed handler has one.
pub fn caller(request: &actix_web::HttpRequest) -> maas_serving::error::ServeResult<Caller> {
    let missing = || maas_serving::ServeError::Internal("the route admitted no caller".into());
    request.extensions().get::<Caller>().cloned().ok_or_else(missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What every route must ask of its caller. A route added to the table
    /// without a line here, or one whose access changes, fails this test;
    /// so does a line whose route was removed.
    const EXPECTED: &[(&str, &str, Access)] = &[
        ("Post", "/v2/models/{model}/infer", Access::Infer),
        ("Post", "/v2/models/{model}/versions/{version}/infer", Access::Infer),
        ("Post", "/v1/chat/completions", Access::Infer),
        ("Post", "/v1/completions", Access::Infer),
        ("Post", "/v2/models/{model}/generate", Access::Infer),
        ("Post", "/v2/models/{model}/versions/{version}/generate", Access::Infer),
        ("Post", "/v2/models/{model}/generate_stream", Access::Infer),
        ("Post", "/v2/models/{model}/versions/{version}/generate_stream", Access::Infer),
        ("Get", "/v2/health/live", Access::Open),
        ("Get", "/v2/health/ready", Access::Open),
        ("Get", "/v2", Access::Open),
        ("Get", "/v2/models/stats", Access::Read),
        ("Get", "/v2/models/{model}/stats", Access::Read),
        ("Get", "/v2/models/{model}/versions/{version}/stats", Access::Read),
        ("Get", "/console", Access::Open),
        ("Get", "/console/{asset}", Access::Open),
        ("Get", "/v1/whoami", Access::Read),
        ("Get", "/v1/console/stream", Access::View),
        ("Get", "/v1/alerts", Access::View),
        ("Get", "/v1/monitor", Access::View),
        ("Get", "/v1/usage", Access::Read),
        ("Post", "/v1/models/{model}/feedback", Access::Infer),
        ("Get", "/v1/models/{model}/evaluation", Access::View),
        ("Get", "/v2/models/{model}", Access::Read),
        ("Get", "/v2/models/{model}/versions/{version}", Access::Read),
        ("Get", "/v2/models/{model}/ready", Access::Read),
        ("Get", "/v2/models/{model}/versions/{version}/ready", Access::Read),
        ("Get", "/v2/models/{model}/config", Access::Read),
        ("Get", "/v2/models/{model}/versions/{version}/config", Access::Read),
        ("Get", "/metrics", Access::Metrics),
        ("Put", "/v1/artifacts", Access::Deploy),
        ("Get", "/v1/cluster", Access::Admin),
        ("Post", "/v1/cluster/nodes/{node}/drain", Access::Admin),
        ("Get", "/v1/keys", Access::Admin),
        ("Post", "/v1/keys", Access::Admin),
        ("Delete", "/v1/keys/{key}", Access::Admin),
        ("Get", "/v1/tenants", Access::Admin),
        ("Put", "/v1/tenants/{tenant}/limits", Access::Admin),
        ("Delete", "/v1/tenants/{tenant}/limits", Access::Admin),
        ("Get", "/v1/models", Access::Read),
        ("Get", "/v1/models/{model}", Access::View),
        ("Post", "/v1/models/{model}/versions", Access::Deploy),
        ("Delete", "/v1/models/{model}/versions/{version}", Access::Deploy),
        ("Put", "/v1/models/{model}/aliases/{alias}", Access::Deploy),
        ("Delete", "/v1/models/{model}/aliases/{alias}", Access::Deploy),
        ("Post", "/v1/models/{model}/aliases/{alias}/rollback", Access::Deploy),
        ("Put", "/v1/models/{model}/split", Access::Deploy),
        ("Post", "/v2/repository/index", Access::View),
        ("Post", "/v2/repository/models/{model}/load", Access::Deploy),
        ("Post", "/v2/repository/models/{model}/unload", Access::Deploy),
    ];

    #[test]
    fn every_route_has_the_expected_access() {
        for route in ROUTES {
            let expected = EXPECTED.iter().find(|(method, path, _)| *method == route.method && *path == route.path);
            let Some((_, _, access)) = expected else {
                panic!("route {} {} has no expected access in this test: add it", route.method, route.path)
            };
            assert_eq!(route.access, *access, "{} {}", route.method, route.path);
        }
        for (method, path, _) in EXPECTED {
            assert!(
                ROUTES.iter().any(|r| r.method == *method && r.path == *path),
                "{method} {path} is expected but not in the route table"
            );
        }
    }

    /// `(method, path)` of every operation in `docs/openapi.yaml`.
    fn documented_operations() -> Vec<(String, String)> {
        let spec = include_str!("../../../docs/openapi.yaml");
        let mut operations = Vec::new();
        let mut in_paths = false;
        let mut path = None;
        for line in spec.lines() {
            if !line.starts_with(' ') {
                in_paths = line == "paths:";
                continue;
            }
            if !in_paths {
                continue;
            }
            if let Some(p) = line.strip_prefix("  /").and_then(|p| p.strip_suffix(':')) {
                path = Some(format!("/{p}"));
            } else if let (Some(path), Some(method)) =
                (&path, line.strip_prefix("    ").and_then(|m| m.strip_suffix(':')))
            {
                if ["get", "put", "post", "delete"].contains(&method) {
                    let mut method = method.to_string();
                    method[..1].make_ascii_uppercase();
                    operations.push((method, path.clone()));
                }
            }
        }
        operations
    }

    /// The management API's spec and the served routes agree: every
    /// documented operation is served, and every management, monitoring or
    /// statistics route (all but the Open Inference Protocol's own) is
    /// documented.
    #[test]
    fn the_openapi_document_matches_the_served_routes() {
        let documented = documented_operations();
        assert!(documented.len() > 20, "the spec parser found only {documented:?}");
        for (method, path) in &documented {
            assert!(
                ROUTES.iter().any(|r| r.method == method && r.path == path),
                "docs/openapi.yaml documents {method} {path}, which is not served"
            );
        }
        for route in ROUTES {
            let management = route.path.starts_with("/v1/")
                || route.path.starts_with("/v2/repository")
                || route.path.ends_with("/stats");
            if management {
                assert!(
                    documented.iter().any(|(m, p)| m == route.method && p == route.path),
                    "{} {} is served but not in docs/openapi.yaml",
                    route.method,
                    route.path
                );
            }
        }
    }

    #[test]
    fn management_and_monitoring_routes_are_never_open() {
        for route in ROUTES {
            if route.path.starts_with("/v1/") || route.path.starts_with("/v2/repository") {
                assert_ne!(route.access, Access::Open, "{} {} is open", route.method, route.path);
            }
        }
    }
}
