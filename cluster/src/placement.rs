//! Where replicas go: the placement plan, its fenced store, and leader election.
//!
//! The leader coordinator turns the registry (versions to load, their
//! replica counts and memory estimates) and the live nodes (their offered
//! memory) into a [`Placement`]: for each version, the nodes that hold it, or
//! why it could not be placed. [`plan`] is pure: it keeps every current
//! assignment that still fits a live node, then gives each version the nodes
//! with the fewest replicas and the most free memory that fit its estimate.
//! A version loaded on demand (`replicas.min: 0`) gets a replica only while
//! some coordinator reports it wanted ([`crate::demand`]).
//!
//! The plan is one etcd key, `<prefix>placement`, written only in a
//! transaction that compares the leader's election key, so a deposed leader
//! cannot overwrite its successor's decisions.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, LeaderKey, Txn, TxnOp};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use maas_registry::ModelRecord;

use crate::demand::Demand;
use crate::NodeInfo;

/// The nodes of one version, or why it has too few.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Assignment {
    /// Nodes holding a replica.
    pub nodes: Vec<String>,
    /// Replicas wanted.
    pub wanted: u32,
    /// Memory one replica needs, in bytes.
    pub memory_bytes: u64,
    /// Whether `memory_bytes` comes from a measurement (else an estimate).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub memory_measured: bool,
    /// Why fewer than `wanted` nodes hold it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unplaceable: Option<String>,
    /// A replica needs more memory than any live node offers in all.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fits_no_node: bool,
    /// The last scaling decision that set `wanted`, with its reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling: Option<String>,
}

impl Assignment {
    fn new(nodes: Vec<String>, item: &Item) -> Assignment {
        Assignment {
            nodes,
            wanted: item.wanted,
            memory_bytes: item.memory,
            memory_measured: item.measured,
            unplaceable: None,
            fits_no_node: false,
            scaling: item.scaling.clone(),
        }
    }
}

/// The whole placement, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Placement {
    /// Incremented by every write.
    pub epoch: u64,
    /// The coordinator that wrote it.
    pub leader: String,
    /// By `model/version`.
    pub assignments: BTreeMap<String, Assignment>,
}

impl Placement {
    /// The key of a version in `assignments`.
    pub fn key(model: &str, version: u64) -> String {
        format!("{model}/{version}")
    }

    /// Whether `node` should hold `model` / `version`.
    pub fn places(&self, model: &str, version: u64, node: &str) -> bool {
        self.places_key(&Self::key(model, version), node)
    }

    /// Whether `node` should hold the version of placement key `key`.
    pub fn places_key(&self, key: &str, node: &str) -> bool {
        self.assignments.get(key).is_some_and(|a| a.nodes.iter().any(|n| n == node))
    }
}

/// Memory a replica of a version needs: what one was measured to take
/// (per `measured`), or before that its configured figure or three times
/// its artifact.
pub fn memory_needed(record: &ModelRecord, version: u64, measured: &Measured) -> u64 {
    let v = &record.versions[&version];
    v.config.memory_needed(measured.get(&Placement::key(&record.name, version)).copied(), v.artifact.size)
}

/// The versions of `record` placement considers: those the registry wants
/// loaded, and the versions loaded on demand that requests still wait for
/// although the registry moved on (a request that arrived before a newer
/// version was published is answered by the version it was routed to).
pub fn versions_to_place(record: &ModelRecord, demand: &Demand) -> Vec<u64> {
    let mut versions = record.versions_for_nodes();
    for (number, version) in record.versions.iter().filter(|(number, _)| record.runs_on_nodes(**number)) {
        let waited_for = demand.get(&Placement::key(&record.name, *number)).is_some_and(|want| want.busy);
        if waited_for && version.config.replicas.min == 0 && record.loaded {
            versions.push(*number);
        }
    }
    versions.sort_unstable();
    versions.dedup();
    versions
}

/// The artifacts (sha256 digests) each node holds in its local cache.
pub type CachedArtifacts = BTreeMap<String, BTreeSet<String>>;

/// Memory one replica of a version was measured to take, by placement key.
pub type Measured = BTreeMap<String, u64>;

/// What each node holds now and the memory each version counts there, by
/// node and placement key.
pub type Held = BTreeMap<String, BTreeMap<String, u64>>;

