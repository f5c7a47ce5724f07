//! The alerts raised by the monitors: active ones and a short history.
//!
//! An alert is keyed by its kind, model, version and (for drift) input; it
//! is raised once, shows in `GET /v1/alerts`, as the gauge
//! `maas_alert_active`, and in the log, and clears itself when its signal
//! is normal again.

use std::collections::{BTreeMap, VecDeque};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::Serialize;

use crate::metrics;

/// Cleared alerts kept for the history.
const HISTORY: usize = 100;

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// Mean latency well above its baseline.
    Latency,
    /// Share of failed requests well above its baseline.
    ErrorRate,
    /// An input's distribution moved from its reference.
    Drift,
}

impl AlertKind {
    /// The kind as a label value.
    pub fn label(self) -> &'static str {
        match self {
            AlertKind::Latency => "latency",
            AlertKind::ErrorRate => "error_rate",
            AlertKind::Drift => "drift",
        }
    }
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// What it is about.
    pub kind: AlertKind,
    /// Model name.
    pub model: String,
    /// Version.
    pub version: u64,
    /// The input, for drift alerts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// The value that raised it (latest while active): seconds, a share of
    /// requests, or a PSI.
    pub observed: f64,
    /// The baseline or threshold it was judged against.
    pub baseline: f64,
    /// When it was raised, in seconds since the Unix epoch.
    pub since: f64,
    /// When it cleared, for the history.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cleared: Option<f64>,
}

type AlertKey = (AlertKind, String, u64, Option<String>);

/// Seconds since the Unix epoch.
pub fn now_seconds() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64()
}

/// Active alerts and recently cleared ones.
#[derive(Debug, Default)]
pub struct AlertBoard {
    active: Mutex<BTreeMap<AlertKey, Alert>>,
    history: Mutex<VecDeque<Alert>>,
}

impl AlertBoard {
    /// Raises an alert (or updates its observed value if already active).
    pub fn raise(&self, kind: AlertKind, model: &str, version: u64, input: Option<&str>, observed: f64, baseline: f64) {
        let key = (kind, model.to_string(), version, input.map(str::to_string));
        let mut active = self.active.lock();
        if let Some(alert) = active.get_mut(&key) {
            alert.observed = observed;
            return;
        }
        tracing::warn!(kind = kind.label(), model, version, input, observed, baseline, "alert raised");
        metrics::set_alert(kind.label(), model, version, true);
        let alert = Alert {
            kind,
            model: model.to_string(),
            version,
            input: input.map(str::to_string),
            observed,
            baseline,
            since: now_seconds(),
            cleared: None,
        };
        active.insert(key, alert);
    }

    /// Clears an alert if it is active.
    pub fn clear(&self, kind: AlertKind, model: &str, version: u64, input: Option<&str>, observed: f64) {
        let key = (kind, model.to_string(), version, input.map(str::to_string));
        let Some(mut alert) = self.active.lock().remove(&key) else { return };
        tracing::info!(kind = kind.label(), model, version, input, observed, "alert cleared");
        let still_active = self.active.lock().keys().any(|(k, m, v, _)| *k == kind && m == model && *v == version);
        if !still_active {
            metrics::set_alert(kind.label(), model, version, false);
        }
        alert.observed = observed;
        alert.cleared = Some(now_seconds());
        let mut history = self.history.lock();
        history.push_back(alert);
        while history.len() > HISTORY {
            history.pop_front();
        }
    }

    /// Active alerts, then the recently cleared ones, newest first.
    pub fn list(&self) -> (Vec<Alert>, Vec<Alert>) {
        let active = self.active.lock().values().cloned().collect();
        let recent = self.history.lock().iter().rev().cloned().collect();
        (active, recent)
    }
}
