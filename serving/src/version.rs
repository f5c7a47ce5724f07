//! One version as the batcher and dispatcher see it: its name, its
//! configuration, its metrics and monitor, and the replicas that hold it.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use maas_monitor::VersionMonitor;
use maas_protocol::ModelConfig;
use parking_lot::RwLock;
use tokio::sync::watch;

use crate::activity::Activity;
use crate::error::ServeError;
use crate::metrics::VersionMetrics;
use crate::replica::{self, Replica};

/// A node holding a version, and how many batches it may run at once.
#[derive(Clone)]
struct Held {
    node: Arc<dyn Replica>,
    slots: usize,
}

/// The replicas of one version.
pub struct ReplicaSet {
    replicas: RwLock<Vec<Held>>,
    /// Ticks at every change, waking every watcher: the batcher and any
    /// batch waiting for a replica may wait at once.
    changes: watch::Sender<()>,
}

impl Default for ReplicaSet {
    fn default() -> Self {
        ReplicaSet { replicas: RwLock::default(), changes: watch::Sender::new(()) }
    }
}

impl ReplicaSet {
    /// Batches the version may have in flight over all replicas that are up.
    pub fn capacity(&self) -> usize {
        self.replicas.read().iter().filter(|r| r.node.is_up()).map(|r| r.slots).sum()
    }

    /// Replicas whose link is up.
    pub fn ready_count(&self) -> usize {
        self.replicas.read().iter().filter(|r| r.node.is_up()).count()
    }

    /// The up replica with the fewest outstanding batches, skipping `tried`.
    pub fn least_outstanding(&self, tried: &[Arc<dyn Replica>]) -> Option<Arc<dyn Replica>> {
        self.replicas
            .read()
            .iter()
            .filter(|r| r.node.is_up() && !tried.iter().any(|t| replica::same(t, &r.node)))
            .min_by_key(|r| r.node.outstanding())
            .map(|r| r.node.clone())
    }

    /// A watcher whose `changed()` resolves at the first change of the
    /// replicas after this call (or after its last `borrow_and_update`).
    /// Take it before looking at the replicas, so no change in between is
    /// missed.
    pub fn watch(&self) -> watch::Receiver<()> {
        self.changes.subscribe()
    }

    /// Wakes every watcher without a change of replicas (the reason a
    /// version cannot be loaded changed).
    pub(crate) fn wake(&self) {
        self.changes.send_replace(());
    }

    /// Sets how many batches `node` may take for the version (`None`: it
    /// holds no replica of it any more).
    pub fn set(&self, node: &Arc<dyn Replica>, slots: Option<usize>) {
        let mut replicas = self.replicas.write();
        let changed = match (replicas.iter_mut().find(|r| replica::same(&r.node, node)), slots) {
            (Some(held), Some(slots)) => std::mem::replace(&mut held.slots, slots) != slots,
            (Some(_), None) => {
                replicas.retain(|r| !replica::same(&r.node, node));
                true
            }
            (None, Some(slots)) => {
                replicas.push(Held { node: node.clone(), slots });
                true
            }
            (None, None) => false,
        };
        drop(replicas);
        if changed {
            self.changes.send_replace(());
        }
    }
}

/// What a version's batcher and dispatcher share.
pub struct VersionShared {
    /// Model name.
    pub name: String,
    /// Version number.
    pub version: u64,
    /// Its Prometheus series, registered at its first request.
    pub metrics: OnceLock<VersionMetrics>,
    /// Its configuration.
    pub config: Arc<ModelConfig>,
    /// Nodes holding it.
    pub replicas: ReplicaSet,
    /// Largest frame sent to a node.
    pub max_frame_bytes: usize,
    /// Its statistics, signals and detectors.
    pub monitor: Arc<VersionMonitor>,
    /// Requests slower than this are logged with their batch and node.
    pub slow_request: Duration,
    /// Its recent use, for loading on demand.
    pub activity: Activity,
    /// Why no node can ever hold a replica, when none can (its memory
    /// exceeds every node's budget): requests for it then fail at once.
    pub fits_nowhere: RwLock<Option<String>>,
    /// The external engine's side, for an `openai_engine` version.
    pub engine: Option<EngineState>,
}

/// What the coordinator knows of a version's external engine.
#[derive(Debug, Default)]
pub struct EngineState {
    /// The bearer credential the engine asks for.
    pub key: Option<maas_registry::EngineKey>,
    /// Whether one of its URLs answered its last health check.
    pub up: std::sync::atomic::AtomicBool,
}

impl VersionShared {
    /// Its Prometheus series (registered at the first call).
    pub fn metrics(&self) -> &VersionMetrics {
        self.metrics.get_or_init(|| VersionMetrics::new(&self.name, self.version))
    }

    /// The error for a request that finds no replica up.
    pub fn no_replica_error(&self) -> ServeError {
        ServeError::Unavailable(format!("model '{}' version {} has no ready replica", self.name, self.version))
    }

    /// The error for a request to a version loaded on demand that no node
    /// can hold, if it is one.
    pub fn cannot_load_error(&self) -> Option<ServeError> {
        let reason = self.fits_nowhere.read();
        let reason = reason.as_deref()?;
        Some(ServeError::Unavailable(format!(
            "model '{}' version {} cannot be loaded: {reason}",
            self.name, self.version
        )))
    }

    /// Records why no node can hold it (`None`: some node can), waking its
    /// batcher when that changes.
    pub fn set_fits_nowhere(&self, reason: Option<String>) {
        let mut current = self.fits_nowhere.write();
        if *current != reason {
            *current = reason;
            drop(current);
            self.replicas.wake();
        }
    }

    /// Whether a replica is up (for an external engine's version: whether
    /// one of its URLs answers; a pipeline always is).
    pub fn is_ready(&self) -> bool {
        if self.config.platform == maas_protocol::Platform::Pipeline {
            // Its steps are resolved, and their readiness checked, per request.
            return true;
        }
        match &self.engine {
            Some(engine) => engine.up.load(std::sync::atomic::Ordering::Relaxed),
            None => self.replicas.capacity() > 0,
        }
    }

    /// Whether it is loaded on demand (`replicas.min: 0`): a request that
    /// finds no replica waits for one instead of failing at once. Never
    /// for an external engine's version.
    pub fn loads_on_demand(&self) -> bool {
        self.config.replicas.min == 0 && self.config.platform.runs_on_nodes()
    }
}
