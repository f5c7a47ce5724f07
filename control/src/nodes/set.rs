//! The nodes this coordinator links to: fixed by `--node`, or followed from
//! etcd membership, where a node whose lease lapses is removed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use maas_cluster::placement::{CachedArtifacts, Held, Measured, Placement};
use parking_lot::RwLock;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::control::ControlPlane;
use super::{spawn_supervisor, NodeLink};
use crate::metrics;
use maas_serving::models::ModelTable;
use maas_serving::Replica;

/// How long a node's status may take when asked what it holds.
const STATUS_WITHIN: std::time::Duration = std::time::Duration::from_secs(1);

/// The longest wait for a departing node's batches before its connection closes.
const CLOSE_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

/// Each node's link, by name, with the task keeping it connected.
type Links = BTreeMap<String, (Arc<NodeLink>, JoinHandle<()>)>;

/// Every node link with the task keeping it connected.
pub struct NodeSet {
    links: RwLock<Links>,
    endpoint: quinn::Endpoint,
    control: Arc<ControlPlane>,
    table: Arc<ModelTable>,
    link_up: Arc<Notify>,
    max_frame_bytes: usize,
}

impl NodeSet {
    /// An empty set dialing through `endpoint`, with control sessions from `control`.
    pub fn new(
        endpoint: quinn::Endpoint,
        control: Arc<ControlPlane>,
        table: Arc<ModelTable>,
        link_up: Arc<Notify>,
        max_frame_bytes: usize,
    ) -> Arc<NodeSet> {
        Arc::new(NodeSet { links: RwLock::new(BTreeMap::new()), endpoint, control, table, link_up, max_frame_bytes })
    }

    /// Links to `name` at `addr`, replacing a link to another address.
    pub fn add(&self, name: &str, addr: SocketAddr) {
        if self.links.read().get(name).is_some_and(|(link, _)| link.addr == addr) {
            return;
        }
        self.remove(name);
        let link = Arc::new(NodeLink::new(name.to_string(), addr, self.max_frame_bytes));
        let task = spawn_supervisor(
            link.clone(),
            self.endpoint.clone(),
            self.control.clone(),
            self.table.clone(),
            self.link_up.clone(),
        );
        tracing::info!(node = name, %addr, "node joined");
        self.links.write().insert(name.to_string(), (link, task));
    }

    /// Drops the link to `name`: its replicas get no new batches at once,
    /// and the connection closes once the batches in flight are answered
    /// (a draining node still answers them; a dead one fails them, and they
    /// are retried elsewhere).
    pub fn remove(&self, name: &str) {
        let Some((link, task)) = self.links.write().remove(name) else { return };
        task.abort();
        link.set_up(false);
        let replica: Arc<dyn Replica> = link.clone();
        self.table.attach(&replica, &[]);
        metrics::node_link_changed(name, false);
        tracing::warn!(node = name, "node left");
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            while link.outstanding() > 0 && started.elapsed() < CLOSE_AFTER {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            link.close();
        });
    }

    /// Keeps exactly `nodes` (name, address).
    pub fn sync(&self, nodes: &[(String, SocketAddr)]) {
        let gone: Vec<String> =
            self.links.read().keys().filter(|name| !nodes.iter().any(|(n, _)| n == *name)).cloned().collect();
        for name in gone {
            self.remove(&name);
        }
        for (name, addr) in nodes {
            self.add(name, *addr);
        }
    }

    /// What the linked nodes hold, from their live status: the artifacts
    /// in each one's cache, what each loaded version was measured to take,
    /// and the memory each version counts on each node. A node that does not answer within a second is left out.
    pub async fn observe(&self) -> (CachedArtifacts, Measured, Held) {
        let links: Vec<Arc<NodeLink>> = self.list().into_iter().filter(|l| l.is_up()).collect();
        let asked = links.iter().map(|link| async move {
            let status = tokio::time::timeout(STATUS_WITHIN, link.status()).await;
            Some((link.name.clone(), status.ok()?.ok()?))
        });
        let mut cached = CachedArtifacts::new();
        let mut measured = Measured::new();
        let mut held = Held::new();
        for (name, status) in futures_util::future::join_all(asked).await.into_iter().flatten() {
            for model in status.models.iter().filter(|m| m.measured_bytes > 0) {
                measured.insert(Placement::key(&model.name, model.version), model.measured_bytes);
            }
            // A load undone for memory measured more than placement counted.
            for model in &status.refused {
                let figure = measured.entry(Placement::key(&model.name, model.version)).or_default();
                *figure = (*figure).max(model.measured_bytes);
            }
            let versions = status.models.iter().map(|m| (Placement::key(&m.name, m.version), m.memory_bytes)).collect();
            held.insert(name.clone(), versions);
            cached.insert(name, status.cached_artifacts.into_iter().collect());
        }
        (cached, measured, held)
    }

    /// The link to `name`, if any.
    pub fn get(&self, name: &str) -> Option<Arc<NodeLink>> {
        self.links.read().get(name).map(|(link, _)| link.clone())
    }

    /// Every link.
    pub fn list(&self) -> Vec<Arc<NodeLink>> {
        self.links.read().values().map(|(link, _)| link.clone()).collect()
    }
}
