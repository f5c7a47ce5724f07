//! Every metric the node exports, named in one place.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `maas_node_batches_total` | counter | model, version, outcome | batches run (`ok`, `partial`, `failed`, `rejected`) |
//! | `maas_node_rows_total` | counter | model, version | rows run |
//! | `maas_node_batch_rows` | histogram | model, version | rows per batch |
//! | `maas_node_queue_seconds` | histogram | model, version | wait for a free instance |
//! | `maas_node_compute_input_seconds` | histogram | model, version | building input tensors |
//! | `maas_node_compute_infer_seconds` | histogram | model, version | `forward` |
//! | `maas_node_compute_output_seconds` | histogram | model, version | copying outputs out |
//! | `maas_node_models_loaded` | gauge | | model versions loaded |
//! | `maas_node_model_memory_bytes` | gauge | | memory the loaded versions are estimated to use |
//! | `maas_node_memory_offered_bytes` | gauge | | memory the node offers for models (`--memory-bytes`) |
//! | `maas_node_batches_in_flight` | gauge | | batches received and not yet answered |
//! | `maas_node_queued_batches` | gauge | model, version | batches waiting for a free instance |
//! | `maas_node_heap_bytes` | gauge | | bytes the C allocator has handed out (LibTorch's CPU tensors included), read at each scrape |
//! | `maas_node_resident_bytes` | gauge | | the process's resident memory, read at each scrape |

use maas_protocol::{BatchOutcome, RequestOutcome};
use metrics_exporter_prometheus::{Matcher, PrometheusHandle};
use metrics_util::MetricKindMask;

const BATCHES: &str = "maas_node_batches_total";
const ROWS: &str = "maas_node_rows_total";
const BATCH_ROWS: &str = "maas_node_batch_rows";
const QUEUE_SECONDS: &str = "maas_node_queue_seconds";
const INPUT_SECONDS: &str = "maas_node_compute_input_seconds";
const INFER_SECONDS: &str = "maas_node_compute_infer_seconds";
const OUTPUT_SECONDS: &str = "maas_node_compute_output_seconds";
const MODELS_LOADED: &str = "maas_node_models_loaded";
const MODEL_MEMORY: &str = "maas_node_model_memory_bytes";
const MEMORY_OFFERED: &str = "maas_node_memory_offered_bytes";
const IN_FLIGHT: &str = "maas_node_batches_in_flight";
const QUEUED: &str = "maas_node_queued_batches";
const HEAP: &str = "maas_node_heap_bytes";
const RESIDENT: &str = "maas_node_resident_bytes";
const DECODER_CACHE: &str = "maas_node_decoder_cache_reserved_bytes";
const DECODER_SEQUENCES: &str = "maas_node_decoder_sequences";

const SECONDS_BUCKETS: &[f64] =
    &[0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
const ROWS_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// How long a version's counters and histograms stay after its last
/// update: a node that loads thousands of versions in turn keeps the
/// series of those it served lately, not of every one it ever held.
const SERIES_KEPT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// Installs the Prometheus recorder for this process.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    maas_process::install_prometheus(|builder| {
        let builder = builder
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)?
            .set_buckets_for_metric(Matcher::Full(BATCH_ROWS.into()), ROWS_BUCKETS)?;
        Ok(builder.idle_timeout(MetricKindMask::COUNTER | MetricKindMask::HISTOGRAM, Some(SERIES_KEPT)))
    })
}

/// Where a batch's compute time went, in nanoseconds.
#[derive(Debug, Default, Clone, Copy)]
pub struct Timings {
    /// Building input tensors (and moving them to the device).
    pub input_ns: u64,
    /// `forward`.
    pub infer_ns: u64,
    /// Copying outputs back to bytes.
    pub output_ns: u64,
}

/// Records a batch that ran.
pub fn record_batch(model: &str, version: &str, rows: u64, queue_ns: u64, timings: &Timings, outcome: &BatchOutcome) {
    let labels = [("model", model.to_string()), ("version", version.to_string())];
    let outcome_label = match outcome {
        BatchOutcome::Whole(_) => "ok",
        BatchOutcome::PerRequest(results) if results.iter().all(|r| matches!(r, RequestOutcome::Err(_))) => "failed",
        BatchOutcome::PerRequest(_) => "partial",
    };
    metrics::counter!(BATCHES, "model" => model.to_string(), "version" => version.to_string(), "outcome" => outcome_label)
        .increment(1);
    metrics::counter!(ROWS, &labels).increment(rows);
    metrics::histogram!(BATCH_ROWS, &labels).record(rows as f64);
    metrics::histogram!(QUEUE_SECONDS, &labels).record(queue_ns as f64 * 1e-9);
    metrics::histogram!(INPUT_SECONDS, &labels).record(timings.input_ns as f64 * 1e-9);
    metrics::histogram!(INFER_SECONDS, &labels).record(timings.infer_ns as f64 * 1e-9);
    metrics::histogram!(OUTPUT_SECONDS, &labels).record(timings.output_ns as f64 * 1e-9);
}

/// Records a batch refused by validation.
pub fn record_rejected_batch(model: &str, version: &str) {
    metrics::counter!(BATCHES, "model" => model.to_string(), "version" => version.to_string(), "outcome" => "rejected")
        .increment(1);
}

/// Sets the number of loaded model versions and their estimated memory.
pub fn set_loaded_models(count: usize, memory_bytes: u64) {
    metrics::gauge!(MODELS_LOADED).set(count as f64);
    metrics::gauge!(MODEL_MEMORY).set(memory_bytes as f64);
}

/// Reads the process's memory now: the allocator's bytes in use and the
/// resident size (what a leak or a load/unload cycle changes).
pub fn record_process_memory() {
    maas_process::record_memory(HEAP, RESIDENT);
}

/// Sets the memory the node offers for models.
pub fn set_memory_offered(bytes: u64) {
    metrics::gauge!(MEMORY_OFFERED).set(bytes as f64);
}

/// Sets the live load: batches in flight, and each version's queue.
pub fn set_load(in_flight: usize, queues: &[maas_protocol::ModelLoad]) {
    metrics::gauge!(IN_FLIGHT).set(in_flight as f64);
    for queue in queues {
        metrics::gauge!(QUEUED, "model" => queue.name.clone(), "version" => queue.version.to_string())
            .set(queue.queued as f64);
    }
}

/// Sets a decoder's live load: the key/value cache its running sequences
/// reserved, and how many run.
pub fn set_decoder_load(model: &str, version: u64, cache_bytes: u64, sequences: u64) {
    let labels = [("model", model.to_string()), ("version", version.to_string())];
    metrics::gauge!(DECODER_CACHE, &labels).set(cache_bytes as f64);
    metrics::gauge!(DECODER_SEQUENCES, &labels).set(sequences as f64);
}
