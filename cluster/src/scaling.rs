//! Replicas that follow load. Between a version's `replicas.min` (at least
//! one while it is wanted, for a version loaded on demand) and its
//! `replicas.max`, the leader adds a replica when the requests in flight
//! per replica (summed over the coordinators' demand reports) have stayed
//! above the version's target for `up_after`, and removes one when they
//! would have fitted in one replica fewer at half the target for
//! `down_after` (the cool-down). One step at a time, each waiting its own
//! period again. The decision and its reason are stored in the placement's
//! assignment (`wanted`, `scaling`), so a new leader starts from them.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use maas_registry::ModelRecord;

use crate::demand::Demand;
use crate::placement::{Placement, Scaled};

/// How quickly replicas follow load.
#[derive(Debug, Clone, Copy)]
pub struct ScalingSettings {
    /// How long load must stay above the target before a replica is added.
    pub up_after: Duration,
    /// How long load must fit in fewer replicas before one is removed.
    pub down_after: Duration,
}

/// Since when a version's load has been above its target, or low enough
/// for one replica fewer.
#[derive(Debug, Default)]
struct Trend {
    above_since: Option<Instant>,
    below_since: Option<Instant>,
}

/// The leader's scaling state across placement rounds.
#[derive(Debug, Default)]
pub struct Scaler {
    trends: HashMap<String, Trend>,
}

impl Scaler {
    /// The replicas every version that can scale should have at `now`,
    /// given the current placement and the coordinators' demand. Versions
    /// with a fixed count, and versions loaded on demand that nobody wants,
    /// are left out (placement gives them `min`, or nothing).
    pub fn decide(
        &mut self,
        records: &[ModelRecord],
        current: &Placement,
        demand: &Demand,
        settings: ScalingSettings,
        now: Instant,
    ) -> BTreeMap<String, Scaled> {
        let mut decided = BTreeMap::new();
        for record in records {
            for version in record.versions_for_nodes() {
                let config = &record.versions[&version].config;
                let key = Placement::key(&record.name, version);
                let want = demand.get(&key);
                let floor = config.replicas.min.max(1);
                if config.replicas.max <= floor || (config.replicas.min == 0 && want.is_none()) {
                    continue;
                }
                let held = current.assignments.get(&key);
                let replicas = held.map_or(floor, |a| a.wanted).clamp(floor, config.replicas.max);
                let in_flight = want.map_or(0, |w| w.in_flight);
                let trend = self.trends.entry(key.clone()).or_default();
                let step = trend.step(
                    replicas,
                    floor,
                    config.replicas.max,
                    in_flight,
                    config.target_in_flight(),
                    settings,
                    now,
                );
                let scaled = match step {
                    Some((replicas, reason)) => {
                        tracing::info!(version = %key, replicas, reason = %reason, "scaled");
                        Scaled { replicas, reason: Some(reason) }
                    }
                    None => Scaled { replicas, reason: held.and_then(|a| a.scaling.clone()) },
                };
                decided.insert(key, scaled);
            }
        }
        self.trends.retain(|key, _| decided.contains_key(key));
        decided
    }
}

