//! The node's Prometheus endpoint: `GET /metrics`, on loopback by default;
//! beyond loopback it asks scrapers for a bearer token, since it names every
//! model the node holds and its load.

use std::net::SocketAddr;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use anyhow::{bail, Context};
use maas_process::{bearer_token, Secret};
use metrics_exporter_prometheus::PrometheusHandle;

/// Serves `/metrics` on `addr` until the process ends, to callers with
/// `token` when one is set. An address beyond loopback without a token is
/// refused.
pub fn serve(
    addr: SocketAddr,
    handle: PrometheusHandle,
    token: Option<Secret>,
) -> anyhow::Result<actix_web::dev::Server> {
    if !addr.ip().is_loopback() && token.is_none() {
        bail!("the metrics endpoint on {addr} is reachable beyond this host: set --metrics-token (MAAS_NODE_METRICS_TOKEN) or bind it to loopback");
    }
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    let server = HttpServer::new(move || {
        let handle = handle.clone();
        let token = token.clone();
        App::new().route(
            "/metrics",
            web::get().to(move |request: HttpRequest| {
                let allowed =
                    token.as_ref().is_none_or(|token| presented_token(&request).is_some_and(|t| token.matches(t)));
                if allowed {
                    crate::metrics::record_process_memory();
                }
                let response = match allowed {
                    true => HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(handle.render()),
                    false => HttpResponse::Unauthorized()
                        .insert_header(("WWW-Authenticate", "Bearer"))
                        .body("/metrics needs the node's metrics token"),
                };
                async move { response }
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .bind(addr)
    .with_context(|| format!("binding the metrics endpoint on {addr}"))?
    .run();
    Ok(server)
}

fn presented_token(request: &HttpRequest) -> Option<&str> {
    request.headers().get("authorization")?.to_str().ok().and_then(bearer_token)
}