/// What placement learns from the live cluster, beside the registry and
/// the nodes' budgets.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The artifacts in each node's cache.
    pub cached: CachedArtifacts,
    /// The versions loaded on demand that coordinators want.
    pub demand: Demand,
    /// Measured memory of the versions some node holds or held.
    pub measured: Measured,
    /// What the nodes hold now.
    pub held: Held,
    /// Replicas of the versions that scale with load (decided by the
    /// leader's scaler), by placement key.
    pub scaled: BTreeMap<String, Scaled>,
}

/// The replicas a version should have, and why that last changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scaled {
    /// Replicas wanted.
    pub replicas: u32,
    /// The last decision that changed them, if any.
    pub reason: Option<String>,
}

/// One version to place.
struct Item {
    key: String,
    wanted: u32,
    memory: u64,
    measured: bool,
    scaling: Option<String>,
}

/// How a version loaded on demand ranks when memory is short: replicas
/// serving requests stay, then versions with requests waiting are loaded,
/// those waiting longest first, then idle replicas stay, the most recently
/// used first. A version nobody
/// asks for now and that no live node holds is not loaded ahead of need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    Serving,
    Waiting,
    Idle,
}

/// Computes assignments for every version to load over the live `nodes`.
///
/// Versions with `replicas.min` above zero come first, with the replicas
/// scaling asks for (`observed.scaled`, else `min`): every current
/// assignment that still fits is kept, then new replicas go (largest
/// versions first) to the nodes with the fewest replicas, then to those
/// already holding the artifact (per `observed.cached`), then to those with
/// the most free memory. Versions loaded on demand then share what is
/// left, one replica each (or as scaling asks), in [`Rank`] order: one that does not fit is
/// evicted (an idle one) or waits for room (a wanted one). A version on
/// demand that nobody wants has no assignment.
pub fn plan(
    records: &[ModelRecord],
    nodes: &BTreeMap<String, NodeInfo>,
    current: &Placement,
    observed: &Observed,
) -> BTreeMap<String, Assignment> {
    let mut room = Room::new(nodes, records, &observed.cached);
    room.hold_unplaced(current, &observed.held);
    let mut required: Vec<Item> = Vec::new();
    // With their rank and their order within it.
    let mut on_demand: Vec<(Rank, u64, Item)> = Vec::new();
    for record in records {
        for version in versions_to_place(record, &observed.demand) {
            let key = Placement::key(&record.name, version);
            let memory = memory_needed(record, version, &observed.measured);
            let measured = observed.measured.contains_key(&key);
            let range = record.versions[&version].config.replicas;
            let scaled = observed.scaled.get(&key);
            let scaling = scaled.and_then(|s| s.reason.clone());
            if range.min > 0 {
                let wanted = scaled.map_or(range.min, |s| s.replicas.clamp(range.min, range.max));
                required.push(Item { key, wanted, memory, measured, scaling });
                continue;
            }
            let Some(want) = observed.demand.get(&key) else { continue };
            let held = current.assignments.get(&key).is_some_and(|a| a.nodes.iter().any(|n| nodes.contains_key(n)));
            let rank = match (want.busy, held) {
                (true, true) => Rank::Serving,
                (true, false) => Rank::Waiting,
                (false, true) => Rank::Idle,
                (false, false) => continue,
            };
            let wanted = scaled.map_or(1, |s| s.replicas).clamp(1, range.max);
            let order = match (rank, want.busy_since_ms) {
                (Rank::Waiting, 0) => u64::MAX,
                (Rank::Waiting, since) => since,
                _ => u64::MAX - want.last_used_s,
            };
            on_demand.push((rank, order, Item { key, wanted, memory, measured, scaling }));
        }
    }
    let mut result: BTreeMap<String, Assignment> = BTreeMap::new();
    // Keep what already runs where it still fits.
    for item in &required {
        let kept = room.keep(current, item, item.wanted);
        result.insert(item.key.clone(), Assignment::new(kept, item));
    }
    // Then the largest versions first onto the least loaded nodes that fit.
    required.sort_by(|a, b| b.memory.cmp(&a.memory).then(a.key.cmp(&b.key)));
    for item in &required {
        let assignment = result.get_mut(&item.key).expect("inserted above");
        room.add_replicas(assignment, item);
    }
    on_demand.sort_by(|a, b| (a.0, a.1, &a.2.key).cmp(&(b.0, b.1, &b.2.key)));
    for (rank, _, item) in &on_demand {
        let mut assignment = Assignment::new(room.keep(current, item, item.wanted), item);
        if *rank == Rank::Idle {
            if !assignment.nodes.is_empty() {
                result.insert(item.key.clone(), assignment);
            }
            continue;
        }
        room.add_replicas(&mut assignment, item);
        result.insert(item.key.clone(), assignment);
    }
    result
}

