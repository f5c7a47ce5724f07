//! `GET /v1/cluster`: the nodes this coordinator links to with their live
//! load (asked of each node's host actor over the control plane), whether
//! it leads, and the placement. `POST /v1/cluster/nodes/{n}/drain` asks a
//! node to leave the cluster gracefully.

use crate::http::error::HttpResult;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actix_web::{web, HttpResponse};
use maas_protocol::{NodeRequest, NodeResponse};
use serde_json::{json, Value};

use crate::state::AppState;
use maas_control::nodes::NodeLink;
use maas_serving::error::ServeError;

/// How long a status query may take before the node is shown without one.
const STATUS_WITHIN: Duration = Duration::from_secs(2);

/// A link and, when its node answers in time, its live status.
async fn describe_link(link: &NodeLink) -> Value {
    let status = match link.is_up() {
        false => Value::Null,
        true => match tokio::time::timeout(STATUS_WITHIN, link.command(&NodeRequest::Status)).await {
            Ok(Ok(NodeResponse::Status(status))) => json!(status),
            Ok(Ok(other)) => json!({"error": format!("unexpected answer {other:?}")}),
            Ok(Err(error)) => json!({"error": error.to_string()}),
            Err(_) => json!({"error": format!("no answer within {STATUS_WITHIN:?}")}),
        },
    };
    json!({
        "name": link.name,
        "addr": link.addr.to_string(),
        "up": link.is_up(),
        "outstanding": link.outstanding(),
        "status": status,
    })
}

/// The cluster as this coordinator sees it.
pub async fn status(state: web::Data<AppState>) -> HttpResult {
    let links = state.nodes.list();
    let links: Vec<Value> = futures_util::future::join_all(links.iter().map(|l| describe_link(l))).await;
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

/// Asks a node to drain: it deregisters (so its replicas are placed
/// elsewhere), finishes what it has in flight and exits.
pub async fn drain(state: web::Data<AppState>, node: web::Path<String>) -> HttpResult {
    let link = state
        .nodes
        .get(&node)
        .ok_or_else(|| ServeError::RouteNotFound(format!("no node '{node}' is linked to this coordinator")))?;
    match link.command(&NodeRequest::Drain).await {
        Ok(NodeResponse::Done) => Ok(HttpResponse::Accepted().json(json!({"node": *node, "draining": true}))),
        Ok(other) => Err(ServeError::Internal(format!("node '{node}' answered a drain with {other:?}")).into()),
        Err(error) => Err(ServeError::Unavailable(format!("could not reach node '{node}': {error}")).into()),
    }
}
