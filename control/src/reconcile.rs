//! Keeps nodes holding what the registry wants loaded.
//!
//! Whenever the registry changes, a node link comes up, or every couple of
//! seconds, the reconciler reads the registry, applies its routing to the
//! [`ModelTable`], and for each node that is up (all at once) compares what the node holds
//! with the versions the registry wants loaded: missing versions are loaded
//! (the node fetches and verifies the artifact and warms the model up), and
//! versions of registry models no longer wanted are unloaded once they have
//! been unwanted for [`UNLOAD_GRACE`], so requests already routed to them
//! still finish. Versions loaded on demand that the placement took off a
//! node are unloaded at once, before any load, so an eviction makes room
//! for the version that needs it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use maas_cluster::placement::Placement;
use maas_protocol::{LoadModel, LoadedModel};
use maas_registry::{ModelRecord, Registry};
use parking_lot::Mutex;
use tokio::sync::{watch, Notify};

use crate::nodes::{NodeLink, NodeSet};
use maas_serving::models::ModelTable;
use maas_serving::Replica;

/// How long an unwanted version stays loaded.
pub const UNLOAD_GRACE: Duration = Duration::from_secs(10);

const TICK: Duration = Duration::from_secs(2);

/// How often, at most, the memory a round freed is given back.
const TRIM_EVERY: Duration = Duration::from_secs(10);

/// The reconciler's state.
pub struct Reconciler {
    registry: Registry,
    table: Arc<ModelTable>,
    nodes: Arc<NodeSet>,
    placement: Option<watch::Receiver<Placement>>,
    wake: Arc<Notify>,
    /// Per node.
    unwanted_since: Mutex<HashMap<String, UnwantedSince>>,
}

impl Reconciler {
    /// A reconciler over `nodes`; `wake` is notified when a link comes up.
    /// With a `placement`, a node loads only the versions placed on it;
    /// without one, every node loads every version.
    pub fn new(
        registry: Registry,
        table: Arc<ModelTable>,
        nodes: Arc<NodeSet>,
        placement: Option<watch::Receiver<Placement>>,
        wake: Arc<Notify>,
    ) -> Arc<Reconciler> {
        Arc::new(Reconciler { registry, table, nodes, placement, wake, unwanted_since: Mutex::new(HashMap::new()) })
    }

    /// Runs reconciliation rounds until the process ends.
    pub fn spawn(self: Arc<Self>) {
        tokio::spawn(async move {
            let mut changes = self.registry.store().changes();
            let mut trimmed = Instant::now();
            loop {
                let round = Instant::now();
                self.round().await;
                crate::metrics::reconcile_round(round.elapsed());
                // A round reads the whole registry (megabytes at thousands
                // of models) and frees it; the allocator would keep those
                // pages, and an idle coordinator would stay that large.
                if trimmed.elapsed() >= TRIM_EVERY {
                    maas_process::release_free_memory();
                    trimmed = Instant::now();
                }
                tokio::select! {
                    _ = changes.changed() => {}
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(TICK) => {}
                }
            }
        });
    }

    /// One round: registry to table, then every node that is up.
    pub async fn round(&self) {
        let records: Vec<ModelRecord> = match self.registry.list().await {
            Ok(stored) => stored.into_iter().map(|s| s.record).collect(),
            Err(error) => {
                tracing::warn!(%error, "could not read the registry; keeping the current routing");
                return;
            }
        };
        self.table.apply_registry(&records);
        if let Some(placement) = &self.placement {
            let placement = placement.borrow();
            self.table.set_fits_nowhere(|model, version| {
                let assignment = placement.assignments.get(&Placement::key(model, version))?;
                assignment.fits_no_node.then(|| assignment.unplaceable.clone().unwrap_or_default())
            });
        }
        // Nodes are reconciled side by side, so that a long load on one
        // (a large model) does not hold back a cold load on another.
        let links: Vec<Arc<NodeLink>> = self.nodes.list().into_iter().filter(|l| l.is_up()).collect();
        let rounds = links.iter().map(|link| async {
            if let Err(error) = self.reconcile_node(link, &records).await {
                tracing::warn!(node = %link.name, %error, "could not reconcile node");
            }
        });
        futures_util::future::join_all(rounds).await;
    }

