//! Keeps a node link connected.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::control::ControlPlane;
use super::NodeLink;
use crate::metrics;
use maas_serving::models::ModelTable;
use maas_serving::Replica;

const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(2);

/// Starts the task that connects `link`, registers its models and
/// reconnects after every loss.
pub fn spawn_supervisor(
    link: Arc<NodeLink>,
    endpoint: quinn::Endpoint,
    control: Arc<ControlPlane>,
    table: Arc<ModelTable>,
    link_up: Arc<Notify>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut retry = FIRST_RETRY;
        loop {
            match session(&link, &endpoint, &control, &table, &link_up).await {
                Ok(()) => retry = FIRST_RETRY,
                Err(error) => tracing::debug!(node = %link.name, addr = %link.addr, %error, "node link attempt failed"),
            }
            tokio::time::sleep(retry).await;
            retry = (retry * 2).min(LAST_RETRY);
        }
    })
}

/// One connection's life: connect, open the control session, list models,
/// serve until the connection or the session ends.
async fn session(
    link: &Arc<NodeLink>,
    endpoint: &quinn::Endpoint,
    control: &ControlPlane,
    table: &ModelTable,
    link_up: &Notify,
) -> anyhow::Result<()> {
    let connection = endpoint.connect(link.addr, &link.name)?.await?;
    // A resolved connect does not prove the node accepted our certificate;
    // a control session that shows the node's host actor does.
    let mut control_session = match control.open(&link.name, &connection).await {
        Ok(session) => session,
        Err(error) => {
            connection.close(quinn::VarInt::from_u32(0), b"no control session");
            return Err(error);
        }
    };
    link.set_connection(Some(connection.clone()));
    link.set_host(Some(control_session.host.clone()));
    let models = match link.list_models().await {
        Ok(models) => models,
        Err(error) => {
            link.set_host(None);
            link.set_connection(None);
            connection.close(quinn::VarInt::from_u32(0), b"ListModels failed");
            return Err(error.into());
        }
    };
    let replica: Arc<dyn Replica> = link.clone();
    table.attach(&replica, &models);
    link.set_up(true);
    metrics::node_link_changed(&link.name, true);
    tracing::info!(node = %link.name, addr = %link.addr, models = models.len(), "node link up");
    link_up.notify_one();
    let reason = tokio::select! {
        reason = connection.closed() => reason.to_string(),
        _ = control_session.ended() => {
            connection.close(quinn::VarInt::from_u32(0), b"control session ended");
            "the control session ended".to_string()
        }
    };
    link.set_up(false);
    link.set_host(None);
    link.set_connection(None);
    metrics::node_link_changed(&link.name, false);
    tracing::warn!(node = %link.name, addr = %link.addr, %reason, "node link down");
    Ok(())
}
