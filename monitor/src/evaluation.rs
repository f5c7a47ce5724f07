//! Evaluation from ground truth: predictions kept by request id, joined
//! with feedback, and scored over a sliding window per version.
//!
//! [`PredictionLog`] holds a bounded number of recent predictions per model
//! (oldest dropped first, and none older than its time to live). An id
//! that was dropped is remembered, within the same bound, so its late
//! feedback is reported as expired rather than unknown. [`Scores`] keeps
//! the last joined (prediction, truth) pairs of a version and computes
//! accuracy and macro precision, recall and F1 for classifiers, MAE and
//! RMSE for regressors.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use serde::Serialize;

/// What a model predicts, which decides how it is scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// One class per row: the argmax of the first output.
    Classification,
    /// One value per row: the first element of the first output.
    Regression,
    /// A generative answer, rated by its reader (1 for good, 0 for bad, or
    /// any scale the raters share): scored by the mean rating.
    Rating,
}

impl Task {
    /// The task as the API names it (as it serializes).
    pub fn label(self) -> &'static str {
        match self {
            Task::Classification => "classification",
            Task::Regression => "regression",
            Task::Rating => "rating",
        }
    }
}

/// A request's prediction: one value per row.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// The version that answered.
    pub version: u64,
    /// Class index or value, per row.
    pub rows: Vec<f64>,
}

/// Why feedback could not be joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// No prediction was ever recorded under this id.
    Unknown,
    /// The prediction was recorded but dropped (age or room).
    Expired,
}

/// Recent predictions of one model, by request id.
#[derive(Debug)]
pub struct PredictionLog {
    capacity: usize,
    ttl: Duration,
    entries: HashMap<String, (Prediction, Instant)>,
    order: VecDeque<(String, Instant)>,
    dropped: HashSet<String>,
    dropped_order: VecDeque<String>,
}

impl PredictionLog {
    /// A log of at most `capacity` predictions, each kept at most `ttl`.
    pub fn new(capacity: usize, ttl: Duration) -> PredictionLog {
        PredictionLog {
            capacity: capacity.max(1),
            ttl,
            entries: HashMap::new(),
            order: VecDeque::new(),
            dropped: HashSet::new(),
            dropped_order: VecDeque::new(),
        }
    }

    /// Records a prediction under `id` at `now`. A repeated id replaces the
    /// prediction and starts its time to live again; its older place in
    /// the age order is left behind as stale and skipped.
    pub fn record(&mut self, id: String, prediction: Prediction, now: Instant) {
        self.expire(now);
        self.entries.insert(id.clone(), (prediction, now));
        self.order.push_back((id, now));
        while self.entries.len() > self.capacity {
            self.drop_oldest();
        }
        // Stale places (ids recorded again or taken) are skipped when they
        // reach the front; compacting keeps ids repeated within the time
        // to live from growing the order without bound.
        if self.order.len() > 2 * self.capacity {
            let entries = &self.entries;
            self.order.retain(|(id, at)| entries.get(id).is_some_and(|(_, recorded)| recorded == at));
        }
    }

    /// Takes the prediction recorded under `id`.
    pub fn take(&mut self, id: &str, now: Instant) -> Result<Prediction, Missing> {
        self.expire(now);
        match self.entries.remove(id) {
            Some((prediction, _)) => Ok(prediction),
            None if self.dropped.contains(id) => Err(Missing::Expired),
            None => Err(Missing::Unknown),
        }
    }

    /// Predictions held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no prediction is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn expire(&mut self, now: Instant) {
        while self.order.front().is_some_and(|(_, at)| now.duration_since(*at) > self.ttl) {
            self.drop_oldest();
        }
    }

    fn drop_oldest(&mut self) {
        let Some((id, at)) = self.order.pop_front() else { return };
        // An id taken by feedback, or recorded again later, is not dropped.
        if self.entries.get(&id).is_some_and(|(_, recorded)| *recorded == at) {
            self.entries.remove(&id);
            if self.dropped.insert(id.clone()) {
                self.dropped_order.push_back(id);
            }
            while self.dropped_order.len() > self.capacity {
                if let Some(old) = self.dropped_order.pop_front() {
                    self.dropped.remove(&old);
                }
            }
        }
    }
}

/// The last joined pairs of one version.
#[derive(Debug)]
pub struct Scores {
    window: usize,
    pairs: VecDeque<(f64, f64)>,
}

