//! Every metric of the serving path, named in one place. The monitor's own
//! (`maas_monitor::metrics`: load gauges, alerts, drift, feedback) and the
//! control plane's (`maas_control::metrics`: node links, leadership) are
//! named beside their code.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `maas_inference_requests_total` | counter | model, version, outcome | requests answered, by outcome (`ok` or the error kind) |
//! | `maas_inference_request_duration_seconds` | histogram | model, version | arrival to answer |
//! | `maas_inference_queue_duration_seconds` | histogram | model, version | arrival to dispatch of its batch |
//! | `maas_inference_compute_duration_seconds` | histogram | model, version | node time of a batch (input, forward, output) |
//! | `maas_inference_batch_size` | histogram | model, version | rows per dispatched batch |
//! | `maas_inference_batch_requests` | histogram | model, version | requests per dispatched batch |
//! | `maas_inference_batch_retries_total` | counter | model, version | batches retried on another replica |
//! | `maas_inference_rows_total` | counter | model, version | rows inferred |
//! | `maas_rate_limited_total` | counter | tenant | requests refused by a key's rate limit or quota |
//! | `maas_cold_start_duration_seconds` | histogram | model | arrival to answer of requests that found a version loaded on demand without a replica (the load included) |
//! | `maas_coordinators_live` | gauge | | coordinators sharing each key's rates (1 without etcd) |
//! | `maas_coordinator_heap_bytes` | gauge | | bytes the C allocator has handed out, read at each scrape |
//! | `maas_coordinator_resident_bytes` | gauge | | the process's resident memory, read at each scrape |
//!
//! Model and version labels only take names of models the coordinator
//! serves; requests for unknown models are counted under `model="_unknown"`.

use std::time::{Duration, Instant};

use maas_protocol::answer::BatchAnswer;
use metrics_exporter_prometheus::{Matcher, PrometheusHandle};

use crate::pending::PendingRequest;

const REQUESTS: &str = "maas_inference_requests_total";
const REQUEST_SECONDS: &str = "maas_inference_request_duration_seconds";
const QUEUE_SECONDS: &str = "maas_inference_queue_duration_seconds";
const COMPUTE_SECONDS: &str = "maas_inference_compute_duration_seconds";
const BATCH_SIZE: &str = "maas_inference_batch_size";
const BATCH_REQUESTS: &str = "maas_inference_batch_requests";
const RETRIES: &str = "maas_inference_batch_retries_total";
const ROWS: &str = "maas_inference_rows_total";
const RATE_LIMITED: &str = "maas_rate_limited_total";
const COLD_START_SECONDS: &str = "maas_cold_start_duration_seconds";
/// One step of a pipeline version, by model and step (set by the runner).
pub const PIPELINE_STEP_SECONDS: &str = "maas_pipeline_step_seconds";

/// The generative requests' histograms (`maas-llm`): time to first token,
/// time between tokens, tokens per second.
const GENERATION_PREFIX: &str = "maas_generation_";
const GENERATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0,
    1000.0,
];

/// Label value for requests whose model is unknown.
pub const UNKNOWN_MODEL: &str = "_unknown";

const SECONDS_BUCKETS: &[f64] =
    &[0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
const ROWS_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
/// A cold start includes fetching, loading and warming a model up.
const COLD_START_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

/// Installs the Prometheus recorder for this process, with the buckets of
/// the serving histograms.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    maas_process::install_prometheus(|builder| {
        builder
            .set_buckets_for_metric(Matcher::Full(REQUEST_SECONDS.into()), SECONDS_BUCKETS)?
            .set_buckets_for_metric(Matcher::Full(QUEUE_SECONDS.into()), SECONDS_BUCKETS)?
            .set_buckets_for_metric(Matcher::Full(COMPUTE_SECONDS.into()), SECONDS_BUCKETS)?
            .set_buckets_for_metric(Matcher::Full(COLD_START_SECONDS.into()), COLD_START_BUCKETS)?
            .set_buckets_for_metric(Matcher::Full(PIPELINE_STEP_SECONDS.into()), SECONDS_BUCKETS)?
            .set_buckets_for_metric(Matcher::Full(BATCH_SIZE.into()), ROWS_BUCKETS)?
            .set_buckets_for_metric(Matcher::Full(BATCH_REQUESTS.into()), ROWS_BUCKETS)?
            .set_buckets_for_metric(Matcher::Prefix(GENERATION_PREFIX.into()), GENERATION_BUCKETS)
    })
}

/// Reads the process's memory now: what thousands of registered versions
/// cost a coordinator shows here.
pub fn record_process_memory() {
    maas_process::record_memory("maas_coordinator_heap_bytes", "maas_coordinator_resident_bytes");
}

