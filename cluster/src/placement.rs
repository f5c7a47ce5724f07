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
    /// Why fewer than `wanted` nodes hold it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unplaceable: Option<String>,
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
        self.assignments.get(&Self::key(model, version)).is_some_and(|a| a.nodes.iter().any(|n| n == node))
    }
}

/// Memory a replica of a version is assumed to need when its config gives
/// no estimate: three times its artifact.
pub fn memory_estimate(record: &ModelRecord, version: u64) -> u64 {
    let v = &record.versions[&version];
    v.config.memory_bytes.unwrap_or(v.artifact.size.saturating_mul(3))
}

/// The artifacts (sha256 digests) each node holds in its local cache.
pub type CachedArtifacts = BTreeMap<String, BTreeSet<String>>;

/// Replicas a version gets: its `replicas.min`, or for a version loaded on
/// demand (`min: 0`) one while some coordinator wants it (per `demand`,
/// keyed like the placement) and none otherwise.
fn replicas_wanted(record: &ModelRecord, version: u64, demand: &Demand) -> u32 {
    let range = record.versions[&version].config.replicas;
    if range.min > 0 {
        return range.min;
    }
    u32::from(demand.contains(&Placement::key(&record.name, version))).min(range.max)
}

/// Computes assignments for every version to load over the live `nodes`.
/// New replicas go to the nodes with the fewest replicas, then to those
/// already holding the version's artifact (per `cached`), then to those
/// with the most free memory. A version loaded on demand that nobody wants
/// now has no assignment.
pub fn plan(
    records: &[ModelRecord],
    nodes: &BTreeMap<String, NodeInfo>,
    current: &Placement,
    cached: &CachedArtifacts,
    demand: &Demand,
) -> BTreeMap<String, Assignment> {
    let mut free: BTreeMap<&str, u64> = nodes.iter().map(|(name, n)| (name.as_str(), n.memory_bytes)).collect();
    let mut replicas: BTreeMap<&str, usize> = nodes.keys().map(|name| (name.as_str(), 0)).collect();
    let mut items: Vec<(String, u32, u64)> = Vec::new();
    let mut digests: BTreeMap<String, &str> = BTreeMap::new();
    for record in records {
        for version in record.versions_to_load() {
            let wanted = replicas_wanted(record, version, demand);
            if wanted == 0 {
                continue;
            }
            let key = Placement::key(&record.name, version);
            digests.insert(key.clone(), &record.versions[&version].artifact.sha256);
            items.push((key, wanted, memory_estimate(record, version)));
        }
    }
    let holds = |node: &str, key: &str| cached.get(node).is_some_and(|set| set.contains(digests[key]));
    let mut result: BTreeMap<String, Assignment> = BTreeMap::new();
    // Keep what already runs where it still fits.
    for (key, wanted, memory) in &items {
        let mut kept = Vec::new();
        if let Some(existing) = current.assignments.get(key) {
            for node in &existing.nodes {
                if kept.len() >= *wanted as usize {
                    break;
                }
                if let Some(room) = free.get_mut(node.as_str()) {
                    if *room >= *memory {
                        *room -= memory;
                        *replicas.get_mut(node.as_str()).expect("every live node is counted") += 1;
                        kept.push(node.clone());
                    }
                }
            }
        }
        result
            .insert(key.clone(), Assignment { nodes: kept, wanted: *wanted, memory_bytes: *memory, unplaceable: None });
    }
    // Then the largest versions first onto the least loaded nodes that fit.
    items.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
    for (key, wanted, memory) in &items {
        let assignment = result.get_mut(key).expect("inserted above");
        while assignment.nodes.len() < *wanted as usize {
            let candidate = free
                .iter()
                .filter(|(name, room)| **room >= *memory && !assignment.nodes.iter().any(|n| n == *name))
                .min_by_key(|(name, room)| (replicas[*name], !holds(name, key), std::cmp::Reverse(**room), **name))
                .map(|(name, _)| *name);
            let Some(node) = candidate else { break };
            *free.get_mut(node).expect("candidate is live") -= memory;
            *replicas.get_mut(node).expect("candidate is live") += 1;
            assignment.nodes.push(node.to_string());
        }
        if assignment.nodes.len() < *wanted as usize {
            let most_free = free.values().max().copied().unwrap_or(0);
            assignment.unplaceable = Some(if nodes.is_empty() {
                "no node is registered".to_string()
            } else if assignment.nodes.is_empty() {
                format!("a replica needs {memory} bytes; the most free memory on any node is {most_free} bytes")
            } else {
                format!(
                    "only {} of {wanted} replicas fit: a replica needs {memory} bytes and {} node(s) are live",
                    assignment.nodes.len(),
                    nodes.len()
                )
            });
        }
        assignment.nodes.sort();
    }
    result
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
            },
        );
        record.next_version = 2;
        record
    }

    #[test]
    fn replicas_spread_over_nodes() {
        let nodes: BTreeMap<_, _> = [node("a", 100), node("b", 100), node("c", 100)].into_iter().collect();
        let records = vec![model("m1", 2, 10), model("m2", 2, 10), model("m3", 2, 10)];
        let plan = plan(&records, &nodes, &Placement::default(), &CachedArtifacts::new(), &Demand::new());
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
        let plan = plan(&records, &nodes, &Placement::default(), &CachedArtifacts::new(), &Demand::new());
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
            Assignment { nodes: vec!["b".into()], wanted: 1, memory_bytes: 20, unplaceable: None },
        );
        let plan = plan(&records, &nodes, &current, &CachedArtifacts::new(), &Demand::new());
        assert_eq!(plan["m1/1"].nodes, vec!["b".to_string()]);
        assert_eq!(plan["m2/1"].nodes, vec!["a".to_string()]);
    }

    #[test]
    fn a_lost_node_moves_its_replicas() {
        let mut nodes: BTreeMap<_, _> = [node("a", 100), node("b", 100), node("c", 100)].into_iter().collect();
        let records = vec![model("m", 2, 10)];
        let first = Placement {
            assignments: plan(&records, &nodes, &Placement::default(), &CachedArtifacts::new(), &Demand::new()),
            ..Placement::default()
        };
        let lost = first.assignments["m/1"].nodes[0].clone();
        nodes.remove(&lost);
        let second = plan(&records, &nodes, &first, &CachedArtifacts::new(), &Demand::new());
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
        let plan = plan(&records, &nodes, &Placement::default(), &cached, &Demand::new());
        assert!(plan["m/1"].nodes.contains(&"c".to_string()), "{plan:?}");
        // Without the cache the tie goes to the first name.
        let plain = super::plan(&records, &nodes, &Placement::default(), &CachedArtifacts::new(), &Demand::new());
        assert_eq!(plain["m/1"].nodes, vec!["a".to_string(), "b".to_string()]);
    }

    #[test]
    fn a_version_loaded_on_demand_is_placed_only_while_wanted() {
        let nodes: BTreeMap<_, _> = [node("a", 100), node("b", 100)].into_iter().collect();
        let records = vec![model_with_range("cold", (0, 2), 10, &"a".repeat(64)), model("warm", 1, 10)];
        let idle = plan(&records, &nodes, &Placement::default(), &CachedArtifacts::new(), &Demand::new());
        assert!(!idle.contains_key("cold/1"), "nobody wants it: {idle:?}");
        assert_eq!(idle["warm/1"].nodes.len(), 1, "min 1 is placed regardless");
        let wanted: Demand = ["cold/1".to_string()].into();
        let busy = plan(&records, &nodes, &Placement::default(), &CachedArtifacts::new(), &wanted);
        assert_eq!(busy["cold/1"].nodes.len(), 1, "wanted, it gets one replica: {busy:?}");
        assert_eq!(busy["cold/1"].wanted, 1);
        // Wanted no more, its replica is given up.
        let current = Placement { assignments: busy, ..Placement::default() };
        let after = plan(&records, &nodes, &current, &CachedArtifacts::new(), &Demand::new());
        assert!(!after.contains_key("cold/1"));
    }
}
