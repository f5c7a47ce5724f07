//! Cluster mode, with etcd: node membership, leader election and placement.
//!
//! Every coordinator follows the registered nodes (linking to each, and
//! dropping a node whose lease lapsed) and the stored placement (which tells
//! its reconciler which node holds which version). All coordinators
//! campaign; the leader alone recomputes the placement whenever the
//! registry, the membership or the demand for versions loaded on demand
//! changes (and every second), over the nodes it
//! has a working link to (so a node whose certificate does not match its
//! name, or comes from another CA, never gets replicas), writing it only
//! under its election key, so a deposed leader's writes fail.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use maas_cluster::demand::Demand;
use maas_cluster::placement::{self, Measured, Observed, Placement};
use maas_cluster::scaling::{Scaler, ScalingSettings};
use maas_cluster::NodeInfo;
use maas_registry::etcd_client::Client;
use maas_registry::{ModelRecord, Registry};
use tokio::sync::{watch, Notify};

use crate::metrics;
use crate::nodes::NodeSet;

/// What every coordinator sees of the cluster.
#[derive(Clone)]
pub struct ClusterView {
    /// Registered nodes.
    pub nodes: watch::Receiver<BTreeMap<String, NodeInfo>>,
    /// The stored placement.
    pub placement: watch::Receiver<Placement>,
    /// Whether this coordinator leads.
    pub is_leader: Arc<AtomicBool>,
}

/// Settings of cluster mode.
pub struct ClusterSettings {
    /// This coordinator's name, its value in the election.
    pub name: String,
    /// Key prefix in etcd.
    pub prefix: String,
    /// Lease of the election key.
    pub lease_ttl: Duration,
    /// How quickly replicas follow load.
    pub scaling: ScalingSettings,
}

/// Starts following membership and placement, and campaigning.
pub async fn start(
    client: Client,
    settings: ClusterSettings,
    registry: Registry,
    node_set: Arc<NodeSet>,
    wake: Arc<Notify>,
) -> ClusterView {
    let nodes = maas_cluster::watch_nodes(client.clone(), settings.prefix.clone()).await;
    let placement = placement::watch_placement(client.clone(), settings.prefix.clone()).await;
    let demand = maas_cluster::demand::watch_demand(client.clone(), settings.prefix.clone());
    let is_leader = Arc::new(AtomicBool::new(false));
    tokio::spawn(follow_membership(nodes.clone(), node_set.clone(), wake.clone()));
    tokio::spawn(wake_on_placement(placement.clone(), wake));
    let inputs = LeaderInputs { registry, nodes: nodes.clone(), node_set, demand };
    tokio::spawn(lead(client, settings, inputs, is_leader.clone()));
    ClusterView { nodes, placement, is_leader }
}

async fn follow_membership(
    mut nodes: watch::Receiver<BTreeMap<String, NodeInfo>>,
    node_set: Arc<NodeSet>,
    wake: Arc<Notify>,
) {
    loop {
        let current: Vec<(String, SocketAddr)> = nodes
            .borrow_and_update()
            .values()
            .filter_map(|info| match info.quic_addr.parse() {
                Ok(addr) => Some((info.name.clone(), addr)),
                Err(_) => {
                    tracing::warn!(node = %info.name, addr = %info.quic_addr, "node registered an invalid address");
                    None
                }
            })
            .collect();
        node_set.sync(&current);
        wake.notify_one();
        if nodes.changed().await.is_err() {
            return;
        }
    }
}

async fn wake_on_placement(mut placement: watch::Receiver<Placement>, wake: Arc<Notify>) {
    while placement.changed().await.is_ok() {
        wake.notify_one();
    }
}

/// What the leader places from.
struct LeaderInputs {
    registry: Registry,
    nodes: watch::Receiver<BTreeMap<String, NodeInfo>>,
    node_set: Arc<NodeSet>,
    /// The versions loaded on demand that some coordinator wants now.
    demand: watch::Receiver<Demand>,
}