/// The nodes' free memory and replica counts while a plan is made.
struct Room<'a> {
    nodes: &'a BTreeMap<String, NodeInfo>,
    free: BTreeMap<&'a str, u64>,
    replicas: BTreeMap<&'a str, usize>,
    digests: BTreeMap<String, &'a str>,
    cached: &'a CachedArtifacts,
}

impl<'a> Room<'a> {
    fn new(nodes: &'a BTreeMap<String, NodeInfo>, records: &'a [ModelRecord], cached: &'a CachedArtifacts) -> Self {
        let digests = records
            .iter()
            .flat_map(|r| {
                r.versions.iter().map(|(v, record)| (Placement::key(&r.name, *v), record.artifact.sha256.as_str()))
            })
            .collect();
        Room {
            nodes,
            free: nodes.iter().map(|(name, n)| (name.as_str(), n.memory_bytes)).collect(),
            replicas: nodes.keys().map(|name| (name.as_str(), 0)).collect(),
            digests,
            cached,
        }
    }

    /// Takes the room of what nodes hold outside `current` (models from a
    /// node's own repository, versions in their unload grace): placement
    /// cannot give it away until they are gone.
    fn hold_unplaced(&mut self, current: &Placement, held: &Held) {
        for (node, versions) in held {
            let Some(free) = self.free.get_mut(node.as_str()) else { continue };
            for (key, bytes) in versions {
                if !current.places_key(key, node) {
                    *free = free.saturating_sub(*bytes);
                }
            }
        }
    }

    fn take(&mut self, node: &str, memory: u64) {
        *self.free.get_mut(node).expect("only live nodes are taken") -= memory;
        *self.replicas.get_mut(node).expect("only live nodes are taken") += 1;
    }

    /// The nodes of `item`'s current assignment that are live and still
    /// have room, up to `wanted`; their room is taken.
    fn keep(&mut self, current: &Placement, item: &Item, wanted: u32) -> Vec<String> {
        let mut kept = Vec::new();
        for node in current.assignments.get(&item.key).map(|a| a.nodes.as_slice()).unwrap_or_default() {
            if kept.len() >= wanted as usize {
                break;
            }
            if self.free.get(node.as_str()).is_some_and(|room| *room >= item.memory) {
                let name = self.nodes.get_key_value(node).expect("free holds live nodes only").0.as_str();
                self.take(name, item.memory);
                kept.push(node.clone());
            }
        }
        kept
    }

    /// Adds replicas to `assignment` until it has `item.wanted` or no node
    /// has room; says why when it falls short.
    fn add_replicas(&mut self, assignment: &mut Assignment, item: &Item) {
        let (cached, digest) = (self.cached, self.digests[&item.key]);
        let holds = |node: &str| cached.get(node).is_some_and(|set| set.contains(digest));
        while assignment.nodes.len() < item.wanted as usize {
            let candidate = self
                .free
                .iter()
                .filter(|(name, room)| **room >= item.memory && !assignment.nodes.iter().any(|n| n == *name))
                .min_by_key(|(name, room)| (self.replicas[*name], !holds(name), std::cmp::Reverse(**room), **name))
                .map(|(name, _)| *name);
            let Some(node) = candidate else { break };
            self.take(node, item.memory);
            assignment.nodes.push(node.to_string());
        }
        assignment.nodes.sort();
        if assignment.nodes.len() < item.wanted as usize {
            let (memory, wanted) = (item.memory, item.wanted);
            let most_free = self.free.values().max().copied().unwrap_or(0);
            let largest = self.nodes.values().map(|n| n.memory_bytes).max().unwrap_or(0);
            assignment.fits_no_node = memory > largest;
            assignment.unplaceable = Some(if self.nodes.is_empty() {
                "no node is registered".to_string()
            } else if assignment.fits_no_node {
                format!("a replica needs {memory} bytes; the largest node offers {largest} bytes")
            } else if assignment.nodes.is_empty() {
                format!("a replica needs {memory} bytes; the most free memory on any node is {most_free} bytes")
            } else {
                format!(
                    "only {} of {wanted} replicas fit: a replica needs {memory} bytes and {} node(s) are live",
                    assignment.nodes.len(),
                    self.nodes.len()
                )
            });
        }
    }
}

