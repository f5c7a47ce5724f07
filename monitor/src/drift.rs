//! Input drift: how far the recent distribution of each input feature has
//! moved from a reference profile.
//!
//! The reference is the first `reference_rows` sampled rows a version sees:
//! for each feature (the first `max_features` elements of a row) it keeps
//! the decile cut points and the share of reference rows in each bin. After
//! that, the bins of the last `window_rows` sampled rows are counted in a
//! sliding window, and each feature's population stability index
//! `PSI = Σ (q − p) · ln(q / p)` compares the window's shares `q` with the
//! reference's `p`. An input's score is its largest feature PSI; above
//! about 0.25 a shift is usually called significant. Memory per input is
//! bounded by the reference sample, then by the window's bin indices.

use std::collections::VecDeque;

/// Sizes and limits of drift tracking.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DriftSettings {
    /// Rows in the reference profile.
    pub reference_rows: usize,
    /// Rows in the sliding window.
    pub window_rows: usize,
    /// Rows the window needs before a score is given.
    pub min_window_rows: usize,
    /// Features tracked per input (its first elements).
    pub max_features: usize,
    /// Bins per feature.
    pub bins: usize,
}

impl Default for DriftSettings {
    fn default() -> Self {
        DriftSettings { reference_rows: 500, window_rows: 500, min_window_rows: 100, max_features: 32, bins: 10 }
    }
}

/// Share floor, so an empty bin does not make the index infinite.
const MIN_SHARE: f64 = 1e-4;

/// One feature's reference: cut points and the share of rows per bin.
#[derive(Debug, Clone, PartialEq)]
struct FeatureProfile {
    cuts: Vec<f64>,
    shares: Vec<f64>,
}

impl FeatureProfile {
    fn from_sample(values: Vec<f64>, bins: usize) -> FeatureProfile {
        let mut finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        finite.sort_by(f64::total_cmp);
        let mut cuts: Vec<f64> = (1..bins).filter_map(|i| finite.get(i * finite.len() / bins).copied()).collect();
        cuts.dedup();
        let mut counts = vec![0u32; cuts.len() + 1];
        for value in &values {
            counts[bin_of(&cuts, *value)] += 1;
        }
        let total = values.len().max(1) as f64;
        FeatureProfile { cuts, shares: counts.iter().map(|c| f64::from(*c) / total).collect() }
    }
}

/// The bin of `value`: how many cut points are at or below it (NaN: last).
fn bin_of(cuts: &[f64], value: f64) -> usize {
    if value.is_nan() {
        return cuts.len();
    }
    cuts.partition_point(|cut| *cut <= value)
}

/// The population stability index of `counts` against `reference` shares.
fn psi(reference: &[f64], counts: &[u32]) -> f64 {
    let total: u32 = counts.iter().sum();
    if total == 0 {
        return 0.0;
    }
    reference
        .iter()
        .zip(counts)
        .map(|(p, c)| {
            let p = p.max(MIN_SHARE);
            let q = (f64::from(*c) / f64::from(total)).max(MIN_SHARE);
            (q - p) * (q / p).ln()
        })
        .sum()
}

#[derive(Debug)]
enum Phase {
    /// Collecting the reference sample, per feature.
    Reference(Vec<Vec<f64>>),
    /// Comparing the sliding window with the profile.
    Window { profiles: Vec<FeatureProfile>, rows: VecDeque<Vec<u8>>, counts: Vec<Vec<u32>> },
}

/// Drift tracking for one input of one version.
#[derive(Debug)]
pub struct InputDrift {
    settings: DriftSettings,
    features: usize,
    phase: Phase,
}

impl InputDrift {
    /// Tracks an input whose rows have `row_len` elements.
    pub fn new(settings: DriftSettings, row_len: usize) -> InputDrift {
        let features = row_len.min(settings.max_features);
        InputDrift { settings, features, phase: Phase::Reference(vec![Vec::new(); features]) }
    }

    /// Whether the reference profile is complete.
    pub fn has_reference(&self) -> bool {
        matches!(self.phase, Phase::Window { .. })
    }

    /// Adds rows of `row_len` values each (row-major).
    pub fn observe(&mut self, values: &[f64], row_len: usize) {
        if row_len == 0 || self.features == 0 {
            return;
        }
        for row in values.chunks_exact(row_len) {
            self.observe_row(&row[..self.features.min(row.len())]);
        }
    }

