//! `GET /v1/cluster`: the nodes this coordinator links to, whether it leads,
//! and the placement.

use std::sync::atomic::Ordering;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::models::respond;
use crate::http::AppState;

/// The cluster as this coordinator sees it.
pub async fn status(state: web::Data<AppState>, request: HttpRequest) -> HttpResponse {
    respond(async {
        state.tokens.require_admin(&request)?;
        let links: Vec<_> = state
            .nodes
            .list()
            .iter()
            .map(|l| json!({"name": l.name, "addr": l.addr.to_string(), "up": l.is_up(), "outstanding": l.outstanding()}))
            .collect();
        let body = match &state.cluster {
            Some(cluster) => json!({
                "mode": "cluster",
                "leader": cluster.is_leader.load(Ordering::Acquire),
                "links": links,
                "members": cluster.nodes.borrow().values().cloned().collect::<Vec<_>>(),
                "placement": *cluster.placement.borrow(),
            }),
            None => json!({"mode": "static", "leader": false, "links": links}),
        };
        Ok(HttpResponse::Ok().json(body))
    }
    .await)
}