    async fn reconcile_node(&self, link: &Arc<NodeLink>, records: &[ModelRecord]) -> anyhow::Result<()> {
        let held = link.list_models().await?;
        let placement = self.placement.as_ref().map(|p| p.borrow().clone());
        let plan = {
            let mut unwanted = self.unwanted_since.lock();
            plan_node(
                &link.name,
                records,
                placement.as_ref(),
                &held,
                unwanted.entry(link.name.clone()).or_default(),
                Instant::now(),
            )?
        };
        let mut changed = false;
        // Unloads first: an eviction makes the room a load needs.
        for (model, version) in plan.unload {
            if let Err(error) = link.unload(&model, version).await? {
                tracing::warn!(node = %link.name, %model, version, %error, "node could not unload");
                continue;
            }
            tracing::info!(node = %link.name, %model, version, "unloaded from node");
            changed = true;
        }
        // Loads go out together (the node bounds how many run at once), and
        // each version is routed to as soon as it is ready, not when the
        // slowest load of the round is.
        let loads = plan.load.into_iter().map(|load| async move {
            let (model, version) = (load.model.clone(), load.version);
            match link.load(load).await? {
                Ok(()) => {
                    tracing::info!(node = %link.name, %model, version, "loaded on node");
                    self.attach(link).await?;
                }
                Err(error) => tracing::warn!(node = %link.name, %model, version, %error, "node could not load"),
            }
            anyhow::Ok(())
        });
        let loaded = futures_util::future::join_all(loads).await;
        // Another coordinator may have loaded or unloaded versions on this
        // node: record what it holds now in any case.
        match changed || !loaded.is_empty() {
            true => self.attach(link).await?,
            false => self.table.attach(&(link.clone() as Arc<dyn Replica>), &held),
        }
        loaded.into_iter().collect()
    }

    /// Routes to what `link`'s node holds now.
    async fn attach(&self, link: &Arc<NodeLink>) -> anyhow::Result<()> {
        let held = link.list_models().await?;
        let replica: Arc<dyn Replica> = link.clone();
        self.table.attach(&replica, &held);
        Ok(())
    }
}

/// What one node must do to hold what the registry wants there.
#[derive(Debug, Default, PartialEq)]
pub struct NodePlan {
    /// Versions to load (missing, or held with another artifact).
    pub load: Vec<LoadModel>,
    /// Versions of registry models held but unwanted for [`UNLOAD_GRACE`].
    pub unload: Vec<(String, u64)>,
}

/// Since when each unwanted version held by one node has been unwanted.
pub type UnwantedSince = HashMap<(String, u64), Instant>;