impl Trend {
    /// One replica more or fewer, with the reason, once the load has asked
    /// for it long enough.
    #[allow(clippy::too_many_arguments)]
    fn step(
        &mut self,
        replicas: u32,
        floor: u32,
        max: u32,
        in_flight: u32,
        target: u32,
        settings: ScalingSettings,
        now: Instant,
    ) -> Option<(u32, String)> {
        let above = replicas < max && in_flight > target.saturating_mul(replicas);
        let fits_fewer = replicas > floor && u64::from(in_flight) * 2 <= u64::from(target) * u64::from(replicas - 1);
        if !above {
            self.above_since = None;
        }
        if !fits_fewer {
            self.below_since = None;
        }
        let load = format!("{in_flight} requests in flight over {replicas} replica(s), target {target} per replica");
        if above {
            let since = *self.above_since.get_or_insert(now);
            if now.duration_since(since) >= settings.up_after {
                self.above_since = None;
                let held = now.duration_since(since).as_secs();
                return Some((replicas + 1, format!("added a replica: {load}, above it for {held} s")));
            }
        }
        if fits_fewer {
            let since = *self.below_since.get_or_insert(now);
            if now.duration_since(since) >= settings.down_after {
                self.below_since = None;
                let held = now.duration_since(since).as_secs();
                return Some((replicas - 1, format!("removed a replica: {load}, fitting in fewer for {held} s")));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demand::Want;
    use crate::placement::Assignment;
    use maas_protocol::ModelConfig;
    use maas_registry::{ArtifactRef, Lineage, VersionRecord};

    const SETTINGS: ScalingSettings =
        ScalingSettings { up_after: Duration::from_secs(3), down_after: Duration::from_secs(30) };

    fn record(min: u32, max: u32, target: u32) -> ModelRecord {
        let config: ModelConfig = serde_json::from_value(serde_json::json!({
            "name": "m", "max_batch_size": 8,
            "replicas": {"min": min, "max": max, "target_in_flight": target},
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 1]}],
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 1]}],
        }))
        .unwrap();
        let mut record = ModelRecord::new("m");
        let artifact = ArtifactRef { sha256: "a".repeat(64), size: 1 };
        record
            .versions
            .insert(1, VersionRecord { version: 1, config, artifact, lineage: Lineage::default(), engine_key: None });
        record
    }

    fn demand(in_flight: u32) -> Demand {
        [("m/1".to_string(), Want { busy: in_flight > 0, last_used_s: 1, in_flight, busy_since_ms: 1 })].into()
    }

    fn placed(replicas: u32) -> Placement {
        let assignment = Assignment { wanted: replicas, ..Assignment::default() };
        Placement { assignments: [("m/1".to_string(), assignment)].into(), ..Placement::default() }
    }

    #[test]
    fn a_replica_is_added_only_after_load_stays_above_the_target() {
        let records = [record(1, 3, 4)];
        let mut scaler = Scaler::default();
        let start = Instant::now();
        let decide = |scaler: &mut Scaler, replicas, in_flight, at| {
            scaler.decide(&records, &placed(replicas), &demand(in_flight), SETTINGS, start + at)["m/1"].clone()
        };
        assert_eq!(decide(&mut scaler, 1, 10, Duration::ZERO).replicas, 1, "not yet");
        assert_eq!(decide(&mut scaler, 1, 10, Duration::from_secs(2)).replicas, 1);
        // A dip below the target starts the wait over.
        assert_eq!(decide(&mut scaler, 1, 3, Duration::from_millis(2500)).replicas, 1);
        assert_eq!(decide(&mut scaler, 1, 10, Duration::from_secs(3)).replicas, 1);
        let up = decide(&mut scaler, 1, 10, Duration::from_secs(6));
        assert_eq!(up.replicas, 2, "{up:?}");
        assert!(up.reason.as_deref().unwrap().starts_with("added a replica: 10 requests in flight over 1 replica"));
        // Never past max.
        assert_eq!(decide(&mut scaler, 3, 100, Duration::from_secs(7)).replicas, 3);
        assert_eq!(decide(&mut scaler, 3, 100, Duration::from_secs(60)).replicas, 3);
    }

    #[test]
    fn a_replica_is_removed_after_the_cool_down_and_never_below_min() {
        let records = [record(2, 4, 4)];
        let mut scaler = Scaler::default();
        let start = Instant::now();
        let decide = |scaler: &mut Scaler, replicas, in_flight, at| {
            scaler.decide(&records, &placed(replicas), &demand(in_flight), SETTINGS, start + at)["m/1"].clone()
        };
        // 4 in flight over 3 replicas would fit in 2 at half the target of 4.
        assert_eq!(decide(&mut scaler, 3, 4, Duration::ZERO).replicas, 3);
        assert_eq!(decide(&mut scaler, 3, 4, Duration::from_secs(29)).replicas, 3, "cooling down");
        let down = decide(&mut scaler, 3, 4, Duration::from_secs(30));
        assert_eq!(down.replicas, 2, "{down:?}");
        assert!(down.reason.as_deref().unwrap().starts_with("removed a replica"));
        // Idle, it stays at min.
        assert_eq!(decide(&mut scaler, 2, 0, Duration::from_secs(100)).replicas, 2);
        assert_eq!(decide(&mut scaler, 2, 0, Duration::from_secs(200)).replicas, 2);
    }

    #[test]
    fn fixed_counts_and_unwanted_versions_on_demand_are_left_to_placement() {
        let mut scaler = Scaler::default();
        let now = Instant::now();
        let fixed = scaler.decide(&[record(2, 2, 1)], &placed(2), &demand(50), SETTINGS, now);
        assert!(fixed.is_empty());
        let unwanted = scaler.decide(&[record(0, 3, 1)], &placed(1), &Demand::new(), SETTINGS, now);
        assert!(unwanted.is_empty());
        let wanted = scaler.decide(&[record(0, 3, 1)], &Placement::default(), &demand(1), SETTINGS, now);
        assert_eq!(wanted["m/1"].replicas, 1, "a version on demand scales from one replica");
    }
}
