//! The monitoring views: live load, alerts, and evaluation from feedback.

use crate::api_type;

api_type! {
    /// What `GET /v1/monitor` answers: what `maas top` shows.
    pub struct LiveStatus {
        /// Each version served, over the last seconds.
        pub versions: Vec<LiveVersion>,
        /// Alerts standing now.
        pub alerts: Vec<Alert>
    }
}

api_type! {
    /// One version's live view over the last seconds.
    pub struct LiveVersion {
        /// Model name.
        pub model: String,
        /// Version.
        pub version: u64,
        /// Requests per second.
        pub requests_per_second: f64,
        /// Share of failed requests.
        pub error_rate: f64,
        /// Median latency of successful requests, in seconds (none without requests).
        pub p50_seconds: Option<f64>,
        /// 99th percentile latency, in seconds.
        pub p99_seconds: Option<f64>,
        /// Mean rows per batch.
        pub mean_batch_rows: Option<f64>,
        /// Requests in flight now.
        pub in_flight: i64,
        /// Requests waiting in the batcher now.
        pub queued: u64
    }
}

api_type! {
    /// An alert, standing or cleared.
    pub struct Alert {
        /// `latency`, `error_rate` or `drift`.
        pub kind: String,
        /// Model name.
        pub model: String,
        /// Version.
        pub version: u64,
        /// The drifting input (drift alerts).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub input: Option<String>,
        /// The value that raised it (latest while it stands): seconds, a share of requests, or a PSI.
        pub observed: f64,
        /// The baseline or threshold it was judged against.
        pub baseline: f64,
        /// When it was raised, in seconds since the Unix epoch.
        pub since: f64,
        /// When it cleared (history only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub cleared: Option<f64>
    }
}

api_type! {
    /// What `GET /v1/alerts` answers.
    pub struct AlertList {
        /// Alerts standing now.
        pub active: Vec<Alert>,
        /// Alerts cleared recently, newest last.
        pub recent: Vec<Alert>
    }
}

api_type! {
    /// What `GET /v1/models/{model}/evaluation` answers: scores per version from the feedback.
    pub struct Evaluation {
        /// Model name.
        pub model: String,
        /// `classification` or `regression`.
        pub task: String,
        /// Labelled requests each version is scored over.
        pub window: u64,
        /// Each version's scores.
        pub versions: Vec<VersionScores>,
        /// What became of the model's feedback so far.
        pub feedback: FeedbackCounts,
        /// Predictions waiting for their feedback.
        pub pending_predictions: u64
    }
}

api_type! {
    /// One version's scores over the window.
    pub struct VersionScores {
        /// Version.
        pub version: u64,
        /// Labelled requests scored.
        pub samples: u64,
        /// Classifiers: share of correct predictions.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub accuracy: Option<f64>,
        /// Classifiers: macro-averaged precision.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub precision: Option<f64>,
        /// Classifiers: macro-averaged recall.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub recall: Option<f64>,
        /// Classifiers: macro-averaged F1.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub f1: Option<f64>,
        /// Regressors: mean absolute error.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub mae: Option<f64>,
        /// Regressors: root mean squared error.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub rmse: Option<f64>,
        /// Generative models: the mean rating readers gave.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub mean_rating: Option<f64>
    }
}

api_type! {
    /// Feedback labels by what became of them.
    pub struct FeedbackCounts {
        /// Joined with their prediction.
        pub joined: u64,
        /// No prediction was recorded under their id.
        pub unknown: u64,
        /// Their prediction was dropped before they came.
        pub expired: u64
    }
}

api_type! {
    /// `GET /v1/usage`: use per tenant × model version over a time range.
    pub struct UsageReport {
        /// Start of the range, seconds since the epoch (widened to its minute).
        pub from: u64,
        /// End of the range, exclusive.
        pub to: u64,
        /// One line per tenant × model version that was used.
        pub usage: Vec<UsageLine>
    }
}

api_type! {
    /// One tenant's use of one model version.
    pub struct UsageLine {
        /// The tenant.
        pub tenant: String,
        /// The model.
        pub model: String,
        /// The version.
        pub version: u64,
        /// Requests that reached the version (answered or failed).
        pub requests: u64,
        /// Their rows.
        pub rows: u64,
        /// Requests that failed (429 included).
        pub errors: u64,
        /// Input tensor bytes.
        pub bytes_in: u64,
        /// Output tensor bytes.
        pub bytes_out: u64,
        /// Node compute time, each batch's shared by rows, microseconds.
        pub compute_us: u64,
        /// Prompt tokens of generative requests.
        #[serde(default)]
        pub prompt_tokens: u64,
        /// Tokens generated for them.
        #[serde(default)]
        pub completion_tokens: u64
    }
}
