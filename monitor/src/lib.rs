//! Watching every model version: statistics, anomalies, drift and
//! evaluation from feedback.
//!
//! Each served version has a [`VersionMonitor`] that the inference path
//! feeds (requests, batches, sampled inputs). Once a second [`Monitor::tick`]
//! closes each version's second, feeds its latency and error-rate
//! [`anomaly`] detectors and checks its inputs' [`drift`] scores, raising
//! and clearing [`alerts`]. Predictions of requests that carry an `id` are
//! kept (bounded) so ground truth sent later as feedback can be joined and
//! scored per version ([`evaluation`]).

pub mod alerts;
pub mod anomaly;
pub mod drift;
pub mod evaluation;
pub mod metrics;
pub mod stats;
pub mod values;
mod version;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use maas_protocol::ModelConfig;
use parking_lot::{Mutex, RwLock};
use serde::Serialize;

use self::alerts::{AlertBoard, AlertKind};
use self::anomaly::Transition;
use self::drift::DriftSettings;
use self::evaluation::{Missing, Prediction, PredictionLog, Scores, Task};
pub use self::version::{InFlightGuard, LiveView, VersionMonitor};
use maas_protocol::TensorBytes;

/// A model's evaluation from feedback: scores per version over the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelEvaluation {
    /// Model name.
    pub model: String,
    /// How its predictions are scored.
    pub task: Task,
    /// Joined pairs each version is scored over.
    pub window: usize,
    /// Each version's scores.
    pub versions: Vec<VersionEvaluation>,
    /// What became of the model's feedback so far.
    pub feedback: FeedbackCounts,
    /// Predictions waiting for their feedback.
    pub pending_predictions: usize,
}

/// One version's scores.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionEvaluation {
    /// Version number.
    pub version: u64,
    /// Its scores.
    #[serde(flatten)]
    pub scores: evaluation::Evaluation,
}

/// Feedback labels of a model by what became of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FeedbackCounts {
    /// Joined with their prediction.
    pub joined: u64,
    /// No prediction was recorded under their id.
    pub unknown: u64,
    /// Their prediction was dropped before they came.
    pub expired: u64,
}

/// How the monitors sample, score and remember.
#[derive(Debug, Clone)]
pub struct MonitorSettings {
    /// Drift profile and window sizes.
    pub drift: DriftSettings,
    /// PSI above which an input is drifting.
    pub drift_threshold: f64,
    /// One request in this many feeds the drift profiles.
    pub drift_sample_every: u64,
    /// Predictions kept per model for feedback.
    pub predictions_per_model: usize,
    /// How long a prediction waits for its feedback.
    pub prediction_ttl: Duration,
    /// Joined pairs each version is scored over.
    pub evaluation_window: usize,
    /// Off: nothing is recorded (to measure what monitoring costs).
    pub enabled: bool,
}

impl Default for MonitorSettings {
    fn default() -> Self {
        MonitorSettings {
            drift: DriftSettings::default(),
            drift_threshold: 0.25,
            drift_sample_every: 10,
            predictions_per_model: 100_000,
            prediction_ttl: Duration::from_secs(3600),
            evaluation_window: 1000,
            enabled: true,
        }
    }
}

/// Feedback state of one model.
struct ModelFeedback {
    task: Task,
    log: PredictionLog,
    scores: BTreeMap<u64, Scores>,
    joined: u64,
    unknown: u64,
    expired: u64,
}

/// One ground-truth label: a value per row of the original request.
#[derive(Debug, Clone)]
pub struct Feedback {
    /// The original request's `id`.
    pub id: String,
    /// The true class or value of each row.
    pub truth: Vec<f64>,
}

/// What became of a feedback call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FeedbackOutcome {
    /// Labels joined with their prediction.
    pub joined: u64,
    /// Labels for ids never seen.
    pub unknown: u64,
    /// Labels whose prediction was already dropped.
    pub expired: u64,
    /// Labels whose row count did not match the prediction's.
    pub mismatched: u64,
}

