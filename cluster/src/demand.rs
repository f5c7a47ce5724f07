//! Demand for versions loaded on demand (`replicas.min: 0`), shared through
//! etcd: each coordinator keeps `<prefix>demand/<name>` set, under a lease
//! of its own, to the versions it has a request for (in flight or waiting
//! for a replica) or served within its idle time, with when it last served
//! each; the leader places a replica of each version some coordinator
//! wants, keeps the most recently used when memory is short, and none of
//! the rest. A coordinator that dies takes its demand with it when its
//! lease lapses.

use std::collections::BTreeMap;
use std::time::Duration;

use etcd_client::{Client, GetOptions, PutOptions, WatchOptions};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// How much one version is wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Want {
    /// Requests for it are in flight or waiting for a replica.
    pub busy: bool,
    /// When a request for it last arrived, in seconds since the Unix epoch.
    pub last_used_s: u64,
    /// Requests for it in flight.
    #[serde(default)]
    pub in_flight: u32,
    /// Since when requests for it have been in flight without a break, in
    /// ms since the Unix epoch (0: none are): the versions waiting longest
    /// are loaded first.
    #[serde(default)]
    pub busy_since_ms: u64,
}

impl Want {
    /// What two coordinators' wants of one version add up to.
    pub fn merge(self, other: Want) -> Want {
        Want {
            busy: self.busy || other.busy,
            last_used_s: self.last_used_s.max(other.last_used_s),
            in_flight: self.in_flight.saturating_add(other.in_flight),
            busy_since_ms: match (self.busy_since_ms, other.busy_since_ms) {
                (0, other) => other,
                (mine, 0) => mine,
                (mine, other) => mine.min(other),
            },
        }
    }
}

/// Versions wanted, by `model/version` key of the placement.
pub type Demand = BTreeMap<String, Want>;

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
    // An interval, not a sleep in the select: frequent changes must not
    // keep postponing the renewal until the lease lapses.
    let mut renew = tokio::time::interval((ttl / 3).max(Duration::from_millis(300)));
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    renew.tick().await;
    loop {
        tokio::select! {
            changed = demand.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let encoded = serde_json::to_vec(&*demand.borrow_and_update())?;
                put(encoded).await?;
            }
            _ = renew.tick() => {
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
                Ok(wanted) => {
                    for (key, want) in wanted {
                        let merged = all.get(&key).map_or(want, |held| held.merge(want));
                        all.insert(key, merged);
                    }
                }
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
