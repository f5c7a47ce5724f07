//! The monitor's state as the API's monitoring types (`maas_api`), which
//! the CLI reads.

use maas_monitor::alerts::Alert;
use maas_monitor::LiveView;
use maas_monitor::ModelEvaluation;

/// An alert as the API shows it.
pub fn alert(alert: &Alert) -> maas_api::Alert {
    maas_api::Alert {
        kind: alert.kind.label().to_string(),
        model: alert.model.clone(),
        version: alert.version,
        input: alert.input.clone(),
        observed: alert.observed,
        baseline: alert.baseline,
        since: alert.since,
        cleared: alert.cleared,
    }
}

/// A version's live view as the API shows it.
pub fn live_version(view: LiveView) -> maas_api::LiveVersion {
    maas_api::LiveVersion {
        model: view.model,
        version: view.version,
        requests_per_second: view.requests_per_second,
        error_rate: view.error_rate,
        p50_seconds: view.p50_seconds,
        p99_seconds: view.p99_seconds,
        mean_batch_rows: view.mean_batch_rows,
        in_flight: view.in_flight,
        queued: view.queued,
    }
}

/// A model's evaluation as the API shows it.
pub fn evaluation(evaluation: ModelEvaluation) -> maas_api::Evaluation {
    maas_api::Evaluation {
        model: evaluation.model,
        task: evaluation.task.label().to_string(),
        window: evaluation.window as u64,
        versions: evaluation
            .versions
            .into_iter()
            .map(|v| maas_api::VersionScores {
                version: v.version,
                samples: v.scores.samples as u64,
                accuracy: v.scores.accuracy,
                precision: v.scores.precision,
                recall: v.scores.recall,
                f1: v.scores.f1,
                mae: v.scores.mae,
                rmse: v.scores.rmse,
                mean_rating: v.scores.mean_rating,
            })
            .collect(),
        feedback: maas_api::FeedbackCounts {
            joined: evaluation.feedback.joined,
            unknown: evaluation.feedback.unknown,
            expired: evaluation.feedback.expired,
        },
        pending_predictions: evaluation.pending_predictions as u64,
    }
}
