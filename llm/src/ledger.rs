//! What one generative request is counted as, once, however it ends: its
//! outcome and latency in the version's statistics (the latency of a
//! generative request is its time to first token, so the latency detector
//! watches that), its tokens in the tenant's usage and token quota, and the
//! generation metrics. A request dropped before it finished (the client
//! went away) is counted as `cancelled` with the tokens it got.

use std::sync::Arc;
use std::time::{Duration, Instant};

use maas_monitor::InFlightGuard;
use maas_serving::models::ModelVersion;
use maas_tenancy::usage::{UsageCounts, UsageMeter};
use maas_tenancy::Admission;

use crate::metrics;

/// Tokens an engine reported for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt: u64,
    /// Generated tokens.
    pub completion: u64,
}

/// The running account of one request.
pub struct Ledger {
    version: Arc<ModelVersion>,
    admission: Admission,
    meter: Option<(Arc<UsageMeter>, String)>,
    arrived: Instant,
    first_token: Option<Instant>,
    last_token: Option<Instant>,
    token_events: u64,
    usage: Option<Usage>,
    _in_flight: Option<InFlightGuard>,
    finished: bool,
}

impl Ledger {
    /// Opens the account of a request that arrived at `arrived`.
    pub fn open(
        version: Arc<ModelVersion>,
        admission: Admission,
        meter: Option<(Arc<UsageMeter>, String)>,
        arrived: Instant,
    ) -> Ledger {
        let in_flight = version.shared.monitor.admit();
        Ledger {
            version,
            admission,
            meter,
            arrived,
            first_token: None,
            last_token: None,
            token_events: 0,
            usage: None,
            _in_flight: in_flight,
            finished: false,
        }
    }

    /// Notes a streamed piece of generated text.
    pub fn token(&mut self) {
        let now = Instant::now();
        let shared = &self.version.shared;
        match self.last_token {
            None => {
                self.first_token = Some(now);
                metrics::time_to_first_token(&shared.name, shared.version, now - self.arrived);
                shared.monitor.stats.first_token(now - self.arrived);
            }
            Some(last) => {
                metrics::inter_token(&shared.name, shared.version, now - last);
                shared.monitor.stats.inter_token(now - last);
            }
        }
        self.last_token = Some(now);
        self.token_events += 1;
    }

    /// Notes the usage the engine reported.
    pub fn usage(&mut self, usage: Usage) {
        self.usage = Some(usage);
    }

    /// Counts the request with `outcome` (`ok` or an error's label).
    pub fn finish(&mut self, outcome: &'static str) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let shared = &self.version.shared;
        let usage = self.usage.unwrap_or(Usage { prompt: 0, completion: self.token_events });
        let latency = self.first_token.map_or_else(|| self.arrived.elapsed(), |first| first - self.arrived);
        shared.metrics().request(outcome, latency);
        shared.monitor.request_done(outcome == "ok", latency);
        let generating = self.first_token.zip(self.last_token).map(|(first, last)| last - first);
        metrics::tokens(&shared.name, shared.version, usage.prompt, usage.completion, generating);
        shared.monitor.stats.tokens(usage.prompt, usage.completion);
        self.admission.spend_tokens(usage.prompt + usage.completion);
        if let Some((meter, tenant)) = &self.meter {
            let used = UsageCounts {
                requests: 1,
                errors: u64::from(outcome != "ok"),
                prompt_tokens: usage.prompt,
                completion_tokens: usage.completion,
                ..UsageCounts::default()
            };
            meter.record(tenant, &shared.name, shared.version, &used);
        }
    }

    /// Time since the request arrived.
    pub fn elapsed(&self) -> Duration {
        self.arrived.elapsed()
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        self.finish("cancelled");
    }
}
