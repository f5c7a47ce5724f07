//! Keeps a node link connected.

use std::sync::Arc;
use std::time::Duration;

use maas_protocol::{NodeRequest, NodeResponse};
use tokio::sync::Notify;

use super::NodeLink;
use crate::metrics;
use crate::models::ModelTable;

const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(2);

/// Starts the task that connects `link`, registers its models and
/// reconnects after every loss.
pub fn spawn_supervisor(
    link: Arc<NodeLink>,
    endpoint: quinn::Endpoint,
    table: Arc<ModelTable>,
    link_up: Arc<Notify>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut retry = FIRST_RETRY;
        loop {
            match session(&link, &endpoint, &table, &link_up).await {
                Ok(()) => retry = FIRST_RETRY,
                Err(error) => tracing::debug!(node = %link.name, addr = %link.addr, %error, "node link attempt failed"),
            }
            tokio::time::sleep(retry).await;
            retry = (retry * 2).min(LAST_RETRY);
        }
    })
}

/// One connection's life: connect, list models, serve until it closes.
async fn session(
    link: &Arc<NodeLink>,
    endpoint: &quinn::Endpoint,
    table: &ModelTable,
    link_up: &Notify,
) -> anyhow::Result<()> {
    let connection = endpoint.connect(link.addr, &link.name)?.await?;
    link.set_connection(Some(connection.clone()));
    // A resolved connect does not prove the node accepted our certificate;
    // the first answered call does.
    let models = match link.call(&NodeRequest::ListModels).await {
        Ok(NodeResponse::Models(models)) => models,
        Ok(other) => {
            link.set_connection(None);
            anyhow::bail!("node answered ListModels with {other:?}");
        }
        Err(error) => {
            link.set_connection(None);
            return Err(error.into());
        }
    };
    table.attach(link, &models);
    link.set_up(true);
    metrics::node_link_changed(&link.name, true);
    tracing::info!(node = %link.name, addr = %link.addr, models = models.len(), "node link up");
    link_up.notify_one();
    let reason = connection.closed().await;
    link.set_up(false);
    link.set_connection(None);
    metrics::node_link_changed(&link.name, false);
    tracing::warn!(node = %link.name, addr = %link.addr, %reason, "node link down");
    Ok(())
}
