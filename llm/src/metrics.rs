//! The metrics of generative requests, beside the inference path's
//! (`maas_inference_requests_total` counts them too, by outcome).
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `maas_generation_time_to_first_token_seconds` | histogram | model, version | arrival to the first generated token |
//! | `maas_generation_inter_token_seconds` | histogram | model, version | time between two streamed tokens |
//! | `maas_generation_tokens_per_second` | histogram | model, version | generated tokens over the time from the first to the last, per request |
//! | `maas_generation_tokens_total` | counter | model, version, kind | prompt and completion tokens |

use std::time::Duration;

/// Records a request's time to its first token.
pub fn time_to_first_token(model: &str, version: u64, elapsed: Duration) {
    metrics::histogram!("maas_generation_time_to_first_token_seconds", "model" => model.to_string(), "version" => version.to_string())
        .record(elapsed.as_secs_f64());
}

/// Records the time between two streamed tokens.
pub fn inter_token(model: &str, version: u64, gap: Duration) {
    metrics::histogram!("maas_generation_inter_token_seconds", "model" => model.to_string(), "version" => version.to_string())
        .record(gap.as_secs_f64());
}

/// Records a finished request's tokens and its generation rate.
pub fn tokens(model: &str, version: u64, prompt: u64, completion: u64, generating: Option<Duration>) {
    let (model, version) = (model.to_string(), version.to_string());
    metrics::counter!("maas_generation_tokens_total", "model" => model.clone(), "version" => version.clone(), "kind" => "prompt")
        .increment(prompt);
    metrics::counter!("maas_generation_tokens_total", "model" => model.clone(), "version" => version.clone(), "kind" => "completion")
        .increment(completion);
    if let Some(generating) = generating.filter(|d| !d.is_zero() && completion > 1) {
        metrics::histogram!("maas_generation_tokens_per_second", "model" => model, "version" => version)
            .record((completion - 1) as f64 / generating.as_secs_f64());
    }
}
