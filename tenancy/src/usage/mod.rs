//! Usage metering: per tenant × model version, requests, rows, errors,
//! tensor bytes in and out, and node compute time.
//!
//! The serving path records each request in a [`UsageMeter`] (three map
//! lookups under one lock, no allocation once a tenant and model are known).
//! Every few seconds a flusher moves what was counted into the
//! [`UsageStore`] — etcd, or a file on one machine — as one record per
//! minute and writer, and adds it to the Prometheus counters (labels:
//! tenant, model, version; never keys or request ids). A writer is one run
//! of one coordinator (its name and a random suffix), so a restarted
//! coordinator never overwrites what it wrote before: after a crash only the
//! counts since the last flush are lost. [`UsageMeter::query`] sums the
//! stored minutes of a range and this coordinator's unflushed counts.

mod counts;
mod store;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use parking_lot::Mutex;
use rand::RngCore;

pub use counts::{UsageCounts, UsageEntry, UsageKey};
pub use store::{EtcdUsageStore, FileUsageStore, UsageStore};

/// Seconds per stored bucket.
pub const BUCKET_SECONDS: u64 = 60;

type Pending = HashMap<String, HashMap<String, HashMap<u64, UsageCounts>>>;

/// Counts use and flushes it to a [`UsageStore`].
pub struct UsageMeter {
    pending: Mutex<Pending>,
    store: Arc<dyn UsageStore>,
    writer: String,
    flushes: AtomicU64,
}

impl UsageMeter {
    /// A meter for coordinator `name`, storing into `store`.
    pub fn new(name: &str, store: Arc<dyn UsageStore>) -> Arc<UsageMeter> {
        let mut suffix = [0u8; 4];
        rand::rng().fill_bytes(&mut suffix);
        let writer = format!("{name}-{}", hex::encode(suffix));
        Arc::new(UsageMeter { pending: Mutex::new(HashMap::new()), store, writer, flushes: AtomicU64::new(0) })
    }

    /// Counts one request of `tenant` on `model` `version`.
    pub fn record(&self, tenant: &str, model: &str, version: u64, used: &UsageCounts) {
        let mut pending = self.pending.lock();
        let models = match pending.get_mut(tenant) {
            Some(models) => models,
            None => pending.entry(tenant.to_string()).or_default(),
        };
        let versions = match models.get_mut(model) {
            Some(versions) => versions,
            None => models.entry(model.to_string()).or_default(),
        };
        *versions.entry(version).or_default() += *used;
    }

    fn flushed(&self) {
        self.flushes.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("maas_usage_flushes_total").increment(1);
    }

    /// Flushes completed so far.
    pub fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    /// Moves the counts into the store (and Prometheus); on a store failure
    /// they are kept for the next flush.
    pub async fn flush(&self) -> Result<()> {
        let taken = std::mem::take(&mut *self.pending.lock());
        let entries = flatten(taken);
        if entries.is_empty() {
            self.flushed();
            return Ok(());
        }
        let bucket = now_unix() / BUCKET_SECONDS;
        match self.store.merge(bucket, &self.writer, &entries).await {
            Ok(()) => {
                for entry in &entries {
                    export(entry);
                }
                self.flushed();
                Ok(())
            }
            Err(error) => {
                for entry in entries {
                    self.record(&entry.key.tenant, &entry.key.model, entry.key.version, &entry.counts);
                }
                Err(error)
            }
        }
    }

    /// Flushes every `every` until the meter is dropped.
    pub fn spawn_flusher(self: &Arc<Self>, every: Duration) {
        let meter = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(meter) = meter.upgrade() else { return };
                if let Err(error) = meter.flush().await {
                    tracing::warn!(%error, "could not store usage; keeping it for the next flush");
                }
            }
        });
    }

    /// Use in `[from, to)` (seconds since the epoch, widened to whole
    /// minutes), of `tenant` or of all, summed per tenant × model version:
    /// every coordinator's stored minutes and this one's unflushed counts.
    pub async fn query(&self, from: u64, to: u64, tenant: Option<&str>) -> Result<Vec<UsageEntry>> {
        let (first, last) = (from / BUCKET_SECONDS, to.saturating_sub(1) / BUCKET_SECONDS);
        let mut sums: BTreeMap<UsageKey, UsageCounts> = BTreeMap::new();
        let stored = self.store.range(first, last).await?;
        let now = now_unix();
        let unflushed = if (from..to.max(from + 1)).contains(&now) || to > now {
            flatten(self.pending.lock().clone())
        } else {
            Vec::new()
        };
        for entry in stored.into_iter().chain(unflushed) {
            if tenant.is_none_or(|t| t == entry.key.tenant) {
                *sums.entry(entry.key).or_default() += entry.counts;
            }
        }
        Ok(sums.into_iter().map(|(key, counts)| UsageEntry { key, counts }).collect())
    }
}

