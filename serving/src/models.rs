//! The models the coordinator can serve, their versions and replicas.
//!
//! Versions come from two places: the registry ([`ModelTable::apply_registry`],
//! which also sets each model's aliases and traffic split) and the nodes
//! (each node link reports what its node holds and [`ModelTable::attach`]
//! records the node as a replica). A batcher starts for each version the
//! first time it is seen. A version is ready while a replica's link is up.
//!
//! A request names a model and optionally a version, or `model@alias`.
//! Without either it goes to the model's traffic split when one is set, else
//! to its `production` alias, else to its newest ready version.

use maas_monitor::Monitor;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use maas_protocol::{LoadedModel, ModelConfig};
use maas_tenancy::{Caller, Role};
use parking_lot::RwLock;

use crate::batcher::{state::BatchPolicy, BatcherHandle};
use crate::error::{ServeError, ServeResult};
use crate::replica::Replica;
use crate::version::{EngineState, ReplicaSet, VersionShared};

/// A version this coordinator wants loaded, or more replicas of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedVersion {
    /// Model name.
    pub name: String,
    /// Version number.
    pub version: u64,
    /// Requests for it in flight now (some may wait for a replica).
    pub in_flight: u32,
    /// How long ago its last request arrived.
    pub idle_for: Duration,
    /// How long requests for it have been in flight without a break.
    pub busy_for: Option<Duration>,
}

/// A servable version: its shared state and its batcher.
pub struct ModelVersion {
    /// State shared with the batcher.
    pub shared: Arc<VersionShared>,
    /// Where requests go.
    pub batcher: BatcherHandle,
}

/// Batching settings applied to every version.
#[derive(Debug, Clone)]
pub struct TableSettings {
    /// Requests queued per version.
    pub max_queue: usize,
    /// Batches in flight per model instance.
    pub batches_per_instance: usize,
    /// Largest frame sent to a node.
    pub max_frame_bytes: usize,
    /// Requests slower than this are logged with their batch and node.
    pub slow_request: Duration,
}

/// The alias requests without a version go to when no split is set.
pub const DEFAULT_ALIAS: &str = "production";

/// How the registry routes one model's requests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Routing {
    /// Versions the registry holds.
    pub versions: BTreeSet<u64>,
    /// Alias targets.
    pub aliases: BTreeMap<String, u64>,
    /// Traffic split as (version, weight).
    pub split: Vec<(u64, u32)>,
    /// Whether the model is loaded (Triton's repository load / unload).
    pub loaded: bool,
    /// The tenant owning each version a tenant's key published.
    pub owners: BTreeMap<u64, String>,
}

/// Every known model version, by name then version.
pub struct ModelTable {
    models: RwLock<BTreeMap<String, BTreeMap<u64, Arc<ModelVersion>>>>,
    routing: RwLock<HashMap<String, Routing>>,
    settings: TableSettings,
    monitor: Arc<Monitor>,
    demand_nudge: tokio::sync::Notify,
}

impl ModelTable {
    /// An empty table whose versions report to `monitor`.
    pub fn new(settings: TableSettings, monitor: Arc<Monitor>) -> Self {
        ModelTable {
            models: RwLock::new(BTreeMap::new()),
            routing: RwLock::new(HashMap::new()),
            settings,
            monitor,
            demand_nudge: tokio::sync::Notify::new(),
        }
    }

    /// The monitor of every version.
    pub fn monitor(&self) -> &Arc<Monitor> {
        &self.monitor
    }

    /// The entry of `version` of `name`, if the registry wants it loaded,
    /// whatever routing says of it (readiness is looked at here before a
    /// rollout routes to it).
    pub fn entry(&self, name: &str, version: u64) -> Option<Arc<ModelVersion>> {
        self.models.read().get(name)?.get(&version).cloned()
    }

    /// Finds the version a request names. `model` may be `name@alias`;
    /// `version` is an explicit version number.
    pub fn resolve(&self, model: &str, version: Option<&str>) -> ServeResult<Arc<ModelVersion>> {
        let (name, alias) = match model.split_once('@') {
            Some((name, alias)) => (name, Some(alias)),
            None => (model, None),
        };
        if self.routing.read().get(name).is_some_and(|r| !r.loaded) {
            return Err(ServeError::Unavailable(format!(
                "model '{name}' is unloaded; load it with POST /v2/repository/models/{name}/load"
            )));
        }
        let models = self.models.read();
        let versions = models
            .get(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ServeError::ModelNotFound { model: name.to_string() })?;
        let not_found = |shown: String| ServeError::VersionNotFound { model: name.to_string(), version: shown };
        let number = {
            let routing_table = self.routing.read();
            let routing = routing_table.get(name);
            match (alias, version) {
                (Some(alias), _) => Some(
                    *routing
                        .and_then(|r| r.aliases.get(alias))
                        .ok_or_else(|| ServeError::RouteNotFound(format!("model '{name}' has no alias '{alias}'")))?,
                ),
                (None, Some(text)) => {
                    let number: u64 = text.parse().map_err(|_| not_found(text.to_string()))?;
                    if routing.is_some_and(|r| !r.versions.contains(&number)) {
                        return Err(not_found(text.to_string()));
                    }
                    Some(number)
                }
                (None, None) => routing.and_then(choose_default),
            }
        };
        match number {
            Some(number) => versions.get(&number).cloned().ok_or_else(|| not_found(number.to_string())),
            None => versions
                .values()
                .rev()
                .find(|v| v.shared.is_ready())
                .or_else(|| versions.values().next_back())
                .cloned()
                .ok_or_else(|| not_found(String::new())),
        }
    }