/// Scores over the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// Joined pairs in the window.
    pub samples: usize,
    /// Classifiers: share of correct predictions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    /// Classifiers: macro-averaged precision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub precision: Option<f64>,
    /// Classifiers: macro-averaged recall.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recall: Option<f64>,
    /// Classifiers: macro-averaged F1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub f1: Option<f64>,
    /// Regressors: mean absolute error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mae: Option<f64>,
    /// Regressors: root mean squared error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rmse: Option<f64>,
    /// Generative models: the mean rating.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_rating: Option<f64>,
}

impl Scores {
    /// Keeps the last `window` pairs.
    pub fn new(window: usize) -> Scores {
        Scores { window: window.max(1), pairs: VecDeque::new() }
    }

    /// Adds a (prediction, truth) pair.
    pub fn add(&mut self, predicted: f64, truth: f64) {
        self.pairs.push_back((predicted, truth));
        while self.pairs.len() > self.window {
            self.pairs.pop_front();
        }
    }

    /// Scores the window for `task`.
    pub fn evaluate(&self, task: Task) -> Evaluation {
        let samples = self.pairs.len();
        let mut evaluation = Evaluation {
            samples,
            accuracy: None,
            precision: None,
            recall: None,
            f1: None,
            mae: None,
            rmse: None,
            mean_rating: None,
        };
        if samples == 0 {
            return evaluation;
        }
        let n = samples as f64;
        match task {
            Task::Regression => {
                let errors = self.pairs.iter().map(|(p, t)| p - t);
                evaluation.mae = Some(errors.clone().map(f64::abs).sum::<f64>() / n);
                evaluation.rmse = Some((errors.map(|e| e * e).sum::<f64>() / n).sqrt());
            }
            Task::Rating => evaluation.mean_rating = Some(self.pairs.iter().map(|(_, t)| t).sum::<f64>() / n),
            Task::Classification => {
                let class = |v: f64| v.round() as i64;
                let classes: BTreeSet<i64> = self.pairs.iter().flat_map(|(p, t)| [class(*p), class(*t)]).collect();
                let mut counts: BTreeMap<i64, (u64, u64, u64)> = BTreeMap::new(); // (tp, fp, fn)
                let mut correct = 0u64;
                for (p, t) in &self.pairs {
                    let (p, t) = (class(*p), class(*t));
                    if p == t {
                        correct += 1;
                        counts.entry(p).or_default().0 += 1;
                    } else {
                        counts.entry(p).or_default().1 += 1;
                        counts.entry(t).or_default().2 += 1;
                    }
                }
                let ratio = |a: u64, b: u64| if a + b == 0 { 0.0 } else { a as f64 / (a + b) as f64 };
                let (mut precision, mut recall, mut f1) = (0.0, 0.0, 0.0);
                for class in &classes {
                    let (tp, fp, fn_) = counts.get(class).copied().unwrap_or_default();
                    let (p, r) = (ratio(tp, fp), ratio(tp, fn_));
                    precision += p;
                    recall += r;
                    f1 += if p + r == 0.0 { 0.0 } else { 2.0 * p * r / (p + r) };
                }
                let k = classes.len() as f64;
                evaluation.accuracy = Some(correct as f64 / n);
                evaluation.precision = Some(precision / k);
                evaluation.recall = Some(recall / k);
                evaluation.f1 = Some(f1 / k);
            }
        }
        evaluation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_labels_are_their_serialized_names() {
        for task in [Task::Classification, Task::Regression, Task::Rating] {
            assert_eq!(serde_json::to_value(task).unwrap(), serde_json::json!(task.label()));
        }
    }

    fn prediction(value: f64) -> Prediction {
        Prediction { version: 1, rows: vec![value] }
    }

    #[test]
    fn the_log_joins_once_and_tells_unknown_from_expired() {
        let start = Instant::now();
        let mut log = PredictionLog::new(2, Duration::from_secs(60));
        log.record("a".into(), prediction(1.0), start);
        log.record("b".into(), prediction(2.0), start);
        log.record("c".into(), prediction(3.0), start);
        assert_eq!(log.len(), 2);
        assert_eq!(log.take("a", start), Err(Missing::Expired), "dropped for room");
        assert_eq!(log.take("b", start), Ok(prediction(2.0)));
        assert_eq!(log.take("b", start), Err(Missing::Unknown), "joined only once");
        assert_eq!(log.take("zzz", start), Err(Missing::Unknown));
        let later = start + Duration::from_secs(61);
        assert_eq!(log.take("c", later), Err(Missing::Expired), "dropped for age");
        assert_eq!(log.len(), 0);
    }

    /// An id recorded twice used to lose its place in the age order: it
    /// never expired, and once such ids filled the log every new
    /// prediction was dropped for room instead.
    #[test]
    fn a_repeated_id_still_expires_and_never_crowds_out_new_predictions() {
        let start = Instant::now();
        let ttl = Duration::from_secs(60);
        let mut log = PredictionLog::new(3, ttl);
        let second = start + Duration::from_secs(1);
        for id in ["a", "b", "c"] {
            log.record(id.into(), prediction(1.0), start);
            log.record(id.into(), prediction(2.0), second);
        }
        assert_eq!(log.len(), 3);
        // Past the time to live of the second recording, all three are gone.
        let later = second + ttl + Duration::from_secs(1);
        log.record("fresh".into(), prediction(3.0), later);
        assert_eq!(log.len(), 1, "repeated ids outlived their time to live");
        assert_eq!(log.take("fresh", later), Ok(prediction(3.0)), "the new prediction was dropped");
        assert_eq!(log.take("a", later), Err(Missing::Expired));

        // A repeated id keeps its latest prediction and is dropped for room
        // in the order of its latest recording.
        let mut log = PredictionLog::new(2, ttl);
        log.record("x".into(), prediction(1.0), start);
        log.record("y".into(), prediction(1.0), start + Duration::from_millis(1));
        log.record("x".into(), prediction(5.0), start + Duration::from_millis(2));
        log.record("z".into(), prediction(1.0), start + Duration::from_millis(3));
        let now = start + Duration::from_millis(4);
        assert_eq!(log.take("y", now), Err(Missing::Expired), "y was the oldest");
        assert_eq!(log.take("x", now), Ok(prediction(5.0)));
        assert_eq!(log.take("z", now), Ok(prediction(1.0)));
    }

    #[test]
    fn the_age_order_stays_bounded_under_one_repeated_id() {
        let start = Instant::now();
        let mut log = PredictionLog::new(4, Duration::from_secs(3600));
        for i in 0..10_000u64 {
            log.record("same".into(), prediction(i as f64), start + Duration::from_micros(i));
        }
        assert_eq!(log.len(), 1);
        assert!(log.order.len() <= 2 * 4 + 1, "the order grew to {}", log.order.len());
        let now = start + Duration::from_secs(1);
        assert_eq!(log.take("same", now), Ok(prediction(9_999.0)));
    }

    #[test]
    fn classification_scores_match_a_hand_count() {
        // truth:     0 0 1 1 2 2
        // predicted: 0 1 1 1 2 0
        let mut scores = Scores::new(100);
        for (p, t) in [(0, 0), (1, 0), (1, 1), (1, 1), (2, 2), (0, 2)] {
            scores.add(f64::from(p), f64::from(t));
        }
        let e = scores.evaluate(Task::Classification);
        assert_eq!(e.samples, 6);
        assert!((e.accuracy.unwrap() - 4.0 / 6.0).abs() < 1e-12);
        // class 0: p 1/2 r 1/2; class 1: p 2/3 r 1; class 2: p 1 r 1/2
        let precision = (0.5 + 2.0 / 3.0 + 1.0) / 3.0;
        let recall = (0.5 + 1.0 + 0.5) / 3.0;
        let f1 = (0.5 + 0.8 + 2.0 / 3.0) / 3.0;
        assert!((e.precision.unwrap() - precision).abs() < 1e-12);
        assert!((e.recall.unwrap() - recall).abs() < 1e-12);
        assert!((e.f1.unwrap() - f1).abs() < 1e-12);
        assert!(e.mae.is_none());
    }

    #[test]
    fn regression_scores_and_the_window_slides() {
        let mut scores = Scores::new(2);
        scores.add(10.0, 0.0); // slides out
        scores.add(1.0, 2.0);
        scores.add(5.0, 2.0);
        let e = scores.evaluate(Task::Regression);
        assert_eq!(e.samples, 2);
        assert!((e.mae.unwrap() - 2.0).abs() < 1e-12);
        assert!((e.rmse.unwrap() - 5.0f64.sqrt()).abs() < 1e-12);
        assert!(e.accuracy.is_none());
    }
}
