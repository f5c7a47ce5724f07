//! The metrics the monitor sets, named in one place (the coordinator's
//! `metrics.rs` names the rest; `docs/METRICS.md` lists them all).
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `maas_inference_in_flight` | gauge | model, version | requests admitted and not yet answered |
//! | `maas_inference_queued` | gauge | model, version | requests waiting in the batcher |
//! | `maas_alert_active` | gauge | kind, model, version | 1 while an alert of that kind is active |
//! | `maas_input_drift_score` | gauge | model, version, input | the input's drift (largest feature PSI) |
//! | `maas_feedback_total` | counter | model, outcome | feedback labels: `joined`, `unknown`, `expired`, `mismatched` |

const IN_FLIGHT: &str = "maas_inference_in_flight";
const QUEUED: &str = "maas_inference_queued";
const ALERT_ACTIVE: &str = "maas_alert_active";
const DRIFT: &str = "maas_input_drift_score";
const FEEDBACK: &str = "maas_feedback_total";

/// Sets a version's requests in flight and queued.
pub fn set_version_load(model: &str, version: u64, in_flight: i64, queued: u64) {
    let labels = [("model", model.to_string()), ("version", version.to_string())];
    metrics::gauge!(IN_FLIGHT, &labels).set(in_flight as f64);
    metrics::gauge!(QUEUED, &labels).set(queued as f64);
}

/// Sets whether an alert of `kind` is active for a version.
pub fn set_alert(kind: &'static str, model: &str, version: u64, active: bool) {
    metrics::gauge!(ALERT_ACTIVE, "kind" => kind, "model" => model.to_string(), "version" => version.to_string())
        .set(if active { 1.0 } else { 0.0 });
}

/// Sets an input's drift score.
pub fn set_drift(model: &str, version: u64, input: &str, score: f64) {
    metrics::gauge!(DRIFT, "model" => model.to_string(), "version" => version.to_string(), "input" => input.to_string())
        .set(score);
}

/// Counts feedback labels by what became of them.
pub fn record_feedback(model: &str, outcome: &'static str, count: u64) {
    if count > 0 {
        metrics::counter!(FEEDBACK, "model" => model.to_string(), "outcome" => outcome).increment(count);
    }
}
