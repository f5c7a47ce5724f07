//! This coordinator's demand for versions loaded on demand: every quarter
//! second, and at once when a request starts waiting for a cold version,
//! the versions with `replicas.min: 0` that have a request in flight or
//! served one within the idle time, and the versions that may scale with
//! requests in flight, each with when it was last used and how many are in
//! flight, are published for the leader
//! ([`maas_cluster::demand`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use maas_cluster::demand::{report_demand, Demand, Want};
use maas_cluster::placement::Placement;
use maas_registry::etcd_client::Client;
use maas_serving::models::ModelTable;
use tokio::sync::watch;

/// How often the demand is recomputed without a nudge.
const EVERY: Duration = Duration::from_millis(250);

/// Publishes what `table` wants loaded, as coordinator `name`, with a
/// lease of `ttl`; a version idle for `idle_after` is wanted no more.
pub fn spawn_demand_reporting(
    client: Client,
    prefix: String,
    name: String,
    ttl: Duration,
    table: Arc<ModelTable>,
    idle_after: Duration,
) {
    let (sender, receiver) = watch::channel(Demand::new());
    tokio::spawn(report_demand(client, prefix, name, ttl, receiver));
    tokio::spawn(async move {
        loop {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
            let wanted: Demand = table
                .wanted_versions(idle_after)
                .into_iter()
                .map(|wanted| {
                    // Whole seconds, so that steady traffic does not rewrite
                    // the report on every tick.
                    let last_used_s = now.saturating_sub(wanted.idle_for).as_secs();
                    // Whole quarter seconds: the order of waiting versions
                    // needs no more, and a steady figure is not rewritten.
                    let busy_since_ms = wanted.busy_for.map_or(0, |busy| quarter_ms(now.saturating_sub(busy)).max(1));
                    let want =
                        Want { busy: wanted.in_flight > 0, last_used_s, in_flight: wanted.in_flight, busy_since_ms };
                    (Placement::key(&wanted.name, wanted.version), want)
                })
                .collect();
            sender.send_if_modified(|current| {
                let changed = *current != wanted;
                *current = wanted;
                changed
            });
            tokio::select! {
                _ = table.demand_nudged() => {}
                _ = tokio::time::sleep(EVERY) => {}
            }
        }
    });
}

/// `time` in milliseconds since the Unix epoch, rounded down to a quarter
/// second.
fn quarter_ms(time: Duration) -> u64 {
    let ms = time.as_millis() as u64;
    ms - ms % 250
}
