//! Coordinator membership in etcd: each coordinator keeps
//! `<prefix>coordinators/<name>` alive under a lease, and every coordinator
//! follows how many are alive. Limits that hold for the whole cluster are
//! split by that count.

use std::time::Duration;

use etcd_client::{Client, GetOptions, WatchOptions};
use tokio::sync::watch;

use crate::membership::keep_key;

fn prefix_of(prefix: &str) -> String {
    format!("{prefix}coordinators/")
}

/// Keeps coordinator `name` registered until the process ends.
pub async fn keep_coordinator_registered(client: Client, prefix: String, name: String, ttl: Duration) {
    keep_key(client, format!("{}{name}", prefix_of(&prefix)), name.into_bytes(), ttl).await
}

/// The number of live coordinators (at least 1), kept current by a watch.
pub fn watch_coordinators(client: Client, prefix: String) -> watch::Receiver<usize> {
    let (sender, receiver) = watch::channel(1);
    tokio::spawn(async move {
        let mut client = client;
        let prefix = prefix_of(&prefix);
        loop {
            if let Err(error) = follow(&mut client, &prefix, &sender).await {
                tracing::warn!(%error, "coordinator watch failed; restarting it");
            }
            if sender.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    receiver
}

async fn follow(client: &mut Client, prefix: &str, sender: &watch::Sender<usize>) -> anyhow::Result<()> {
    let mut stream = client.watch(prefix, Some(WatchOptions::new().with_prefix())).await?;
    loop {
        let response = client.get(prefix, Some(GetOptions::new().with_prefix().with_count_only())).await?;
        let count = usize::try_from(response.count()).unwrap_or(1).max(1);
        sender.send_if_modified(|current| std::mem::replace(current, count) != count);
        if stream.message().await?.is_none() {
            anyhow::bail!("the watch ended");
        }
    }
}
