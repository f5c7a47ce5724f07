//! What usage is counted, and under which key.

use std::ops::AddAssign;

use serde::{Deserialize, Serialize};

/// Counts of one tenant's use of one model version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageCounts {
    /// Requests that reached the model version (answered or failed).
    pub requests: u64,
    /// Rows (batch entries) of those requests.
    pub rows: u64,
    /// Requests that failed, whatever the reason (429 included).
    pub errors: u64,
    /// Input tensor bytes.
    pub bytes_in: u64,
    /// Output tensor bytes.
    pub bytes_out: u64,
    /// Node compute time, each batch's shared among its requests by rows,
    /// in microseconds.
    pub compute_us: u64,
    /// Prompt tokens of generative requests.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Tokens generated for them.
    #[serde(default)]
    pub completion_tokens: u64,
}

impl AddAssign for UsageCounts {
    fn add_assign(&mut self, other: UsageCounts) {
        self.requests += other.requests;
        self.rows += other.rows;
        self.errors += other.errors;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.compute_us += other.compute_us;
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
    }
}

/// Whose use of what.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UsageKey {
    /// The tenant.
    pub tenant: String,
    /// The model.
    pub model: String,
    /// The version.
    pub version: u64,
}

/// Counts under their key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageEntry {
    /// Whose use of what.
    #[serde(flatten)]
    pub key: UsageKey,
    /// How much.
    #[serde(flatten)]
    pub counts: UsageCounts,
}
