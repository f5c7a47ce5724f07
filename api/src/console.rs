//! What the web console reads: who the signed-in key is, and the tick its
//! live stream sends once a second.

use crate::api_type;
use crate::cluster::ClusterStatus;
use crate::monitoring::{Alert, LiveVersion};

api_type! {
    /// The calling key: its tenant and role, the models it reaches, and the
    /// actions it may take (the API enforces them; the console only hides
    /// what would be refused).
    pub struct Whoami {
        /// Tenant.
        pub tenant: String,
        /// `admin`, `deployer`, `viewer` or `inference`.
        pub role: String,
        /// Model name patterns the key reaches (`*` for all).
        pub scope: Vec<String>,
        /// Whether it may publish versions, move aliases, roll back and split.
        pub may_deploy: bool,
        /// Whether it may see the cluster and drain nodes.
        pub may_administer: bool
    }
}

api_type! {
    /// One second of the cluster as a key sees it, sent on the console's
    /// stream.
    pub struct ConsoleTick {
        /// When, in seconds since the Unix epoch.
        pub at: f64,
        /// Each version the key sees.
        pub versions: Vec<ConsoleVersion>,
        /// Alerts standing now, on models the key sees.
        pub alerts: Vec<Alert>,
        /// The cluster, for keys that may administer it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub cluster: Option<ClusterStatus>
    }
}

api_type! {
    /// A version's live view and its running totals (the statistics
    /// extension's counts, so the two agree at any moment).
    pub struct ConsoleVersion {
        /// Rates, percentiles and load over the last seconds.
        pub live: LiveVersion,
        /// Successful requests since the version was loaded here.
        pub success: u64,
        /// Failed requests since then.
        pub fail: u64,
        /// Batches run.
        pub batches: u64,
        /// Nanoseconds requests waited in the batcher, summed.
        pub queue_ns: u64,
        /// Nanoseconds of node compute (input, inference, output), summed over requests.
        pub compute_ns: u64,
        /// Drift score (population stability index) per numeric input; none before its reference is built.
        pub drift: Vec<InputDriftScore>,
        /// Whether the model has predictions recorded for evaluation (`GET /v1/models/{m}/evaluation` answers).
        pub evaluated: bool
    }
}

api_type! {
    /// One input's drift score.
    pub struct InputDriftScore {
        /// Input name.
        pub input: String,
        /// Its population stability index against the reference (none while the reference is built).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub score: Option<f64>
    }
}
