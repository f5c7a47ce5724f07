//! Registering the node in etcd, so coordinators find it and place replicas on it.

use std::time::Duration;

use maas_registry::etcd_client::Client;
use tch::Device;
use tokio::task::JoinHandle;

use crate::config::NodeConfig;
use crate::server::QuicServer;

/// The node's live registration.
pub struct Registration {
    client: Client,
    key: String,
    task: JoinHandle<()>,
}

/// Registers the node under a kept-alive lease.
pub async fn register(config: &NodeConfig, quic: &QuicServer, device: Device) -> anyhow::Result<Registration> {
    let client = config.etcd.connect().await?;
    let info = maas_cluster::NodeInfo {
        name: config.name.clone(),
        quic_addr: config.advertise_addr.unwrap_or(quic.local_addr()?).to_string(),
        device: format!("{device:?}").to_lowercase(),
        memory_bytes: config.memory_bytes,
    };
    let ttl = Duration::from_secs(config.lease_ttl_seconds);
    let key = maas_cluster::node_key(&config.etcd.prefix, &config.name);
    let task = tokio::spawn(maas_cluster::keep_registered(client.clone(), config.etcd.prefix.clone(), info, ttl));
    Ok(Registration { client, key, task })
}

impl Registration {
    /// Stops renewing and removes the node from the cluster now.
    pub async fn leave(mut self) {
        self.task.abort();
        if let Err(error) = self.client.delete(self.key.clone(), None).await {
            tracing::warn!(%error, "could not deregister; the lease will lapse instead");
        }
    }
}