    fn observe_row(&mut self, row: &[f64]) {
        let settings = self.settings;
        match &mut self.phase {
            Phase::Reference(samples) => {
                for (sample, value) in samples.iter_mut().zip(row) {
                    sample.push(*value);
                }
                if samples[0].len() >= settings.reference_rows {
                    let profiles: Vec<FeatureProfile> = std::mem::take(samples)
                        .into_iter()
                        .map(|s| FeatureProfile::from_sample(s, settings.bins))
                        .collect();
                    let counts = profiles.iter().map(|p| vec![0; p.shares.len()]).collect();
                    self.phase = Phase::Window { profiles, rows: VecDeque::new(), counts };
                }
            }
            Phase::Window { profiles, rows, counts } => {
                let bins: Vec<u8> = profiles.iter().zip(row).map(|(p, v)| bin_of(&p.cuts, *v) as u8).collect();
                for (feature, bin) in bins.iter().enumerate() {
                    counts[feature][usize::from(*bin)] += 1;
                }
                rows.push_back(bins);
                if rows.len() > settings.window_rows {
                    let old = rows.pop_front().expect("the window is not empty");
                    for (feature, bin) in old.iter().enumerate() {
                        counts[feature][usize::from(*bin)] -= 1;
                    }
                }
            }
        }
    }

    /// The PSI of each tracked feature, once the window is full enough.
    pub fn feature_scores(&self) -> Option<Vec<f64>> {
        match &self.phase {
            Phase::Window { profiles, rows, counts } if rows.len() >= self.settings.min_window_rows => {
                Some(profiles.iter().zip(counts).map(|(p, c)| psi(&p.shares, c)).collect())
            }
            _ => None,
        }
    }

    /// The input's score: its largest feature PSI.
    pub fn score(&self) -> Option<f64> {
        self.feature_scores().map(|scores| scores.into_iter().fold(0.0, f64::max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-uniform values in [0, 1).
    fn uniform(i: usize) -> f64 {
        ((i as u64).wrapping_mul(2654435761) % 10_007) as f64 / 10_007.0
    }

    fn rows(count: usize, start: usize, shift: f64) -> Vec<f64> {
        (start..start + count).flat_map(|i| [uniform(i) + shift, uniform(i + 77_777) * 2.0]).collect()
    }

    #[test]
    fn the_same_distribution_scores_low_and_a_shift_scores_high() {
        let settings = DriftSettings::default();
        let mut drift = InputDrift::new(settings, 2);
        drift.observe(&rows(499, 0, 0.0), 2);
        assert!(!drift.has_reference());
        drift.observe(&rows(1, 499, 0.0), 2);
        assert!(drift.has_reference());
        assert_eq!(drift.score(), None, "no score before the window has rows");
        drift.observe(&rows(500, 1000, 0.0), 2);
        let same = drift.score().unwrap();
        assert!(same < 0.1, "same distribution scored {same}");
        // Feature 0 moves by half its range; feature 1 stays.
        drift.observe(&rows(500, 2000, 0.5), 2);
        let scores = drift.feature_scores().unwrap();
        assert!(scores[0] > 1.0, "shifted feature scored {}", scores[0]);
        assert!(scores[1] < 0.1, "unchanged feature scored {}", scores[1]);
        assert_eq!(drift.score().unwrap(), scores[0]);
        // The window slides back.
        drift.observe(&rows(500, 3000, 0.0), 2);
        assert!(drift.score().unwrap() < 0.1);
    }

    #[test]
    fn constant_features_nan_and_wide_rows_are_handled() {
        let settings =
            DriftSettings { reference_rows: 10, window_rows: 10, min_window_rows: 5, max_features: 3, bins: 10 };
        let mut drift = InputDrift::new(settings, 100);
        let row: Vec<f64> = (0..100).map(|i| if i == 1 { f64::NAN } else { 1.0 }).collect();
        for _ in 0..20 {
            drift.observe(&row, 100);
        }
        let scores = drift.feature_scores().unwrap();
        assert_eq!(scores.len(), 3, "only the first max_features are tracked");
        assert!(scores.iter().all(|s| s.is_finite() && *s < 1e-9), "{scores:?}");
    }
}
