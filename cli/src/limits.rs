//! The limit flags that `maas keys create` and `maas tenants limit` share,
//! and how a set of limits reads in a table.

use clap::Args;
use maas_api::KeyLimits;

/// Rate limits and quotas; each one left out is unlimited.
#[derive(Args, Debug, Clone, Default)]
pub struct LimitArgs {
    /// Requests per second, for the whole cluster.
    #[arg(long)]
    pub requests_per_second: Option<f64>,
    /// Requests at once above the rate.
    #[arg(long)]
    pub requests_burst: Option<f64>,
    /// Rows per second, for the whole cluster.
    #[arg(long)]
    pub rows_per_second: Option<f64>,
    /// Rows at once above the rate.
    #[arg(long)]
    pub rows_burst: Option<f64>,
    /// Prompt and generated tokens per minute, for the whole cluster.
    #[arg(long)]
    pub tokens_per_minute: Option<f64>,
    /// Tokens at once above the rate.
    #[arg(long)]
    pub tokens_burst: Option<f64>,
    /// Requests in flight at once, per coordinator.
    #[arg(long)]
    pub max_concurrent: Option<u32>,
    /// Largest request, bytes.
    #[arg(long)]
    pub max_request_bytes: Option<u64>,
}

impl From<LimitArgs> for KeyLimits {
    fn from(args: LimitArgs) -> KeyLimits {
        KeyLimits {
            requests_per_second: args.requests_per_second,
            requests_burst: args.requests_burst,
            rows_per_second: args.rows_per_second,
            rows_burst: args.rows_burst,
            tokens_per_minute: args.tokens_per_minute,
            tokens_burst: args.tokens_burst,
            max_concurrent: args.max_concurrent,
            max_request_bytes: args.max_request_bytes,
        }
    }
}

/// The limits in a few words, `-` when there are none.
pub fn describe(limits: &KeyLimits) -> String {
    let mut shown = Vec::new();
    if let Some(rate) = limits.requests_per_second {
        shown.push(format!("{rate} req/s"));
    }
    if let Some(burst) = limits.requests_burst {
        shown.push(format!("burst {burst}"));
    }
    if let Some(rate) = limits.rows_per_second {
        shown.push(format!("{rate} rows/s"));
    }
    if let Some(burst) = limits.rows_burst {
        shown.push(format!("row burst {burst}"));
    }
    if let Some(rate) = limits.tokens_per_minute {
        shown.push(format!("{rate} tokens/min"));
    }
    if let Some(burst) = limits.tokens_burst {
        shown.push(format!("token burst {burst}"));
    }
    if let Some(max) = limits.max_concurrent {
        shown.push(format!("{max} in flight"));
    }
    if let Some(max) = limits.max_request_bytes {
        shown.push(format!("{max} B max"));
    }
    if shown.is_empty() {
        "-".into()
    } else {
        shown.join(", ")
    }
}
