//! Node membership in etcd.
//!
//! A node announces itself under `<prefix>nodes/<name>` with a lease of a
//! few seconds that it keeps alive; if the node dies or is cut off, the
//! lease lapses and the key disappears. When the lease is lost the node
//! registers again, so a node that comes back from a partition rejoins
//! without a restart. Coordinators watch the prefix.

use std::collections::BTreeMap;
use std::time::Duration;

use etcd_client::{Client, GetOptions, PutOptions, WatchOptions};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// What a node offers, as it registers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Its name, the one in its certificate.
    pub name: String,
    /// QUIC address coordinators dial.
    pub quic_addr: String,
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// Memory offered to models, in bytes.
    pub memory_bytes: u64,
}

/// The key a node registers under.
pub fn node_key(prefix: &str, name: &str) -> String {
    format!("{prefix}nodes/{name}")
}

/// Keeps `info` registered under a lease of `ttl` until the process ends.
pub async fn keep_registered(client: Client, prefix: String, info: NodeInfo, ttl: Duration) {
    let value = serde_json::to_vec(&info).expect("NodeInfo serializes");
    keep_key(client, node_key(&prefix, &info.name), value, ttl).await
}

/// Keeps `key` set to `value` under a lease of `ttl` until the process
/// ends, setting it again whenever the lease is lost.
pub(crate) async fn keep_key(mut client: Client, key: String, value: Vec<u8>, ttl: Duration) {
    loop {
        match register_once(&mut client, &key, &value, ttl).await {
            Ok(()) => tracing::warn!(%key, "membership lease lost; registering again"),
            Err(error) => tracing::warn!(%key, %error, "could not register in etcd; retrying"),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Registers once and keeps the lease alive; returns when the lease is lost.
///
/// A keep-alive stream that breaks (say its etcd member died) is reopened
/// on the same lease, through whichever member answers, for as long as the
/// lease can still be alive; only then is the registration started over.
async fn register_once(client: &mut Client, key: &str, value: &[u8], ttl: Duration) -> anyhow::Result<()> {
    let lease = client.lease_grant(ttl.as_secs().max(1) as i64, None).await?.id();
    client.put(key, value.to_vec(), Some(PutOptions::new().with_lease(lease))).await?;
    tracing::info!(key, lease, "registered in etcd");
    let interval = ttl / 3;
    let mut last_renewal = std::time::Instant::now();
    while last_renewal.elapsed() < ttl {
        let (mut keeper, mut responses) = match client.lease_keep_alive(lease).await {
            Ok(stream) => stream,
            Err(error) => {
                tracing::debug!(%error, "could not open a keep-alive stream; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        loop {
            if keeper.keep_alive().await.is_err() {
                break;
            }
            match tokio::time::timeout(interval, responses.message()).await {
                Ok(Ok(Some(response))) if response.ttl() > 0 => last_renewal = std::time::Instant::now(),
                Ok(Ok(Some(_))) => return Ok(()),
                _ => break,
            }
            tokio::time::sleep(interval).await;
        }
    }
    Ok(())
}

/// The registered nodes, kept current by a watch on the prefix.
pub async fn watch_nodes(client: Client, prefix: String) -> watch::Receiver<BTreeMap<String, NodeInfo>> {
    let (sender, receiver) = watch::channel(BTreeMap::new());
    tokio::spawn(async move {
        let mut client = client;
        let nodes_prefix = format!("{prefix}nodes/");
        loop {
            if let Err(error) = follow(&mut client, &nodes_prefix, &sender).await {
                tracing::warn!(%error, "node watch failed; restarting it");
            }
            if sender.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    receiver
}

async fn follow(
    client: &mut Client,
    prefix: &str,
    sender: &watch::Sender<BTreeMap<String, NodeInfo>>,
) -> anyhow::Result<()> {
    let mut stream = client.watch(prefix, Some(WatchOptions::new().with_prefix())).await?;
    loop {
        // Re-list on every change: membership is small and this can never drift.
        let response = client.get(prefix, Some(GetOptions::new().with_prefix())).await?;
        let mut nodes = BTreeMap::new();
        for kv in response.kvs() {
            match serde_json::from_slice::<NodeInfo>(kv.value()) {
                Ok(info) => {
                    nodes.insert(info.name.clone(), info);
                }
                Err(error) => {
                    tracing::warn!(key = %String::from_utf8_lossy(kv.key()), %error, "unreadable node record")
                }
            }
        }
        sender.send_if_modified(|current| {
            let changed = *current != nodes;
            *current = nodes;
            changed
        });
        match stream.message().await? {
            Some(_) => {}
            None => anyhow::bail!("the watch ended"),
        }
    }
}