async fn lead(mut client: Client, settings: ClusterSettings, inputs: LeaderInputs, is_leader: Arc<AtomicBool>) {
    let LeaderInputs { registry, nodes, node_set, demand } = inputs;
    loop {
        let leadership = match placement::campaign(&client, &settings.prefix, &settings.name, settings.lease_ttl).await
        {
            Ok(leadership) => leadership,
            Err(error) => {
                tracing::warn!(%error, "election campaign failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        is_leader.store(true, Ordering::Release);
        metrics::set_leader(true);
        tracing::info!(coordinator = %settings.name, "became the leader");
        let mut changes = registry.store().changes();
        let mut nodes = nodes.clone();
        let mut demand = demand.clone();
        let mut lost = leadership.lost.clone();
        let mut measured = Measured::new();
        let mut scaler = Scaler::default();
        while !*lost.borrow() {
            // Only nodes this coordinator could link to (their certificate
            // matches their name and our CA) get replicas.
            let up: Vec<String> = node_set.list().iter().filter(|l| l.is_up()).map(|l| l.name.clone()).collect();
            let members: BTreeMap<String, NodeInfo> = nodes
                .borrow_and_update()
                .iter()
                .filter(|(name, _)| up.contains(name))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let wanted = demand.borrow_and_update().clone();
            let inputs = PlaceInputs { registry: &registry, nodes: &members, node_set: &node_set, demand: &wanted };
            let round = std::time::Instant::now();
            let placed = place(&mut client, &settings, inputs, &leadership.key, (&mut measured, &mut scaler)).await;
            metrics::placement_round(round.elapsed());
            match placed {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!("the placement write was fenced off: leadership is gone");
                    break;
                }
                Err(error) => tracing::warn!(%error, "could not update the placement"),
            }
            tokio::select! {
                _ = changes.changed() => {}
                _ = nodes.changed() => {}
                _ = demand.changed() => {}
                _ = lost.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        is_leader.store(false, Ordering::Release);
        metrics::set_leader(false);
        tracing::warn!(coordinator = %settings.name, "lost the leadership");
    }
}

/// One placement round's view of the cluster.
struct PlaceInputs<'a> {
    registry: &'a Registry,
    nodes: &'a BTreeMap<String, NodeInfo>,
    node_set: &'a NodeSet,
    demand: &'a Demand,
}

/// Recomputes the placement and writes it if it changed; false when fenced.
/// Memory measured by the nodes is remembered in `measured` (for as long
/// as the version is registered), so that a version's figure outlives its
/// replicas; `scaler` follows each scalable version's load across rounds.
async fn place(
    client: &mut Client,
    settings: &ClusterSettings,
    inputs: PlaceInputs<'_>,
    key: &maas_registry::etcd_client::LeaderKey,
    (measured, scaler): (&mut Measured, &mut Scaler),
) -> anyhow::Result<bool> {
    let PlaceInputs { registry, nodes, node_set, demand } = inputs;
    let records: Vec<_> = registry.list().await?.into_iter().map(|s| s.record).collect();
    let current = placement::read_placement(client, &settings.prefix).await?;
    let (cached, fresh, held) = node_set.observe().await;
    measured.extend(fresh);
    let registered: BTreeSet<String> =
        records.iter().flat_map(|r| r.versions.keys().map(|v| Placement::key(&r.name, *v))).collect();
    measured.retain(|version, _| registered.contains(version));
    let scaled = scaler.decide(&records, &current, demand, settings.scaling, std::time::Instant::now());
    let observed = Observed { cached, demand: demand.clone(), measured: measured.clone(), scaled, held };
    let assignments = placement::plan(&records, nodes, &current, &observed);
    if assignments == current.assignments && current.leader == settings.name {
        return Ok(true);
    }
    for (version, assignment) in &assignments {
        if let Some(reason) = &assignment.unplaceable {
            tracing::warn!(version = %version, reason = %reason, "unplaceable");
        }
    }
    let next = Placement { epoch: current.epoch + 1, leader: settings.name.clone(), assignments };
    let written = placement::write_placement_fenced(client, &settings.prefix, &next, key).await?;
    if written {
        record_evictions(&records, &current, &next, demand);
    }
    Ok(written)
}

/// Counts and logs the replicas of versions loaded on demand that `next`
/// no longer holds: for room when some coordinator still wants the
/// version, for idleness when none does.
fn record_evictions(records: &[ModelRecord], current: &Placement, next: &Placement, demand: &Demand) {
    for record in records {
        for version in placement::versions_to_place(record, demand) {
            if record.versions[&version].config.replicas.min > 0 {
                continue;
            }
            let key = Placement::key(&record.name, version);
            let Some(before) = current.assignments.get(&key) else { continue };
            let next_assignment = next.assignments.get(&key);
            // Fewer replicas by scaling down is not an eviction.
            if next_assignment.is_some_and(|a| !a.nodes.is_empty() && a.nodes.len() >= a.wanted as usize) {
                continue;
            }
            let after = next_assignment.map(|a| a.nodes.as_slice()).unwrap_or_default();
            for node in before.nodes.iter().filter(|n| !after.contains(n)) {
                let reason = if demand.contains_key(&key) { "memory" } else { "idle" };
                tracing::info!(version = %key, node = %node, reason, "evicted");
                metrics::record_eviction(reason);
            }
        }
    }
}