/// The diff between what node `node` holds and what `records` (and the
/// leader's `placement`, when there is one) want on it, at `now`. Pure: the
/// only state is `unwanted_since`, which it updates (a version planned for
/// unloading leaves it). Models the registry does not manage (preloaded
/// from a node's repository) are never unloaded.
pub fn plan_node(
    node: &str,
    records: &[ModelRecord],
    placement: Option<&Placement>,
    held: &[LoadedModel],
    unwanted_since: &mut UnwantedSince,
    now: Instant,
) -> anyhow::Result<NodePlan> {
    let placed_here = |model: &str, version: u64| placement.is_none_or(|p| p.places(model, version, node));
    // The registry's versions, and those loaded on demand that the leader
    // still places for requests waiting on them.
    let to_load: Vec<(&ModelRecord, u64)> = records
        .iter()
        .flat_map(|r| {
            let mut versions = r.versions_for_nodes();
            if placement.is_some() {
                versions.extend(
                    r.versions
                        .iter()
                        .filter(|(_, v)| v.config.replicas.min == 0 && v.config.platform.runs_on_nodes())
                        .map(|(n, _)| *n),
                );
                versions.sort_unstable();
                versions.dedup();
            }
            versions.into_iter().map(move |v| (r, v))
        })
        .filter(|(record, version)| placed_here(&record.name, *version))
        .collect();
    let mut plan = NodePlan::default();
    for &(record, number) in &to_load {
        let version = &record.versions[&number];
        let holds = held.iter().any(|m| {
            m.name == record.name && m.version == number && m.sha256.as_deref() == Some(&version.artifact.sha256)
        });
        if !holds {
            let placed = placement.and_then(|p| p.assignments.get(&Placement::key(&record.name, number)));
            let (memory_bytes, memory_measured) = match placed {
                Some(assignment) => (assignment.memory_bytes, assignment.memory_measured),
                None => (version.config.memory_needed(None, version.artifact.size), false),
            };
            plan.load.push(LoadModel {
                model: record.name.clone(),
                version: number,
                config: version.config.clone(),
                sha256: version.artifact.sha256.clone(),
                size: version.artifact.size,
                memory_bytes,
                memory_measured,
            });
        }
    }
    let wanted: BTreeSet<(&str, u64)> = to_load.iter().map(|(r, v)| (r.name.as_str(), *v)).collect();
    let managed: BTreeMap<&str, &ModelRecord> = records.iter().map(|r| (r.name.as_str(), r)).collect();
    for model in held {
        let Some(record) = managed.get(model.name.as_str()) else { continue };
        let key = (model.name.clone(), model.version);
        if wanted.contains(&(model.name.as_str(), model.version)) {
            unwanted_since.remove(&key);
            continue;
        }
        // A version loaded on demand that the leader took off this node was
        // evicted or went idle: requests routed to it meanwhile are sent
        // elsewhere or wait for a reload, so it goes at once.
        let on_demand = record.versions.get(&model.version).is_some_and(|v| v.config.replicas.min == 0);
        if on_demand && placement.is_some() {
            unwanted_since.remove(&key);
            plan.unload.push(key);
            continue;
        }
        let since = *unwanted_since.entry(key.clone()).or_insert(now);
        if now.duration_since(since) >= UNLOAD_GRACE {
            unwanted_since.remove(&key);
            plan.unload.push(key);
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use maas_cluster::placement::Assignment;
    use maas_protocol::ModelConfig;
    use maas_registry::{ArtifactRef, Lineage, VersionRecord};

    use super::*;

    fn config(name: &str) -> ModelConfig {
        serde_json::from_value(serde_json::json!({
            "name": name, "max_batch_size": 4, "version_policy": {"all": {}},
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}]
        }))
        .unwrap()
    }

    fn record(name: &str, versions: &[u64]) -> ModelRecord {
        let mut record = ModelRecord::new(name);
        for &version in versions {
            let config = config(name);
            let artifact = ArtifactRef { sha256: format!("{name}-{version}"), size: 10 };
            record.versions.insert(
                version,
                VersionRecord { version, config, artifact, lineage: Lineage::default(), engine_key: None },
            );
        }
        record
    }

    fn held(name: &str, version: u64, sha256: &str) -> LoadedModel {
        LoadedModel {
            name: name.into(),
            version,
            config: config(name),
            instances: 1,
            ready: true,
            sha256: Some(sha256.into()),
            memory_bytes: 10,
        }
    }

    fn loads(plan: &NodePlan) -> Vec<(&str, u64)> {
        plan.load.iter().map(|l| (l.model.as_str(), l.version)).collect()
    }

    #[test]
    fn missing_versions_and_other_artifacts_are_loaded() {
        let records = [record("a", &[1, 2])];
        let holding = [held("a", 1, "a-1"), held("a", 2, "stale")];
        let plan = plan_node("n", &records, None, &holding, &mut UnwantedSince::new(), Instant::now()).unwrap();
        assert_eq!(loads(&plan), vec![("a", 2)], "version 1 is held with its artifact; 2 with another");
        assert_eq!(plan.load[0].sha256, "a-2");
        assert!(plan.unload.is_empty());
    }

    #[test]
    fn only_versions_placed_on_the_node_are_loaded() {
        let records = [record("a", &[1]), record("b", &[1])];
        let mut placement = Placement::default();
        let assignment =
            |nodes: &[&str]| Assignment { nodes: nodes.iter().map(|n| n.to_string()).collect(), ..Default::default() };
        placement.assignments.insert(Placement::key("a", 1), assignment(&["n"]));
        placement.assignments.insert(Placement::key("b", 1), assignment(&["other"]));
        let plan = plan_node("n", &records, Some(&placement), &[], &mut UnwantedSince::new(), Instant::now()).unwrap();
        assert_eq!(loads(&plan), vec![("a", 1)]);
    }

    #[test]
    fn unwanted_versions_are_unloaded_after_the_grace_and_unmanaged_ones_never() {
        let mut records = [record("a", &[1, 2])];
        latest_only(&mut records[0]);
        let holding = [held("a", 1, "a-1"), held("a", 2, "a-2"), held("preloaded", 1, "p")];
        let mut unwanted = UnwantedSince::new();
        let start = Instant::now();
        let plan = plan_node("n", &records, None, &holding, &mut unwanted, start).unwrap();
        assert_eq!(plan, NodePlan::default(), "version 1 just became unwanted: it stays for the grace period");
        let plan = plan_node("n", &records, None, &holding, &mut unwanted, start + UNLOAD_GRACE / 2).unwrap();
        assert!(plan.unload.is_empty());
        let plan = plan_node("n", &records, None, &holding, &mut unwanted, start + UNLOAD_GRACE).unwrap();
        assert_eq!(plan.unload, vec![("a".to_string(), 1)], "the unmanaged model stays");
        assert!(unwanted.is_empty());
    }

    #[test]
    fn a_version_wanted_again_starts_its_grace_over() {
        let mut records = [record("a", &[1, 2])];
        latest_only(&mut records[0]);
        let holding = [held("a", 1, "a-1"), held("a", 2, "a-2")];
        let mut unwanted = UnwantedSince::new();
        let start = Instant::now();
        plan_node("n", &records, None, &holding, &mut unwanted, start).unwrap();
        // An alias now points at version 1: wanted again.
        records[0].aliases.insert("production".into(), maas_registry::AliasRecord { version: 1, history: vec![] });
        plan_node("n", &records, None, &holding, &mut unwanted, start + UNLOAD_GRACE / 2).unwrap();
        assert!(unwanted.is_empty());
        records[0].aliases.clear();
        let plan = plan_node("n", &records, None, &holding, &mut unwanted, start + UNLOAD_GRACE).unwrap();
        assert!(plan.unload.is_empty(), "the grace restarted when the version became unwanted again");
    }

    /// Every version's policy becomes "the newest one".
    fn latest_only(record: &mut ModelRecord) {
        for version in record.versions.values_mut() {
            version.config.version_policy = maas_protocol::VersionPolicy::Latest { num_versions: 1 };
        }
    }
}
