//! Everything watched about one model version: its statistics, its signals
//! second by second, its detectors and its inputs' drift.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use maas_protocol::ModelConfig;
use parking_lot::Mutex;
use serde::Serialize;

use super::anomaly::{Detector, DetectorSettings};
use super::drift::{DriftSettings, InputDrift};
use super::stats::{BatchTimes, VersionStats};
use super::values::rows_as_f64;
use maas_protocol::TensorBytes;

/// Seconds of history kept for live views.
const RECENT_SECONDS: usize = 10;

/// The current second's counts.
struct Second {
    requests: u64,
    errors: u64,
    latency_ns: u64,
    batches: u64,
    rows: u64,
    /// Made at the second's first answer: an idle version holds none.
    latencies: Option<hdrhistogram::Histogram<u64>>,
}

impl Second {
    fn new() -> Second {
        Second { requests: 0, errors: 0, latency_ns: 0, batches: 0, rows: 0, latencies: None }
    }
}

/// A histogram of latencies in microseconds, up to an hour.
fn latency_histogram() -> hdrhistogram::Histogram<u64> {
    hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("valid histogram bounds")
}

/// One finished second, kept for the live view.
struct SecondSummary {
    requests: u64,
    errors: u64,
    batches: u64,
    rows: u64,
    latencies: Option<hdrhistogram::Histogram<u64>>,
}

/// A live view over the last seconds.
#[derive(Debug, Clone, Serialize)]
pub struct LiveView {
    /// Model name.
    pub model: String,
    /// Version.
    pub version: u64,
    /// Requests per second.
    pub requests_per_second: f64,
    /// Share of failed requests.
    pub error_rate: f64,
    /// Median latency of successful requests, in seconds.
    pub p50_seconds: Option<f64>,
    /// 99th percentile, in seconds.
    pub p99_seconds: Option<f64>,
    /// Mean rows per batch.
    pub mean_batch_rows: Option<f64>,
    /// Requests in flight now.
    pub in_flight: i64,
    /// Requests waiting in the batcher now.
    pub queued: u64,
}

/// One version's monitor.
pub struct VersionMonitor {
    /// Model name.
    pub model: String,
    /// Version.
    pub version: u64,
    /// Triton-style statistics.
    pub stats: VersionStats,
    second: Mutex<Second>,
    recent: Mutex<VecDeque<SecondSummary>>,
    pub(super) latency: Mutex<Detector>,
    pub(super) errors: Mutex<Detector>,
    pub(super) drift: Mutex<Vec<(String, Option<InputDrift>)>>,
    sample_every: u64,
    enabled: bool,
    seen: AtomicU64,
    in_flight: AtomicI64,
    queued: AtomicU64,
}

impl VersionMonitor {
    /// A monitor for a version with `config`; one request in `sample_every`
    /// feeds the drift profiles.
    /// With `enabled` false every call is a no-op (to measure what watching costs).
    pub fn new(
        model: &str,
        version: u64,
        config: &ModelConfig,
        drift: DriftSettings,
        sample_every: u64,
        enabled: bool,
    ) -> Arc<VersionMonitor> {
        let inputs = config
            .inputs
            .iter()
            .map(|spec| {
                let row_len: i64 = spec.shape.iter().skip(1).product();
                let numeric = spec.datatype.element_size().is_some() && row_len > 0;
                let tracked = numeric.then(|| InputDrift::new(drift, row_len as usize));
                (spec.name.clone(), tracked)
            })
            .collect();
        Arc::new(VersionMonitor {
            model: model.to_string(),
            version,
            stats: VersionStats::default(),
            second: Mutex::new(Second::new()),
            recent: Mutex::new(VecDeque::new()),
            latency: Mutex::new(Detector::new(DetectorSettings::latency())),
            errors: Mutex::new(Detector::new(DetectorSettings::error_rate())),
            drift: Mutex::new(inputs),
            sample_every: sample_every.max(1),
            enabled,
            seen: AtomicU64::new(0),
            in_flight: AtomicI64::new(0),
            queued: AtomicU64::new(0),
        })
    }

    /// A request was admitted; the guard counts it in flight until dropped.
    pub fn admit(self: &Arc<Self>) -> Option<InFlightGuard> {
        if !self.enabled {
            return None;
        }
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Some(InFlightGuard(self.clone()))
    }

    /// Sets how many requests wait in the batcher.
    pub fn set_queued(&self, queued: usize) {
        self.queued.store(queued as u64, Ordering::Relaxed);
    }

    /// Requests in flight and queued now.
    pub fn load(&self) -> (i64, u64) {
        (self.in_flight.load(Ordering::Relaxed), self.queued.load(Ordering::Relaxed))
    }