/// The placement key.
pub fn placement_key(prefix: &str) -> String {
    format!("{prefix}placement")
}

/// Reads the stored placement (empty when none was written yet).
pub async fn read_placement(client: &mut Client, prefix: &str) -> anyhow::Result<Placement> {
    let response = client.get(placement_key(prefix), None).await?;
    match response.kvs().first() {
        Some(kv) => Ok(serde_json::from_slice(kv.value())?),
        None => Ok(Placement::default()),
    }
}

/// Writes `placement` if `leader` still holds the election; returns false
/// (and writes nothing) when it does not.
pub async fn write_placement_fenced(
    client: &mut Client,
    prefix: &str,
    placement: &Placement,
    leader: &LeaderKey,
) -> anyhow::Result<bool> {
    let txn = Txn::new()
        .when([Compare::create_revision(leader.key().to_vec(), CompareOp::Equal, leader.rev())])
        .and_then([TxnOp::put(placement_key(prefix), serde_json::to_vec(placement)?, None)]);
    Ok(client.txn(txn).await?.succeeded())
}

/// Follows the stored placement.
pub async fn watch_placement(client: Client, prefix: String) -> watch::Receiver<Placement> {
    let (sender, receiver) = watch::channel(Placement::default());
    tokio::spawn(async move {
        let mut client = client;
        loop {
            let result: anyhow::Result<()> = async {
                let mut stream = client.watch(placement_key(&prefix), None).await?;
                loop {
                    let placement = read_placement(&mut client, &prefix).await?;
                    sender.send_if_modified(|current| {
                        let changed = *current != placement;
                        *current = placement;
                        changed
                    });
                    if stream.message().await?.is_none() {
                        anyhow::bail!("the placement watch ended");
                    }
                }
            }
            .await;
            if let Err(error) = result {
                tracing::warn!(%error, "placement watch failed; restarting it");
            }
            if sender.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    receiver
}

/// Leadership won in an election; `lost` turns true when its lease lapses.
pub struct Leadership {
    /// The election key; writes compare it.
    pub key: LeaderKey,
    /// Becomes true once leadership is lost.
    pub lost: watch::Receiver<bool>,
}

/// Campaigns for `<prefix>leader` with a lease of `ttl`; returns once won.
pub async fn campaign(client: &Client, prefix: &str, name: &str, ttl: Duration) -> anyhow::Result<Leadership> {
    let mut client = client.clone();
    let lease = client.lease_grant(ttl.as_secs().max(1) as i64, None).await?.id();
    let (mut keeper, mut responses) = client.lease_keep_alive(lease).await?;
    let (lost_sender, lost) = watch::channel(false);
    let interval = ttl / 3;
    tokio::spawn(async move {
        loop {
            let alive = async {
                keeper.keep_alive().await?;
                match tokio::time::timeout(interval, responses.message()).await {
                    Ok(Ok(Some(response))) if response.ttl() > 0 => anyhow::Ok(true),
                    _ => anyhow::Ok(false),
                }
            }
            .await
            .unwrap_or(false);
            if !alive {
                let _ = lost_sender.send(true);
                return;
            }
            tokio::time::sleep(interval).await;
        }
    });
    let response = client.campaign(format!("{prefix}leader"), name, lease).await?;
    let key = response.leader().cloned().ok_or_else(|| anyhow::anyhow!("etcd returned no leader key"))?;
    Ok(Leadership { key, lost })
}

#[cfg(test)]
mod tests {
    use maas_protocol::ModelConfig;

    use super::*;
    use crate::demand::Want;
    use maas_registry::{ArtifactRef, Lineage, VersionRecord};

    fn node(name: &str, memory: u64) -> (String, NodeInfo) {
        (
            name.into(),
            NodeInfo { name: name.into(), quic_addr: "127.0.0.1:1".into(), device: "cpu".into(), memory_bytes: memory },
        )
    }

    fn model(name: &str, replicas: u32, memory: u64) -> ModelRecord {
        model_with_artifact(name, replicas, memory, &"a".repeat(64))
    }

    fn model_with_artifact(name: &str, replicas: u32, memory: u64, sha256: &str) -> ModelRecord {
        model_with_range(name, (replicas, replicas.max(1)), memory, sha256)
    }

    fn model_with_range(name: &str, (min, max): (u32, u32), memory: u64, sha256: &str) -> ModelRecord {
        let config: ModelConfig = serde_json::from_value(serde_json::json!({
            "name": name, "max_batch_size": 1, "memory_bytes": memory,
            "replicas": {"min": min, "max": max},
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 1]}],
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 1]}],
        }))
        .unwrap();
        let mut record = ModelRecord::new(name);
        record.versions.insert(
            1,
            VersionRecord {
                version: 1,
                config,
                artifact: ArtifactRef { sha256: sha256.into(), size: 1 },
                lineage: Lineage::default(),
                engine_key: None,
            },
        );
        record.next_version = 2;
        record
    }

    #[test]
    fn replicas_spread_over_nodes() {
        let nodes: BTreeMap<_, _> = [node("a", 100), node("b", 100), node("c", 100)].into_iter().collect();
        let records = vec![model("m1", 2, 10), model("m2", 2, 10), model("m3", 2, 10)];
        let plan = plan(&records, &nodes, &Placement::default(), &Observed::default());
        let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
        for assignment in plan.values() {
            assert_eq!(assignment.nodes.len(), 2);
            assert!(assignment.unplaceable.is_none());
            for node in &assignment.nodes {
                *per_node.entry(node).or_default() += 1;
            }
        }
        assert_eq!(per_node.values().copied().collect::<Vec<_>>(), vec![2, 2, 2]);
    }

    #[test]
    fn too_large_is_unplaceable_and_others_are_not() {
        let nodes: BTreeMap<_, _> = [node("a", 100), node("b", 50)].into_iter().collect();
        let records = vec![model("big", 1, 1000), model("small", 1, 10)];
        let plan = plan(&records, &nodes, &Placement::default(), &Observed::default());
        let big = &plan["big/1"];
        assert!(big.nodes.is_empty());
        assert!(big.unplaceable.as_deref().unwrap().contains("needs 1000 bytes"), "{big:?}");
        assert_eq!(plan["small/1"].nodes.len(), 1);
    }

    #[test]
    fn memory_is_respected_and_current_placement_kept() {
        let nodes: BTreeMap<_, _> = [node("a", 30), node("b", 30)].into_iter().collect();
        let records = vec![model("m1", 1, 20), model("m2", 1, 20)];
        let mut current = Placement::default();
        current.assignments.insert(
            "m1/1".into(),
            Assignment { nodes: vec!["b".into()], wanted: 1, memory_bytes: 20, ..Default::default() },
        );
        let plan = plan(&records, &nodes, &current, &Observed::default());
        assert_eq!(plan["m1/1"].nodes, vec!["b".to_string()]);
        assert_eq!(plan["m2/1"].nodes, vec!["a".to_string()]);
    }

    #[test]
    fn a_lost_node_moves_its_replicas() {
        let mut nodes: BTreeMap<_, _> = [node("a", 100), node("b", 100), node("c", 100)].into_iter().collect();
        let records = vec![model("m", 2, 10)];
        let first = Placement {
            assignments: plan(&records, &nodes, &Placement::default(), &Observed::default()),
            ..Placement::default()
        };
        let lost = first.assignments["m/1"].nodes[0].clone();
        nodes.remove(&lost);
        let second = plan(&records, &nodes, &first, &Observed::default());
        assert_eq!(second["m/1"].nodes.len(), 2);
        assert!(!second["m/1"].nodes.contains(&lost));
    }

    #[test]
    fn nodes_holding_the_artifact_are_preferred_among_equals() {
        let nodes: BTreeMap<_, _> = [node("a", 100), node("b", 100), node("c", 100)].into_iter().collect();
        let digest = "c".repeat(64);
        let records = vec![model_with_artifact("m", 2, 10, &digest)];
        let cached: CachedArtifacts =
            [("c".to_string(), [digest.clone()].into()), ("b".to_string(), ["d".repeat(64)].into())].into();
        let plan = plan(&records, &nodes, &Placement::default(), &Observed { cached, ..Observed::default() });
        assert!(plan["m/1"].nodes.contains(&"c".to_string()), "{plan:?}");
        // Without the cache the tie goes to the first name.
        let plain = super::plan(&records, &nodes, &Placement::default(), &Observed::default());
        assert_eq!(plain["m/1"].nodes, vec!["a".to_string(), "b".to_string()]);
    }

    #[test]
    fn a_version_loaded_on_demand_is_placed_only_while_wanted() {
        let nodes: BTreeMap<_, _> = [node("a", 100), node("b", 100)].into_iter().collect();
        let records = vec![model_with_range("cold", (0, 2), 10, &"a".repeat(64)), model("warm", 1, 10)];
        let idle = plan(&records, &nodes, &Placement::default(), &Observed::default());
        assert!(!idle.contains_key("cold/1"), "nobody wants it: {idle:?}");
        assert_eq!(idle["warm/1"].nodes.len(), 1, "min 1 is placed regardless");
        let wanted = Observed {
            demand: [("cold/1".to_string(), Want { busy: true, last_used_s: 1, in_flight: 1, busy_since_ms: 1 })]
                .into(),
            ..Default::default()
        };
        let busy = plan(&records, &nodes, &Placement::default(), &wanted);
        assert_eq!(busy["cold/1"].nodes.len(), 1, "wanted, it gets one replica: {busy:?}");
        assert_eq!(busy["cold/1"].wanted, 1);
        // Wanted no more, its replica is given up.
        let current = Placement { assignments: busy, ..Placement::default() };
        let after = plan(&records, &nodes, &current, &Observed::default());
        assert!(!after.contains_key("cold/1"));
    }

    fn on_demand(names: &[&str], memory: u64) -> Vec<ModelRecord> {
        names.iter().map(|name| model_with_range(name, (0, 1), memory, &"a".repeat(64))).collect()
    }

    fn held_on(entries: &[(&str, &str)]) -> Placement {
        let assignments = entries
            .iter()
            .map(|(version, node)| {
                (version.to_string(), Assignment { nodes: vec![node.to_string()], wanted: 1, ..Default::default() })
            })
            .collect();
        Placement { assignments, ..Placement::default() }
    }

    fn demand(entries: &[(&str, bool, u64)]) -> Observed {
        let demand = entries
            .iter()
            .map(|(version, busy, last_used_s)| {
                let busy_since_ms = if *busy { last_used_s * 1000 } else { 0 };
                let want = Want { busy: *busy, last_used_s: *last_used_s, in_flight: u32::from(*busy), busy_since_ms };
                (version.to_string(), want)
            })
            .collect();
        Observed { demand, ..Observed::default() }
    }

    #[test]
    fn a_waiting_version_evicts_the_least_recently_used_idle_one() {
        let nodes: BTreeMap<_, _> = [node("a", 30)].into_iter().collect();
        let records = on_demand(&["m1", "m2", "m3", "m4"], 10);
        let current = held_on(&[("m1/1", "a"), ("m2/1", "a"), ("m3/1", "a")]);
        let observed = demand(&[("m1/1", false, 50), ("m2/1", false, 10), ("m3/1", false, 40), ("m4/1", true, 60)]);
        let plan = plan(&records, &nodes, &current, &observed);
        assert_eq!(plan["m4/1"].nodes, vec!["a".to_string()], "{plan:?}");
        assert!(!plan.contains_key("m2/1"), "the least recently used goes: {plan:?}");
        assert!(plan.contains_key("m1/1") && plan.contains_key("m3/1"));
        // Without a waiting request nothing moves.
        let observed = demand(&[("m1/1", false, 50), ("m2/1", false, 10), ("m3/1", false, 40), ("m4/1", false, 60)]);
        let plan = super::plan(&records, &nodes, &current, &observed);
        assert_eq!(plan.keys().collect::<Vec<_>>(), vec!["m1/1", "m2/1", "m3/1"], "no load ahead of need");
    }

    #[test]
    fn a_version_superseded_while_requests_wait_for_it_is_still_placed() {
        let nodes: BTreeMap<_, _> = [node("a", 100)].into_iter().collect();
        let mut record = model_with_range("m", (0, 1), 10, &"a".repeat(64));
        let mut newer = record.versions[&1].clone();
        newer.version = 2;
        record.versions.insert(2, newer);
        assert_eq!(record.versions_to_load(), vec![2], "the registry serves the newest");
        let waited = plan(std::slice::from_ref(&record), &nodes, &Placement::default(), &demand(&[("m/1", true, 5)]));
        assert_eq!(waited["m/1"].nodes, vec!["a".to_string()], "requests wait for version 1: {waited:?}");
        let idle = plan(&[record], &nodes, &Placement::default(), &demand(&[("m/1", false, 5)]));
        assert!(!idle.contains_key("m/1"), "nobody waits for it: {idle:?}");
    }

    #[test]
    fn the_version_waiting_longest_is_loaded_first() {
        let nodes: BTreeMap<_, _> = [node("a", 10)].into_iter().collect();
        let records = on_demand(&["old", "new"], 10);
        // `new` was asked for last, but `old` has waited since second 5.
        let mut observed = demand(&[("old/1", true, 5), ("new/1", true, 9)]);
        observed.demand.get_mut("old/1").unwrap().last_used_s = 20;
        let plan = plan(&records, &nodes, &Placement::default(), &observed);
        assert_eq!(plan["old/1"].nodes, vec!["a".to_string()], "{plan:?}");
        assert!(plan["new/1"].nodes.is_empty(), "{plan:?}");
    }

    #[test]
    fn replicas_serving_requests_and_required_replicas_are_never_evicted() {
        let nodes: BTreeMap<_, _> = [node("a", 30)].into_iter().collect();
        let mut records = on_demand(&["m1", "m2", "m3"], 10);
        records.push(model("pinned", 1, 10));
        let current = held_on(&[("m1/1", "a"), ("m2/1", "a"), ("pinned/1", "a")]);
        let observed = demand(&[("m1/1", true, 1), ("m2/1", true, 2), ("m3/1", true, 60)]);
        let plan = plan(&records, &nodes, &current, &observed);
        assert_eq!(plan["pinned/1"].nodes, vec!["a".to_string()]);
        assert_eq!(plan["m1/1"].nodes, vec!["a".to_string()]);
        assert_eq!(plan["m2/1"].nodes, vec!["a".to_string()]);
        let waiting = &plan["m3/1"];
        assert!(waiting.nodes.is_empty(), "{plan:?}");
        assert!(!waiting.fits_no_node);
        assert!(waiting.unplaceable.as_deref().unwrap().contains("most free memory on any node is 0"), "{waiting:?}");
    }

    #[test]
    fn a_version_larger_than_every_node_fits_no_node_and_measured_figures_count() {
        let nodes: BTreeMap<_, _> = [node("a", 30), node("b", 20)].into_iter().collect();
        let mut records = on_demand(&["huge"], 40);
        records.extend(on_demand(&["small"], 10));
        let observed = Observed {
            measured: [("small/1".to_string(), 25)].into(),
            ..demand(&[("huge/1", true, 1), ("small/1", true, 1)])
        };
        let plan = plan(&records, &nodes, &Placement::default(), &observed);
        assert!(plan["huge/1"].fits_no_node, "{plan:?}");
        assert!(plan["huge/1"].unplaceable.as_deref().unwrap().contains("the largest node offers 30 bytes"));
        // Measured above its configured 10 bytes, it fits only on `a`.
        assert_eq!(plan["small/1"].memory_bytes, 25, "{plan:?}");
        assert_eq!(plan["small/1"].nodes, vec!["a".to_string()]);
    }

    #[test]
    fn what_a_node_holds_outside_the_placement_takes_its_room() {
        let nodes: BTreeMap<_, _> = [node("a", 30), node("b", 30)].into_iter().collect();
        let records = vec![model("m", 1, 20)];
        // `a` holds 15 bytes of models from its own repository.
        let held: Held = [("a".to_string(), [("preloaded/1".to_string(), 15)].into())].into();
        let plan = plan(&records, &nodes, &Placement::default(), &Observed { held, ..Observed::default() });
        assert_eq!(plan["m/1"].nodes, vec!["b".to_string()], "{plan:?}");
    }
}
