//! Triton's statistics extension for one version: cumulative counts and
//! durations, per request and per batch size.
//!
//! As in Triton, `success`, `fail` and `queue` count requests; the
//! `compute_*` durations of a batch are added once per request in it; and
//! `batch_stats` counts batches by their size in rows. `inference_count` is
//! rows inferred and `execution_count` batches run.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

/// A count and a total duration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// How many.
    pub count: u64,
    /// Their total duration in nanoseconds.
    pub ns: u64,
}

impl Tally {
    /// Adds `count` and `ns`, saturating: batch times are a node's word.
    fn add(&mut self, count: u64, ns: u64) {
        self.count = self.count.saturating_add(count);
        self.ns = self.ns.saturating_add(ns);
    }
}

/// Where a batch's time went on its node, in nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchTimes {
    /// Building input tensors.
    pub input_ns: u64,
    /// `forward`.
    pub infer_ns: u64,
    /// Copying outputs back.
    pub output_ns: u64,
}

/// The statistics at one moment.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Milliseconds since the Unix epoch of the last batch.
    pub last_inference_ms: u64,
    /// Rows inferred.
    pub inference_count: u64,
    /// Batches run.
    pub execution_count: u64,
    /// Successful requests and their end-to-end time.
    pub success: Tally,
    /// Failed requests and their time.
    pub fail: Tally,
    /// Requests' time in the batcher queue.
    pub queue: Tally,
    /// Input preparation, per request.
    pub compute_input: Tally,
    /// `forward`, per request.
    pub compute_infer: Tally,
    /// Output copying, per request.
    pub compute_output: Tally,
    /// Per batch size (rows): input, infer and output tallies of its batches.
    pub batches: BTreeMap<u64, [Tally; 3]>,
    /// Generative requests' tokens and times (all zero for tensor models).
    pub generation: GenerationTallies,
}

/// What generative requests add to a version's statistics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GenerationTallies {
    /// Streamed requests' time to their first token.
    pub time_to_first_token: Tally,
    /// Time between two streamed tokens.
    pub inter_token: Tally,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Generated tokens.
    pub completion_tokens: u64,
}

/// One version's statistics.
#[derive(Debug, Default)]
pub struct VersionStats {
    counters: Mutex<StatsSnapshot>,
}

fn ns(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl VersionStats {
    /// Counts an answered request.
    pub fn request(&self, ok: bool, elapsed: Duration) {
        let mut counters = self.counters.lock();
        let tally = if ok { &mut counters.success } else { &mut counters.fail };
        tally.add(1, ns(elapsed));
    }

    /// Counts a batch leaving the queue: each request's wait.
    pub fn queued(&self, waits: impl Iterator<Item = Duration>) {
        let mut counters = self.counters.lock();
        for wait in waits {
            counters.queue.add(1, ns(wait));
        }
    }

    /// Counts a batch run on a node.
    pub fn batch(&self, rows: u64, requests: u64, times: BatchTimes) {
        let mut counters = self.counters.lock();
        counters.last_inference_ms =
            u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()).unwrap_or(0);
        counters.inference_count += rows;
        counters.execution_count += 1;
        counters.compute_input.add(requests, times.input_ns.saturating_mul(requests));
        counters.compute_infer.add(requests, times.infer_ns.saturating_mul(requests));
        counters.compute_output.add(requests, times.output_ns.saturating_mul(requests));
        let per_size = counters.batches.entry(rows).or_default();
        per_size[0].add(1, times.input_ns);
        per_size[1].add(1, times.infer_ns);
        per_size[2].add(1, times.output_ns);
    }

    /// Counts a streamed generative request's first token.
    pub fn first_token(&self, elapsed: Duration) {
        self.counters.lock().generation.time_to_first_token.add(1, ns(elapsed));
    }

    /// Counts the time between two streamed tokens.
    pub fn inter_token(&self, gap: Duration) {
        self.counters.lock().generation.inter_token.add(1, ns(gap));
    }

    /// Counts a generative request's tokens.
    pub fn tokens(&self, prompt: u64, completion: u64) {
        let mut counters = self.counters.lock();
        counters.generation.prompt_tokens = counters.generation.prompt_tokens.saturating_add(prompt);
        counters.generation.completion_tokens = counters.generation.completion_tokens.saturating_add(completion);
    }

    /// Requests answered so far: (successes, failures).
    #[cfg(test)]
    pub fn outcomes(&self) -> (u64, u64) {
        let counters = self.counters.lock();
        (counters.success.count, counters.fail.count)
    }

    /// A copy of the statistics now.
    pub fn snapshot(&self) -> StatsSnapshot {
        self.counters.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_batches_add_up() {
        let stats = VersionStats::default();
        stats.request(true, Duration::from_nanos(100));
        stats.request(true, Duration::from_nanos(300));
        stats.request(false, Duration::from_nanos(50));
        stats.queued([Duration::from_nanos(10), Duration::from_nanos(20)].into_iter());
        stats.batch(3, 2, BatchTimes { input_ns: 1, infer_ns: 10, output_ns: 2 });
        stats.batch(3, 1, BatchTimes { input_ns: 1, infer_ns: 20, output_ns: 2 });
        stats.batch(1, 1, BatchTimes { input_ns: 1, infer_ns: 5, output_ns: 1 });
        let c = stats.snapshot();
        assert_eq!((c.inference_count, c.execution_count), (7, 3));
        assert_eq!(c.success, Tally { count: 2, ns: 400 });
        assert_eq!(c.fail, Tally { count: 1, ns: 50 });
        assert_eq!(c.queue, Tally { count: 2, ns: 30 });
        assert_eq!(c.compute_infer, Tally { count: 4, ns: 20 + 20 + 5 });
        assert_eq!(c.batches.keys().copied().collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(c.batches[&3][1], Tally { count: 2, ns: 30 });
        assert_eq!(stats.outcomes(), (2, 1));
        assert_eq!(c.generation, GenerationTallies::default());
    }

    #[test]
    fn generative_requests_add_their_tokens_and_times() {
        let stats = VersionStats::default();
        stats.first_token(Duration::from_nanos(1000));
        stats.inter_token(Duration::from_nanos(10));
        stats.inter_token(Duration::from_nanos(30));
        stats.tokens(7, 3);
        stats.tokens(5, 2);
        let g = stats.snapshot().generation;
        assert_eq!(g.time_to_first_token, Tally { count: 1, ns: 1000 });
        assert_eq!(g.inter_token, Tally { count: 2, ns: 40 });
        assert_eq!((g.prompt_tokens, g.completion_tokens), (12, 5));
    }

    #[test]
    fn a_node_reporting_impossible_times_saturates_the_tallies() {
        // The times come from a node's answer (see the frame_decode fuzz
        // target); u64::MAX times requests overflowed.
        let stats = VersionStats::default();
        let times = BatchTimes { input_ns: u64::MAX, infer_ns: u64::MAX / 2, output_ns: 1 };
        stats.batch(4, 3, times);
        stats.batch(4, 3, times);
        let c = stats.snapshot();
        assert_eq!(c.compute_input, Tally { count: 6, ns: u64::MAX });
        assert_eq!(c.compute_infer, Tally { count: 6, ns: u64::MAX });
        assert_eq!(c.compute_output, Tally { count: 6, ns: 6 });
        assert_eq!(c.batches[&4][0], Tally { count: 2, ns: u64::MAX });
    }
}