/// The task of a model: its `task` label, else classification when the
/// first output has more than one element per row.
pub fn task_of(config: &ModelConfig) -> Task {
    match config.labels.get("task").map(String::as_str) {
        Some("classification") => Task::Classification,
        Some("regression") => Task::Regression,
        _ if config.platform.is_generative() => Task::Rating,
        _ => {
            let per_row: i64 = config.outputs.first().map(|o| o.shape.iter().skip(1).product()).unwrap_or(1);
            if per_row > 1 {
                Task::Classification
            } else {
                Task::Regression
            }
        }
    }
}

/// Every version's monitor, the alerts and the feedback.
pub struct Monitor {
    settings: MonitorSettings,
    /// Active and recent alerts.
    pub alerts: AlertBoard,
    versions: RwLock<BTreeMap<(String, u64), Arc<VersionMonitor>>>,
    feedback: Mutex<HashMap<String, ModelFeedback>>,
}

impl Monitor {
    /// An empty monitor.
    pub fn new(settings: MonitorSettings) -> Arc<Monitor> {
        Arc::new(Monitor {
            settings,
            alerts: AlertBoard::default(),
            versions: RwLock::new(BTreeMap::new()),
            feedback: Mutex::new(HashMap::new()),
        })
    }

    /// The monitor of a version, created on first use.
    pub fn version(&self, model: &str, version: u64, config: &ModelConfig) -> Arc<VersionMonitor> {
        let key = (model.to_string(), version);
        if let Some(existing) = self.versions.read().get(&key) {
            return existing.clone();
        }
        let created = VersionMonitor::new(
            model,
            version,
            config,
            self.settings.drift,
            self.settings.drift_sample_every,
            self.settings.enabled,
        );
        self.versions.write().entry(key).or_insert(created).clone()
    }

    /// Every version's monitor, by model and version.
    pub fn versions(&self) -> Vec<Arc<VersionMonitor>> {
        self.versions.read().values().cloned().collect()
    }

    /// Records the prediction of a request that carries an id.
    pub fn record_prediction(
        &self,
        config: &ModelConfig,
        version: u64,
        tenant: &str,
        id: &str,
        outputs: &[TensorBytes],
    ) {
        if !self.settings.enabled {
            return;
        }
        let Some(first) = outputs.first() else { return };
        let task = task_of(config);
        let Some((values, row_len)) = values::rows_as_f64(first, usize::MAX) else { return };
        let rows: Vec<f64> = values
            .chunks_exact(row_len)
            .map(|row| match task {
                Task::Classification => values::argmax(row) as f64,
                Task::Regression | Task::Rating => row[0],
            })
            .collect();
        self.record(config, task, Prediction { version, rows }, tenant, id);
    }

    /// Records a generative answer under its id (the engine's answer id),
    /// for its reader's rating to join.
    pub fn record_generation(&self, config: &ModelConfig, version: u64, tenant: &str, id: &str) {
        if self.settings.enabled {
            self.record(config, task_of(config), Prediction { version, rows: vec![1.0] }, tenant, id);
        }
    }

    fn record(&self, config: &ModelConfig, task: Task, prediction: Prediction, tenant: &str, id: &str) {
        let mut feedback = self.feedback.lock();
        let model = feedback.entry(config.name.clone()).or_insert_with(|| ModelFeedback {
            task,
            log: PredictionLog::new(self.settings.predictions_per_model, self.settings.prediction_ttl),
            scores: BTreeMap::new(),
            joined: 0,
            unknown: 0,
            expired: 0,
        });
        model.log.record(tenant_id(tenant, id), prediction, Instant::now());
    }

