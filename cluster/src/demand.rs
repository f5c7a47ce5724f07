//! Demand for versions loaded on demand (`replicas.min: 0`), shared through
//! etcd: each coordinator keeps `<prefix>demand/<name>` set, under a lease
//! of its own, to the versions it has a request waiting for or served
//! within its idle time; the leader places a replica of each version some
//! coordinator wants and none of the rest. A coordinator that dies takes
//! its demand with it when its lease lapses.

use std::collections::BTreeSet;
use std::time::Duration;

use etcd_client::{Client, GetOptions, PutOptions, WatchOptions};
use tokio::sync::watch;

/// Versions wanted, as `model/version` keys of the placement.
pub type Demand = BTreeSet<String>;

fn prefix_of(prefix: &str) -> String {
    format!("{prefix}demand/")
}

/// Keeps `<prefix>demand/<name>` equal to what `demand` holds until the
/// sender side is dropped, under a lease of `ttl` kept alive meanwhile.
pub async fn report_demand(
    client: Client,
    prefix: String,
    name: String,
    ttl: Duration,
    demand: watch::Receiver<Demand>,
) {
    let key = format!("{}{name}", prefix_of(&prefix));
    let mut client = client;
    let mut demand = demand;
    loop {
        match report_under_one_lease(&mut client, &key, ttl, &mut demand).await {
            Ok(()) => return,
            Err(error) => tracing::warn!(%error, "could not report demand to etcd; retrying"),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Reports under one lease until the lease or the connection fails (an
/// error) or the demand's sender is gone (done).
async fn report_under_one_lease(
    client: &mut Client,
    key: &str,
    ttl: Duration,
    demand: &mut watch::Receiver<Demand>,
) -> anyhow::Result<()> {
    let lease = client.lease_grant(ttl.as_secs().max(1) as i64, None).await?.id();
    let (mut keeper, mut responses) = client.lease_keep_alive(lease).await?;
    let put = |value: Vec<u8>| {
        let mut client = client.clone();
        async move { client.put(key, value, Some(PutOptions::new().with_lease(lease))).await }
    };
    let encoded = serde_json::to_vec(&*demand.borrow_and_update())?;
    put(encoded).await?;
    let renew_every = (ttl / 3).max(Duration::from_millis(300));
    loop {
        tokio::select! {
            changed = demand.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let encoded = serde_json::to_vec(&*demand.borrow_and_update())?;
                put(encoded).await?;
            }
            _ = tokio::time::sleep(renew_every) => {
                keeper.keep_alive().await?;
                match responses.message().await? {
                    Some(answer) if answer.ttl() > 0 => {}
                    _ => anyhow::bail!("the demand lease lapsed"),
                }
            }
        }
    }
}

/// What every coordinator wants together, kept current by a watch.
pub fn watch_demand(client: Client, prefix: String) -> watch::Receiver<Demand> {
    let (sender, receiver) = watch::channel(Demand::new());
    tokio::spawn(async move {
        let mut client = client;
        let prefix = prefix_of(&prefix);
        loop {
            if let Err(error) = follow(&mut client, &prefix, &sender).await {
                tracing::warn!(%error, "demand watch failed; restarting it");
            }
            if sender.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    receiver
}

async fn follow(client: &mut Client, prefix: &str, sender: &watch::Sender<Demand>) -> anyhow::Result<()> {
    let mut stream = client.watch(prefix, Some(WatchOptions::new().with_prefix())).await?;
    loop {
        let response = client.get(prefix, Some(GetOptions::new().with_prefix())).await?;
        let mut all = Demand::new();
        for kv in response.kvs() {
            match serde_json::from_slice::<Demand>(kv.value()) {
                Ok(wanted) => all.extend(wanted),
                Err(error) => tracing::warn!(key = %String::from_utf8_lossy(kv.key()), %error, "unreadable demand"),
            }
        }
        sender.send_if_modified(|current| {
            let changed = *current != all;
            *current = std::mem::take(&mut all);
            changed
        });
        if sender.is_closed() {
            return Ok(());
        }
        if stream.message().await?.is_none() {
            anyhow::bail!("the watch ended");
        }
    }
}
