//! Online anomaly detection on one signal (a version's latency or error
//! rate, sampled once a second).
//!
//! The baseline is the median of the last normal samples and their spread
//! the median absolute deviation (MAD, scaled to a standard deviation), so
//! a few outliers move neither. A sample is anomalous when it exceeds
//! `median + threshold × MAD`, `median × min_ratio` and `median +
//! min_increase` all at once: the robust z-score rule, guarded against the
//! near-zero spread of very steady signals. Nothing is judged during a
//! warm-up of `warmup` samples. An alert is raised after `raise_after`
//! anomalous samples in a row and cleared after `clear_after` normal ones;
//! anomalous samples never enter the baseline.

use std::collections::VecDeque;

/// How a detector judges its signal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorSettings {
    /// Normal samples needed before anything is judged.
    pub warmup: usize,
    /// Normal samples the baseline is computed from.
    pub history: usize,
    /// Robust z-score above which a sample is anomalous.
    pub threshold: f64,
    /// The sample must also exceed the median by this factor.
    pub min_ratio: f64,
    /// And by at least this much in absolute terms.
    pub min_increase: f64,
    /// Anomalous samples in a row that raise an alert.
    pub raise_after: u32,
    /// Normal samples in a row that clear it.
    pub clear_after: u32,
}

impl DetectorSettings {
    /// For mean latency in seconds: at least twice the baseline and 1 ms
    /// above it, for 5 seconds.
    pub fn latency() -> Self {
        DetectorSettings {
            warmup: 20,
            history: 300,
            threshold: 6.0,
            min_ratio: 2.0,
            min_increase: 0.001,
            raise_after: 5,
            clear_after: 5,
        }
    }

    /// For the fraction of failed requests: at least 5 points above the
    /// baseline, for 3 seconds.
    pub fn error_rate() -> Self {
        DetectorSettings {
            warmup: 20,
            history: 300,
            threshold: 6.0,
            min_ratio: 1.0,
            min_increase: 0.05,
            raise_after: 3,
            clear_after: 5,
        }
    }
}

/// A change of the detector's state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transition {
    /// The signal became anomalous.
    Raised {
        /// The sample that raised it.
        observed: f64,
        /// The baseline (median) it was judged against.
        baseline: f64,
    },
    /// The signal is back to normal.
    Cleared {
        /// The sample that cleared it.
        observed: f64,
        /// The baseline.
        baseline: f64,
    },
}

/// One signal's detector.
#[derive(Debug, Clone)]
pub struct Detector {
    settings: DetectorSettings,
    normal: VecDeque<f64>,
    anomalous_run: u32,
    normal_run: u32,
    active: bool,
}

/// Median of `values` (not empty).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

impl Detector {
    /// A detector in warm-up.
    pub fn new(settings: DetectorSettings) -> Self {
        Detector { settings, normal: VecDeque::new(), anomalous_run: 0, normal_run: 0, active: false }
    }

    /// Whether an alert is raised.
    #[cfg(test)]
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// The baseline (median) and the limit above which a sample is
    /// anomalous, once warmed up.
    pub fn limits(&self) -> Option<(f64, f64)> {
        if self.normal.len() < self.settings.warmup {
            return None;
        }
        let mut values: Vec<f64> = self.normal.iter().copied().collect();
        let center = median(&mut values);
        let mut deviations: Vec<f64> = values.iter().map(|v| (v - center).abs()).collect();
        let spread = 1.4826 * median(&mut deviations);
        let s = &self.settings;
        let limit = (center + s.threshold * spread).max(center * s.min_ratio).max(center + s.min_increase);
        Some((center, limit))
    }

    /// Feeds one sample; returns a transition when the state changes.
    pub fn observe(&mut self, value: f64) -> Option<Transition> {
        if !value.is_finite() {
            return None;
        }
        let Some((baseline, limit)) = self.limits() else {
            self.remember(value);
            return None;
        };
        if value > limit {
            self.normal_run = 0;
            self.anomalous_run += 1;
            if !self.active && self.anomalous_run >= self.settings.raise_after {
                self.active = true;
                return Some(Transition::Raised { observed: value, baseline });
            }
            return None;
        }
        self.anomalous_run = 0;
        self.remember(value);
        if self.active {
            self.normal_run += 1;
            if self.normal_run >= self.settings.clear_after {
                self.active = false;
                self.normal_run = 0;
                return Some(Transition::Cleared { observed: value, baseline });
            }
        }
        None
    }

    fn remember(&mut self, value: f64) {
        self.normal.push_back(value);
        while self.normal.len() > self.settings.history {
            self.normal.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A steady, noisy signal around 5 ms.
    fn steady(i: usize) -> f64 {
        0.005 + 0.0004 * ((i * 7919 % 13) as f64 / 13.0 - 0.5)
    }

    #[test]
    fn nothing_is_judged_during_warmup() {
        let mut detector = Detector::new(DetectorSettings::latency());
        for _ in 0..19 {
            assert_eq!(detector.observe(10.0), None);
        }
        assert!(detector.limits().is_none());
    }

    #[test]
    fn a_slowdown_raises_and_recovery_clears() {
        let mut detector = Detector::new(DetectorSettings::latency());
        for i in 0..100 {
            assert_eq!(detector.observe(steady(i)), None, "sample {i}");
        }
        let mut raised_at = None;
        for i in 0..10 {
            if let Some(Transition::Raised { observed, baseline }) = detector.observe(0.050) {
                assert_eq!(observed, 0.050);
                assert!((baseline - 0.005).abs() < 0.0005, "{baseline}");
                raised_at = Some(i);
                break;
            }
        }
        assert_eq!(raised_at, Some(4), "raised after 5 slow samples");
        assert!(detector.is_active());
        let mut cleared_at = None;
        for i in 0..10 {
            if let Some(Transition::Cleared { .. }) = detector.observe(steady(i)) {
                cleared_at = Some(i);
                break;
            }
        }
        assert_eq!(cleared_at, Some(4), "cleared after 5 normal samples");
        assert!(!detector.is_active());
    }

    #[test]
    fn isolated_spikes_and_noise_raise_nothing() {
        let mut detector = Detector::new(DetectorSettings::latency());
        for i in 0..2000 {
            // A spike every 50 samples, never 5 in a row.
            let value = if i % 50 == 0 { 0.2 } else { steady(i) };
            assert_eq!(detector.observe(value), None, "sample {i}");
        }
    }

    #[test]
    fn error_rate_from_zero_needs_five_points() {
        let mut detector = Detector::new(DetectorSettings::error_rate());
        for _ in 0..30 {
            detector.observe(0.0);
        }
        for _ in 0..10 {
            assert_eq!(detector.observe(0.04), None, "4% over a 0% baseline is below the floor");
        }
        let transitions: Vec<_> = (0..3).filter_map(|_| detector.observe(0.5)).collect();
        assert_eq!(transitions, vec![Transition::Raised { observed: 0.5, baseline: 0.0 }]);
    }
}
