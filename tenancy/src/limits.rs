//! A key's or tenant's limits: request and row rates with bursts (token
//! buckets), concurrent requests and the largest request.

use serde::{Deserialize, Serialize};

/// Limits; each one unset is unlimited.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Sustained requests per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_second: Option<f64>,
    /// Requests that may arrive at once above the rate (default: one
    /// second's worth, at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_burst: Option<f64>,
    /// Sustained rows (batch entries) per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_per_second: Option<f64>,
    /// Rows above the rate at once (default: one second's worth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_burst: Option<f64>,
    /// Sustained tokens (prompt and generated) per minute of generative
    /// requests. A request is admitted while the bucket holds any token, and
    /// its tokens are taken when it ends, so one long answer may leave the
    /// bucket owing: later requests then wait until it refills.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<f64>,
    /// Tokens above the rate at once (default: one minute's worth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_burst: Option<f64>,
    /// Requests in flight at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u32>,
    /// Largest request body, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_bytes: Option<u64>,
}

impl Limits {
    /// Refuses negative, zero or non-finite figures.
    pub fn check(&self) -> Result<(), String> {
        let rates = [
            ("requests_per_second", self.requests_per_second),
            ("requests_burst", self.requests_burst),
            ("rows_per_second", self.rows_per_second),
            ("rows_burst", self.rows_burst),
            ("tokens_per_minute", self.tokens_per_minute),
            ("tokens_burst", self.tokens_burst),
        ];
        for (name, value) in rates {
            if let Some(value) = value {
                if !value.is_finite() || value <= 0.0 || value > 1e9 {
                    return Err(format!("{name} must be a number above 0 and at most 1e9, not {value}"));
                }
            }
        }
        if self.max_concurrent == Some(0) {
            return Err("max_concurrent must be at least 1".into());
        }
        if self.max_request_bytes == Some(0) {
            return Err("max_request_bytes must be at least 1".into());
        }
        Ok(())
    }

    /// Whether no limit is set.
    pub fn is_unlimited(&self) -> bool {
        self == &Limits::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonsense_limits_are_refused() {
        assert!(Limits::default().check().is_ok());
        assert!(Limits { requests_per_second: Some(0.0), ..Limits::default() }.check().is_err());
        assert!(Limits { rows_per_second: Some(f64::NAN), ..Limits::default() }.check().is_err());
        assert!(Limits { requests_burst: Some(-1.0), ..Limits::default() }.check().is_err());
        assert!(Limits { max_concurrent: Some(0), ..Limits::default() }.check().is_err());
        assert!(Limits { requests_per_second: Some(2.5), max_concurrent: Some(4), ..Limits::default() }
            .check()
            .is_ok());
    }
}