    /// Applies the registry: routing for every model, and a (not yet ready)
    /// entry for every version the registry wants loaded.
    pub fn apply_registry(&self, records: &[maas_registry::ModelRecord]) {
        let mut routing = HashMap::new();
        let mut models = self.models.write();
        for record in records {
            routing.insert(record.name.clone(), self.apply_versions(&mut models, record));
        }
        *self.routing.write() = routing;
    }

    /// Applies one model's record, the others unchanged (after a write of
    /// this coordinator's own: a registry of thousands is not read again).
    pub fn apply_record(&self, record: &maas_registry::ModelRecord) {
        let routing = self.apply_versions(&mut self.models.write(), record);
        self.routing.write().insert(record.name.clone(), routing);
    }

    /// Makes an entry for every version of `record` to load, drops those
    /// deleted, and returns the model's routing.
    fn apply_versions(
        &self,
        models: &mut BTreeMap<String, BTreeMap<u64, Arc<ModelVersion>>>,
        record: &maas_registry::ModelRecord,
    ) -> Routing {
        let versions = models.entry(record.name.clone()).or_default();
        for number in record.versions_to_load() {
            let stored = &record.versions[&number];
            versions.entry(number).or_insert_with(|| {
                let engine = (stored.config.platform == maas_protocol::Platform::OpenaiEngine)
                    .then(|| EngineState { key: stored.engine_key.clone(), up: Default::default() });
                self.new_version(record.name.clone(), number, stored.config.clone(), engine)
            });
        }
        // Versions deleted from the registry are no longer served.
        versions.retain(|number, _| record.versions.contains_key(number));
        Routing {
            versions: record.versions.keys().copied().collect(),
            aliases: record.aliases.iter().map(|(name, a)| (name.clone(), a.version)).collect(),
            split: record.split.iter().map(|s| (s.version, s.weight)).collect(),
            loaded: record.loaded,
            owners: record
                .versions
                .iter()
                .filter_map(|(number, v)| Some((*number, v.lineage.owner.clone()?)))
                .collect(),
        }
    }

    /// Whether `model` is served by nodes from their model repository: it
    /// has versions here and no record in the registry.
    pub fn served_from_repository(&self, model: &str) -> bool {
        let in_registry = self.routing.read().contains_key(model);
        !in_registry && self.models.read().get(model).is_some_and(|versions| !versions.is_empty())
    }

    /// Whether `caller`'s requests may build the drift reference of
    /// `model` `version`: those of its owner tenant's keys, or, for a
    /// version the operator published (or a node's repository holds), those
    /// of callers without a tenant key of their own.
    pub fn may_set_reference(&self, model: &str, version: u64, caller: &Caller) -> bool {
        let routing = self.routing.read();
        let owner = routing.get(model).and_then(|r| r.owners.get(&version));
        match (owner, caller.key()) {
            (Some(owner), Some(key)) => *owner == key.tenant,
            (Some(_), None) => false,
            (None, key) => key.is_none_or(|key| key.role == Role::Admin),
        }
    }

    /// Every version of every model, ordered.
    pub fn all(&self) -> Vec<Arc<ModelVersion>> {
        self.models.read().values().flat_map(|versions| versions.values().cloned()).collect()
    }

    /// The versions whose load the placement follows: those loaded on
    /// demand that are wanted now (a request for one is in flight, or one
    /// arrived within `idle_after`), and those with room to scale
    /// (`replicas.max` above `min`) that have requests in flight.
    pub fn wanted_versions(&self, idle_after: Duration) -> Vec<WantedVersion> {
        let now = std::time::Instant::now();
        self.models
            .read()
            .values()
            .flat_map(|versions| versions.values())
            .filter(|v| {
                let (shared, range) = (&v.shared, v.shared.config.replicas);
                match shared.loads_on_demand() {
                    true => shared.activity.is_wanted(idle_after, now),
                    false => range.max > range.min && shared.activity.is_busy(),
                }
            })
            .map(|v| WantedVersion {
                name: v.shared.name.clone(),
                version: v.shared.version,
                in_flight: v.shared.activity.in_flight(),
                idle_for: v.shared.activity.idle_for(now).unwrap_or_default(),
                busy_for: v.shared.activity.busy_for(now),
            })
            .collect()
    }

