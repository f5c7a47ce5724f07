//! What one generative request is counted as, once, however it ends: its
//! outcome and latency in the version's statistics (the latency of a
//! generative request is its time to first token, so the latency detector
//! watches that), its tokens in the tenant's usage and token quota, and the
//! generation metrics. An answer with an id (the engine's `chatcmpl-...`) is
//! recorded for evaluation: its reader's rating, sent as feedback under
//! that id, scores the version. A request dropped before it finished (the client
//! went away) is counted as `cancelled` with the tokens it got.

use std::sync::Arc;
use std::time::{Duration, Instant};

use maas_monitor::{InFlightGuard, Monitor};
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

/// Where a request is counted besides its version: the tenant's usage
/// meter, and the monitor that joins feedback.
pub struct Accounts {
    /// The usage meter, when usage is metered.
    pub meter: Option<Arc<UsageMeter>>,
    /// The monitor of every version.
    pub monitor: Arc<Monitor>,
    /// The caller's tenant.
    pub tenant: String,
    /// Tokens already taken from the caller's quota.
    pub reserved_tokens: u64,
    /// The prompt's tokens as estimated.
    pub prompt_estimate: u64,
}

/// The running account of one request.
pub struct Ledger {
    version: Arc<ModelVersion>,
    admission: Admission,
    meter: Option<Arc<UsageMeter>>,
    monitor: Arc<Monitor>,
    tenant: String,
    answer_id: Option<String>,
    /// Tokens taken from the caller's quota when admitted.
    reserved_tokens: u64,
    /// The prompt's tokens as estimated, for when the engine reports none.
    prompt_estimate: u64,
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
    pub fn open(version: Arc<ModelVersion>, admission: Admission, accounts: Accounts, arrived: Instant) -> Ledger {
        let in_flight = version.shared.monitor.admit();
        Ledger {
            version,
            admission,
            meter: accounts.meter,
            monitor: accounts.monitor,
            tenant: accounts.tenant,
            answer_id: None,
            reserved_tokens: accounts.reserved_tokens,
            prompt_estimate: accounts.prompt_estimate,
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

    /// Notes the answer's id, the first time an answer or chunk carries one.
    pub fn answer_id(&mut self, id: &str) {
        if self.answer_id.is_none() && maas_serving::infer::check_request_id(Some(id)).is_ok() {
            self.answer_id = Some(id.to_string());
        }
    }

    /// The prompt's tokens, when known before the answer (a native
    /// decoder's): counted instead of the estimate if no usage comes.
    pub fn prompt_tokens(&mut self, tokens: u64) {
        self.prompt_estimate = tokens;
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
        // Without the engine's count (the client went away first, or the
        // engine failed), the prompt is estimated and each streamed piece
        // counts as a token.
        let usage = self.usage.unwrap_or(Usage { prompt: self.prompt_estimate, completion: self.token_events });
        let used = usage.prompt.saturating_add(usage.completion);
        let latency = self.first_token.map_or_else(|| self.arrived.elapsed(), |first| first - self.arrived);
        maas_serving::infer::count_request(shared, outcome, latency);
        let generating = self.first_token.zip(self.last_token).map(|(first, last)| last - first);
        metrics::tokens(&shared.name, shared.version, usage.prompt, usage.completion, generating);
        shared.monitor.stats.tokens(usage.prompt, usage.completion);
        match used.cmp(&self.reserved_tokens) {
            std::cmp::Ordering::Greater => self.admission.spend_tokens(used - self.reserved_tokens),
            std::cmp::Ordering::Less => self.admission.refund_tokens(self.reserved_tokens - used),
            std::cmp::Ordering::Equal => {}
        }
        if let (Some(id), "ok") = (&self.answer_id, outcome) {
            self.monitor.record_generation(&shared.config, shared.version, &self.tenant, id);
        }
        if let Some(meter) = &self.meter {
            let used = UsageCounts {
                requests: 1,
                errors: u64::from(outcome != "ok"),
                prompt_tokens: usage.prompt,
                completion_tokens: usage.completion,
                ..UsageCounts::default()
            };
            meter.record(&self.tenant, &shared.name, shared.version, &used);
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
