//! Coordinator membership in etcd: each coordinator keeps
//! `<prefix>coordinators/<name>` alive under a lease, and every coordinator
//! follows which are alive. Limits that hold for the whole cluster are
//! split by their count.

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

/// The names of the live coordinators, sorted, kept current by a watch.
pub fn watch_coordinators(client: Client, prefix: String) -> watch::Receiver<Vec<String>> {
    let (sender, receiver) = watch::channel(Vec::new());
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

async fn follow(client: &mut Client, prefix: &str, sender: &watch::Sender<Vec<String>>) -> anyhow::Result<()> {
    let mut stream = client.watch(prefix, Some(WatchOptions::new().with_prefix())).await?;
    loop {
        let response = client.get(prefix, Some(GetOptions::new().with_prefix().with_keys_only())).await?;
        let mut names: Vec<String> = response
            .kvs()
            .iter()
            .filter_map(|kv| kv.key_str().ok()?.strip_prefix(prefix).map(str::to_string))
            .collect();
        names.sort();
        sender.send_if_modified(|current| std::mem::replace(current, names.clone()) != names);
        if stream.message().await?.is_none() {
            anyhow::bail!("the watch ended");
        }
    }
}