    /// Joins ground truth sent by `tenant` with the predictions recorded
    /// for that tenant's requests; another tenant's ids count as unknown.
    pub fn feedback(&self, model: &str, tenant: &str, labels: Vec<Feedback>) -> FeedbackOutcome {
        let mut outcome = FeedbackOutcome::default();
        let mut feedback = self.feedback.lock();
        let Some(state) = feedback.get_mut(model) else {
            outcome.unknown = labels.len() as u64;
            metrics::record_feedback(model, "unknown", outcome.unknown);
            return outcome;
        };
        let now = Instant::now();
        for label in labels {
            match state.log.take(&tenant_id(tenant, &label.id), now) {
                Ok(prediction) if prediction.rows.len() == label.truth.len() => {
                    let window = self.settings.evaluation_window;
                    let scores = state.scores.entry(prediction.version).or_insert_with(|| Scores::new(window));
                    for (predicted, truth) in prediction.rows.iter().zip(&label.truth) {
                        scores.add(*predicted, *truth);
                    }
                    outcome.joined += 1;
                }
                Ok(_) => outcome.mismatched += 1,
                Err(Missing::Unknown) => outcome.unknown += 1,
                Err(Missing::Expired) => outcome.expired += 1,
            }
        }
        state.joined += outcome.joined;
        state.unknown += outcome.unknown;
        state.expired += outcome.expired;
        for (label, count) in [
            ("joined", outcome.joined),
            ("unknown", outcome.unknown),
            ("expired", outcome.expired),
            ("mismatched", outcome.mismatched),
        ] {
            metrics::record_feedback(model, label, count);
        }
        outcome
    }

    /// Whether any prediction of `model` was recorded for evaluation.
    pub fn has_evaluation(&self, model: &str) -> bool {
        self.feedback.lock().contains_key(model)
    }

    /// The scores of `model`'s versions from the feedback joined so far,
    /// `None` before any prediction of it was recorded.
    pub fn evaluation(&self, model: &str) -> Option<ModelEvaluation> {
        let feedback = self.feedback.lock();
        let state = feedback.get(model)?;
        Some(ModelEvaluation {
            model: model.to_string(),
            task: state.task,
            window: self.settings.evaluation_window,
            versions: state
                .scores
                .iter()
                .map(|(version, scores)| VersionEvaluation { version: *version, scores: scores.evaluate(state.task) })
                .collect(),
            feedback: FeedbackCounts { joined: state.joined, unknown: state.unknown, expired: state.expired },
            pending_predictions: state.log.len(),
        })
    }

    /// Closes every version's second: feeds the detectors, checks drift,
    /// updates the load gauges.
    pub fn tick(&self) {
        for monitor in self.versions() {
            let (model, version) = (monitor.model.as_str(), monitor.version);
            let (requests, errors, mean_latency) = monitor.roll_second();
            let (in_flight, queued) = monitor.load();
            metrics::set_version_load(model, version, in_flight, queued);
            if let Some(latency) = mean_latency.filter(|_| requests - errors >= 5) {
                let transition = monitor.latency.lock().observe(latency);
                self.apply(AlertKind::Latency, &monitor, None, transition);
            }
            if requests >= 10 {
                let transition = monitor.errors.lock().observe(errors as f64 / requests as f64);
                self.apply(AlertKind::ErrorRate, &monitor, None, transition);
            }
            let scores: Vec<(String, f64)> = monitor
                .drift
                .lock()
                .iter()
                .filter_map(|(name, tracked)| Some((name.clone(), tracked.as_ref()?.score()?)))
                .collect();
            for (input, score) in scores {
                metrics::set_drift(model, version, &input, score);
                let threshold = self.settings.drift_threshold;
                if score > threshold {
                    self.alerts.raise(AlertKind::Drift, model, version, Some(&input), score, threshold);
                } else if score < threshold * 0.8 {
                    self.alerts.clear(AlertKind::Drift, model, version, Some(&input), score);
                }
            }
        }
    }

    fn apply(&self, kind: AlertKind, monitor: &VersionMonitor, input: Option<&str>, transition: Option<Transition>) {
        match transition {
            Some(Transition::Raised { observed, baseline }) => {
                self.alerts.raise(kind, &monitor.model, monitor.version, input, observed, baseline)
            }
            Some(Transition::Cleared { observed, .. }) => {
                self.alerts.clear(kind, &monitor.model, monitor.version, input, observed)
            }
            None => {}
        }
    }

    /// Ticks once a second, forever.
    pub fn spawn_ticker(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let monitor = self.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_secs(1));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                monitor.tick();
            }
        })
    }
}

/// A prediction's key: its request id within its tenant, so that feedback
/// joins only predictions made for the same tenant and one tenant's ids
/// never replace another's (tenant names hold no '/').
fn tenant_id(tenant: &str, id: &str) -> String {
    format!("{tenant}/{id}")
}