    /// Records for every version loaded on demand why no node can hold it
    /// (`reason_of` answers `None` when some node can).
    pub fn set_fits_nowhere(&self, reason_of: impl Fn(&str, u64) -> Option<String>) {
        for version in self.models.read().values().flat_map(|versions| versions.values()) {
            if version.shared.loads_on_demand() {
                version.shared.set_fits_nowhere(reason_of(&version.shared.name, version.shared.version));
            }
        }
    }

    /// Tells whoever reports demand that a request started waiting.
    pub fn nudge_demand(&self) {
        self.demand_nudge.notify_one();
    }

    /// Resolves at the next [`ModelTable::nudge_demand`].
    pub async fn demand_nudged(&self) {
        self.demand_nudge.notified().await
    }

    /// Whether any version can serve.
    pub fn any_ready(&self) -> bool {
        self.models.read().values().flat_map(|v| v.values()).any(|v| v.shared.is_ready())
    }

    /// Records exactly `loaded` as what `node` holds.
    pub fn attach(&self, node: &Arc<dyn Replica>, loaded: &[LoadedModel]) {
        let mut models = self.models.write();
        let mut held: HashMap<(String, u64), usize> = HashMap::new();
        for model in loaded.iter().filter(|m| m.ready) {
            let config = &model.config;
            if let Err(error) = config.check() {
                tracing::warn!(node = node.name(), model = %model.name, %error, "node sent an invalid config; skipped");
                continue;
            }
            let versions = models.entry(model.name.clone()).or_default();
            let entry = versions
                .entry(model.version)
                .or_insert_with(|| self.new_version(model.name.clone(), model.version, config.clone(), None));
            if *entry.shared.config != *config {
                tracing::warn!(
                    node = node.name(), model = %model.name, version = model.version,
                    "node's config differs from the one first seen; the first one is kept"
                );
            }
            let slots = model.instances.max(1) as usize * self.settings.batches_per_instance.max(1);
            held.insert((model.name.clone(), model.version), slots);
        }
        // One update per version, so no reader ever sees a replica that
        // stays vanish for a moment.
        for (name, versions) in models.iter() {
            for (number, version) in versions {
                version.shared.replicas.set(node, held.get(&(name.clone(), *number)).copied());
            }
        }
    }

    fn new_version(
        &self,
        name: String,
        version: u64,
        config: ModelConfig,
        engine: Option<EngineState>,
    ) -> Arc<ModelVersion> {
        let monitor = self.monitor.version(&name, version, &config);
        let policy = BatchPolicy {
            max_batch_rows: config.max_batch_size,
            max_delay: Duration::from_micros(config.max_queue_delay_us),
            max_queue: self.settings.max_queue,
        };
        let shared = Arc::new(VersionShared {
            name,
            version,
            metrics: Default::default(),
            config: Arc::new(config),
            replicas: ReplicaSet::default(),
            max_frame_bytes: self.settings.max_frame_bytes,
            monitor,
            slow_request: self.settings.slow_request,
            activity: Default::default(),
            fits_nowhere: Default::default(),
            engine,
        });
        let batcher = BatcherHandle::new(shared.clone(), policy);
        Arc::new(ModelVersion { shared, batcher })
    }
}

/// The version a request without one goes to: a weighted draw from the
/// split, else the default alias's target.
fn choose_default(routing: &Routing) -> Option<u64> {
    let total: u64 = routing.split.iter().map(|&(_, w)| u64::from(w)).sum();
    if total > 0 {
        let mut draw = rand::random_range(0..total);
        for &(version, weight) in &routing.split {
            if draw < u64::from(weight) {
                return Some(version);
            }
            draw -= u64::from(weight);
        }
    }
    routing.aliases.get(DEFAULT_ALIAS).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_draws_follow_weights() {
        let routing = Routing { split: vec![(1, 90), (2, 10)], ..Routing::default() };
        let draws = 20_000;
        let twos = (0..draws).filter(|_| choose_default(&routing) == Some(2)).count();
        let share = twos as f64 / draws as f64;
        assert!((0.08..0.12).contains(&share), "version 2 got {share}");
    }

    #[test]
    fn default_alias_without_split() {
        let mut routing = Routing::default();
        assert_eq!(choose_default(&routing), None);
        routing.aliases.insert(DEFAULT_ALIAS.into(), 3);
        assert_eq!(choose_default(&routing), Some(3));
    }
}