/// Sets how many coordinators share each key's rates.
pub fn record_coordinators(live: usize) {
    metrics::gauge!("maas_coordinators_live").set(live as f64);
}

/// Counts a request refused by its key's limits. Tenants are created by
/// an admin, so the label stays bounded.
pub fn record_rate_limited(tenant: &str) {
    metrics::counter!(RATE_LIMITED, "tenant" => tenant.to_string()).increment(1);
}

/// Records the answer time of a request that waited for a cold load.
pub fn record_cold_start(model: &str, elapsed: Duration) {
    metrics::histogram!(COLD_START_SECONDS, "model" => model.to_string()).record(elapsed.as_secs_f64());
}

/// Records an answered request.
pub fn record_request(model: &str, version: &str, outcome: &'static str, elapsed: Duration) {
    metrics::counter!(REQUESTS, "model" => model.to_string(), "version" => version.to_string(), "outcome" => outcome)
        .increment(1);
    if outcome == "ok" {
        metrics::histogram!(REQUEST_SECONDS, "model" => model.to_string(), "version" => version.to_string())
            .record(elapsed.as_secs_f64());
    }
}

/// One version's per-request and per-batch series, registered once when the
/// version is created, so that recording builds no label set on the hot path.
pub struct VersionMetrics {
    model: String,
    version: String,
    ok: metrics::Counter,
    request_seconds: metrics::Histogram,
    queue_seconds: metrics::Histogram,
    batch_size: metrics::Histogram,
    batch_requests: metrics::Histogram,
    compute_seconds: metrics::Histogram,
    rows: metrics::Counter,
    retries: metrics::Counter,
}

impl VersionMetrics {
    /// Registers the series of `model` version `version`.
    pub fn new(model: &str, version: u64) -> VersionMetrics {
        let labels = [("model", model.to_string()), ("version", version.to_string())];
        VersionMetrics {
            model: model.to_string(),
            version: version.to_string(),
            ok: metrics::counter!(REQUESTS, "model" => model.to_string(), "version" => version.to_string(), "outcome" => "ok"),
            request_seconds: metrics::histogram!(REQUEST_SECONDS, &labels),
            queue_seconds: metrics::histogram!(QUEUE_SECONDS, &labels),
            batch_size: metrics::histogram!(BATCH_SIZE, &labels),
            batch_requests: metrics::histogram!(BATCH_REQUESTS, &labels),
            compute_seconds: metrics::histogram!(COMPUTE_SECONDS, &labels),
            rows: metrics::counter!(ROWS, &labels),
            retries: metrics::counter!(RETRIES, &labels),
        }
    }

    /// Reads the process's memory now: what thousands of registered versions
    /// cost a coordinator shows here.
    pub fn record_process_memory() {
        maas_process::record_memory("maas_coordinator_heap_bytes", "maas_coordinator_resident_bytes");
    }

    /// Sets how many coordinators share each key's rates.
    pub fn record_coordinators(live: usize) {
        metrics::gauge!("maas_coordinators_live").set(live as f64);
    }

    /// Counts a request refused by its key's limits. Tenants are created by
    /// an admin, so the label stays bounded.
    pub fn record_rate_limited(tenant: &str) {
        metrics::counter!(RATE_LIMITED, "tenant" => tenant.to_string()).increment(1);
    }

    /// Records the answer time of a request that waited for a cold load.
    pub fn record_cold_start(model: &str, elapsed: Duration) {
        metrics::histogram!(COLD_START_SECONDS, "model" => model.to_string()).record(elapsed.as_secs_f64());
    }

    /// Records an answered request.
    pub fn request(&self, outcome: &'static str, elapsed: Duration) {
        if outcome == "ok" {
            self.ok.increment(1);
            self.request_seconds.record(elapsed.as_secs_f64());
        } else {
            record_request(&self.model, &self.version, outcome, elapsed);
        }
    }

    /// Records a batch leaving the queue at `now`.
    pub fn batch(&self, batch: &[PendingRequest], now: Instant) {
        let rows: u32 = batch.iter().map(|r| r.rows).sum();
        self.batch_size.record(f64::from(rows));
        self.batch_requests.record(batch.len() as f64);
        for request in batch {
            self.queue_seconds.record(now.saturating_duration_since(request.enqueued).as_secs_f64());
        }
    }

    /// Records where a node spent a batch's time, and its rows.
    pub fn node_timings(&self, rows: u64, result: &BatchAnswer) {
        self.compute_seconds.record(result.compute_ns() as f64 * 1e-9);
        self.rows.increment(rows);
    }

    /// Counts a batch retried on another replica.
    pub fn retry(&self) {
        self.retries.increment(1);
    }
}