    /// Counts an answered request.
    pub fn request_done(&self, ok: bool, elapsed: Duration) {
        if !self.enabled {
            return;
        }
        self.stats.request(ok, elapsed);
        let mut second = self.second.lock();
        second.requests += 1;
        if ok {
            let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
            second.latency_ns += ns;
            let _ = second.latencies.get_or_insert_with(latency_histogram).record((ns / 1000).max(1));
        } else {
            second.errors += 1;
        }
    }

    /// Counts a batch leaving the queue: each request's wait.
    pub fn batch_dispatched(&self, waits: impl Iterator<Item = Duration>) {
        if self.enabled {
            self.stats.queued(waits);
        }
    }

    /// Counts a batch run on a node.
    pub fn batch_done(&self, rows: u64, requests: u64, times: BatchTimes) {
        if !self.enabled {
            return;
        }
        self.stats.batch(rows, requests, times);
        let mut second = self.second.lock();
        second.batches += 1;
        second.rows += rows;
    }

    /// Feeds a validated request's inputs to the drift profiles, if this
    /// request is sampled. While a reference profile is still being built,
    /// only requests for which `may_set_reference` says yes feed it (the
    /// version owner's), so other traffic cannot choose what is normal.
    pub fn observe_inputs(&self, inputs: &[TensorBytes], may_set_reference: impl FnOnce() -> bool) {
        if !self.enabled || !self.seen.fetch_add(1, Ordering::Relaxed).is_multiple_of(self.sample_every) {
            return;
        }
        let mut drift = self.drift.lock();
        let building = drift.iter().any(|(_, tracked)| tracked.as_ref().is_some_and(|t| !t.has_reference()));
        if building && !may_set_reference() {
            return;
        }
        for ((_, tracked), input) in drift.iter_mut().zip(inputs) {
            if let Some(tracked) = tracked {
                if let Some((values, row_len)) = rows_as_f64(input, usize::MAX) {
                    tracked.observe(&values, row_len);
                }
            }
        }
    }

    /// Ends the current second and returns its summary (also kept for the
    /// live view).
    pub(super) fn roll_second(&self) -> (u64, u64, Option<f64>) {
        let finished = std::mem::replace(&mut *self.second.lock(), Second::new());
        let successes = finished.requests - finished.errors;
        let mean_latency = (successes > 0).then(|| finished.latency_ns as f64 * 1e-9 / successes as f64);
        let summary = (finished.requests, finished.errors, mean_latency);
        let mut recent = self.recent.lock();
        // An idle version keeps no seconds at all.
        if finished.requests == 0 && finished.batches == 0 && recent.iter().all(|s| s.requests == 0 && s.batches == 0) {
            recent.clear();
            return summary;
        }
        recent.push_back(SecondSummary {
            requests: finished.requests,
            errors: finished.errors,
            batches: finished.batches,
            rows: finished.rows,
            latencies: finished.latencies,
        });
        while recent.len() > RECENT_SECONDS {
            recent.pop_front();
        }
        summary
    }

    /// Each numeric input's drift score, `None` while its reference
    /// profile is being built.
    pub fn drift_scores(&self) -> Vec<(String, Option<f64>)> {
        let drift = self.drift.lock();
        drift.iter().filter_map(|(name, tracked)| tracked.as_ref().map(|t| (name.clone(), t.score()))).collect()
    }

    /// Rates and latency percentiles over the last seconds.
    pub fn live_view(&self) -> LiveView {
        let recent = self.recent.lock();
        let seconds = recent.len().max(1) as f64;
        let requests: u64 = recent.iter().map(|s| s.requests).sum();
        let errors: u64 = recent.iter().map(|s| s.errors).sum();
        let batches: u64 = recent.iter().map(|s| s.batches).sum();
        let rows: u64 = recent.iter().map(|s| s.rows).sum();
        let mut latencies = latency_histogram();
        for second in recent.iter().filter_map(|s| s.latencies.as_ref()) {
            let _ = latencies.add(second);
        }
        let quantile = |q: f64| (!latencies.is_empty()).then(|| latencies.value_at_quantile(q) as f64 * 1e-6);
        let (in_flight, queued) = self.load();
        LiveView {
            model: self.model.clone(),
            version: self.version,
            requests_per_second: requests as f64 / seconds,
            error_rate: if requests == 0 { 0.0 } else { errors as f64 / requests as f64 },
            p50_seconds: quantile(0.5),
            p99_seconds: quantile(0.99),
            mean_batch_rows: (batches > 0).then(|| rows as f64 / batches as f64),
            in_flight,
            queued,
        }
    }
}

/// Counts a request in flight while alive.
pub struct InFlightGuard(Arc<VersionMonitor>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
