//! `GET /v1/cluster`: the nodes this coordinator links to with their live
//! load (asked of each node's host actor over the control plane), whether
//! it leads, and the placement. `POST /v1/cluster/nodes/{n}/drain` asks a
//! node to leave the cluster gracefully.

use crate::http::error::HttpResult;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actix_web::{web, HttpResponse};
use maas_api::{ClusterStatus, Draining, EtcdHealth, NodeLoad};
use serde_json::json;

use crate::state::AppState;
use maas_control::nodes::NodeLink;
use maas_serving::error::ServeError;

/// How long a status query may take before the node is shown without one.
const STATUS_WITHIN: Duration = Duration::from_secs(2);

/// A link and, when its node answers in time, its live status.
async fn describe_link(link: &NodeLink) -> maas_api::NodeLink {
    let (status, status_error) = match link.is_up() {
        false => (None, None),
        true => match tokio::time::timeout(STATUS_WITHIN, link.status()).await {
            Ok(Ok(status)) => (Some(NodeLoad::from(status)), None),
            Ok(Err(error)) => (None, Some(error.to_string())),
            Err(_) => (None, Some(format!("no answer within {STATUS_WITHIN:?}"))),
        },
    };
    maas_api::NodeLink {
        name: link.name.clone(),
        addr: link.addr.to_string(),
        up: link.is_up(),
        outstanding: link.outstanding() as u64,
        status,
        status_error,
    }
}

/// `GET /v1/cluster`.
pub async fn status(state: web::Data<AppState>) -> HttpResult {
    Ok(HttpResponse::Ok().json(cluster_status(&state).await))
}

/// The cluster as this coordinator sees it (also on the console's stream).
pub async fn cluster_status(state: &AppState) -> ClusterStatus {
    let links = state.nodes.list();
    let (links, etcd) = futures_util::future::join(
        futures_util::future::join_all(links.iter().map(|l| describe_link(l))),
        etcd_health(state),
    )
    .await;
    let coordinators = state.coordinators.as_ref().map(|names| names.borrow().clone());
    match &state.cluster {
        Some(cluster) => ClusterStatus {
            mode: "cluster".into(),
            leader: cluster.is_leader.load(Ordering::Acquire),
            links,
            members: Some(cluster.nodes.borrow().values().map(|m| json!(m)).collect()),
            placement: Some(json!(*cluster.placement.borrow())),
            coordinators,
            etcd,
        },
        None => ClusterStatus {
            mode: "static".into(),
            leader: false,
            links,
            members: None,
            placement: None,
            coordinators,
            etcd,
        },
    }
}

/// Whether etcd answers a status call in time, with its version and leader.
async fn etcd_health(state: &AppState) -> Option<EtcdHealth> {
    let mut client = state.etcd.clone()?;
    Some(match tokio::time::timeout(STATUS_WITHIN, client.status()).await {
        Ok(Ok(status)) => EtcdHealth {
            healthy: true,
            detail: format!(
                "etcd {}, leader member {:x}, {} bytes",
                status.version(),
                status.leader(),
                status.db_size()
            ),
        },
        Ok(Err(error)) => EtcdHealth { healthy: false, detail: error.to_string() },
        Err(_) => EtcdHealth { healthy: false, detail: format!("no answer within {STATUS_WITHIN:?}") },
    })
}

/// Asks a node to drain: it deregisters (so its replicas are placed
/// elsewhere), finishes what it has in flight and exits.
pub async fn drain(state: web::Data<AppState>, node: web::Path<String>) -> HttpResult {
    let link = state
        .nodes
        .get(&node)
        .ok_or_else(|| ServeError::RouteNotFound(format!("no node '{node}' is linked to this coordinator")))?;
    match link.drain().await {
        Ok(Ok(())) => Ok(HttpResponse::Accepted().json(Draining { node: node.into_inner(), draining: true })),
        Ok(Err(error)) => Err(ServeError::Internal(format!("node '{node}' refused to drain: {error}")).into()),
        Err(error) => Err(ServeError::Unavailable(format!("could not reach node '{node}': {error}")).into()),
    }
}