fn flatten(pending: Pending) -> Vec<UsageEntry> {
    let mut entries = Vec::new();
    for (tenant, models) in pending {
        for (model, versions) in models {
            for (version, counts) in versions {
                let key = UsageKey { tenant: tenant.clone(), model: model.clone(), version };
                entries.push(UsageEntry { key, counts });
            }
        }
    }
    entries
}

/// Adds a flushed entry to the Prometheus counters.
fn export(entry: &UsageEntry) {
    let labels = [
        ("tenant", entry.key.tenant.clone()),
        ("model", entry.key.model.clone()),
        ("version", entry.key.version.to_string()),
    ];
    let counts = &entry.counts;
    metrics::counter!("maas_usage_requests_total", &labels).increment(counts.requests);
    metrics::counter!("maas_usage_rows_total", &labels).increment(counts.rows);
    metrics::counter!("maas_usage_errors_total", &labels).increment(counts.errors);
    metrics::counter!("maas_usage_bytes_in_total", &labels).increment(counts.bytes_in);
    metrics::counter!("maas_usage_bytes_out_total", &labels).increment(counts.bytes_out);
    metrics::counter!("maas_usage_compute_microseconds_total", &labels).increment(counts.compute_us);
}

/// Seconds since the epoch.
pub fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(rows: u64, failed: bool) -> UsageCounts {
        UsageCounts {
            requests: 1,
            rows,
            errors: u64::from(failed),
            bytes_in: 16 * rows,
            bytes_out: 4 * rows,
            compute_us: 10,
            ..UsageCounts::default()
        }
    }

    #[tokio::test]
    async fn counts_are_summed_across_flushes_writers_and_the_unflushed_rest() {
        let dir = std::env::temp_dir().join(format!("maas-usage-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store: Arc<dyn UsageStore> = Arc::new(FileUsageStore::open(&dir).unwrap());
        let first = UsageMeter::new("c1", store.clone());
        first.record("a", "m", 1, &one(2, false));
        first.record("a", "m", 1, &one(3, true));
        first.flush().await.unwrap();
        first.record("a", "m", 1, &one(1, false));
        // A second writer (another coordinator, or this one restarted).
        let second = UsageMeter::new("c1", Arc::new(FileUsageStore::open(&dir).unwrap()));
        second.record("b", "m", 2, &one(4, false));
        second.flush().await.unwrap();
        let now = now_unix();
        let all = first.query(now - 120, now + 60, None).await.unwrap();
        let a = all.iter().find(|e| e.key.tenant == "a").unwrap();
        assert_eq!((a.counts.requests, a.counts.rows, a.counts.errors), (3, 6, 1));
        assert_eq!(a.counts.bytes_in, 96);
        let only_b = first.query(now - 120, now + 60, Some("b")).await.unwrap();
        assert_eq!(only_b.len(), 1);
        assert_eq!((only_b[0].key.version, only_b[0].counts.rows), (2, 4));
        // What was flushed survives the meter; the unflushed part does not.
        drop(first);
        let reopened = UsageMeter::new("c1", Arc::new(FileUsageStore::open(&dir).unwrap()));
        let after = reopened.query(now - 120, now + 60, Some("a")).await.unwrap();
        assert_eq!((after[0].counts.requests, after[0].counts.rows), (2, 5));
        // A range that ended before the counts has nothing.
        assert!(reopened.query(now - 7200, now - 3600, None).await.unwrap().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
