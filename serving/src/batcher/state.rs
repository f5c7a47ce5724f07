//! The batching policy as pure state: no channels, no clocks of its own.
//!
//! [`BatchState`] is driven by the batcher task and by unit tests alike.
//! Entries wait in arrival order. When a replica slot is free,
//! [`BatchState::next_batch`] forms a batch from the front of the queue:
//!
//! - at once if no batch of this version is executing (an idle replica
//!   never waits for company), or if the queue holds a full batch;
//! - otherwise once the oldest entry has waited `max_delay`, so that under
//!   load batches fill while earlier ones execute.
//!
//! A batch takes entries in order while their rows fit in `max_batch_rows`,
//! skipping entries whose non-batch dimensions differ from the first one's.
//! Entries whose deadline passed are handed back by
//! [`BatchState::take_expired`] to be answered with a timeout; entries whose
//! client went away are dropped silently. [`BatchState::push`] refuses entries
//! beyond `max_queue`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What the state needs to know about a queued request.
pub trait Queued {
    /// Rows the request contributes to a batch.
    fn rows(&self) -> u32;
    /// When it was queued.
    fn enqueued(&self) -> Instant;
    /// When it must be answered by.
    fn deadline(&self) -> Instant;
    /// Whether its client has gone.
    fn is_abandoned(&self) -> bool;
    /// Whether it can share a batch with `first` (same non-batch dimensions).
    fn can_join(&self, first: &Self) -> bool;
}

/// Limits of a version's batching.
#[derive(Debug, Clone, Copy)]
pub struct BatchPolicy {
    /// Most rows in one batch.
    pub max_batch_rows: u32,
    /// Longest wait for more rows while other batches execute.
    pub max_delay: Duration,
    /// Most requests waiting.
    pub max_queue: usize,
}

/// What to do next.
#[derive(Debug, PartialEq)]
pub enum Next<E> {
    /// Send this batch now.
    Batch(Vec<E>),
    /// Nothing to send before this instant.
    WaitUntil(Instant),
    /// The queue is empty.
    Empty,
}

/// Waiting requests of one model version.
pub struct BatchState<E> {
    policy: BatchPolicy,
    queue: VecDeque<E>,
    /// No entry's deadline is earlier than this (it may be earlier than
    /// the true earliest after entries leave), so the batcher's loop checks
    /// deadlines without walking the queue on every wake.
    earliest_deadline: Option<Instant>,
}

impl<E: Queued> BatchState<E> {
    /// An empty queue with `policy`.
    pub fn new(policy: BatchPolicy) -> Self {
        BatchState { policy, queue: VecDeque::new(), earliest_deadline: None }
    }

    /// Requests waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether no request waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Queues an entry, or hands it back when the queue is full.
    pub fn push(&mut self, entry: E) -> Result<(), E> {
        if self.queue.len() >= self.policy.max_queue {
            self.queue.retain(|e| !e.is_abandoned());
            if self.queue.len() >= self.policy.max_queue {
                return Err(entry);
            }
        }
        debug_assert!(entry.rows() <= self.policy.max_batch_rows, "requests are validated against max batch");
        let deadline = entry.deadline();
        self.earliest_deadline = Some(self.earliest_deadline.map_or(deadline, |d| d.min(deadline)));
        self.queue.push_back(entry);
        Ok(())
    }

    /// Returns the entries past their deadline, dropping abandoned ones on
    /// the way. Walks the queue only when some deadline may have passed.
    pub fn take_expired(&mut self, now: Instant) -> Vec<E> {
        if self.earliest_deadline.is_none_or(|earliest| now < earliest) {
            return Vec::new();
        }
        let mut expired = Vec::new();
        let mut earliest: Option<Instant> = None;
        let mut index = 0;
        while index < self.queue.len() {
            let entry = &self.queue[index];
            if entry.is_abandoned() {
                self.queue.remove(index);
            } else if entry.deadline() <= now {
                expired.extend(self.queue.remove(index));
            } else {
                earliest = Some(earliest.map_or(entry.deadline(), |d| d.min(entry.deadline())));
                index += 1;
            }
        }
        self.earliest_deadline = earliest;
        expired
    }

    /// Removes every entry, e.g. to fail them when no replica is left.
    pub fn drain(&mut self) -> Vec<E> {
        self.earliest_deadline = None;
        self.queue.drain(..).filter(|e| !e.is_abandoned()).collect()
    }

    /// Forms the next batch, given that a replica slot is free and
    /// `batches_in_flight` batches of this version are executing.
    pub fn next_batch(&mut self, now: Instant, batches_in_flight: usize) -> Next<E> {
        while self.queue.front().is_some_and(|e| e.is_abandoned()) {
            self.queue.pop_front();
        }
        let Some(oldest) = self.queue.front() else { return Next::Empty };
        let flush_at = oldest.enqueued() + self.policy.max_delay;
        let idle = batches_in_flight == 0;
        if !idle && now < flush_at && !self.holds_full_batch() {
            return Next::WaitUntil(flush_at);
        }
        Next::Batch(self.take_batch())
    }

    /// When the task must wake even if nothing arrives: the earliest
    /// deadline, and the oldest entry's flush time while batches execute but
    /// a slot is free. With every slot taken a flush could not go anywhere;
    /// the next completion wakes the task instead (waking for a flush time
    /// already past would spin).
    pub fn next_wakeup(&self, batches_in_flight: usize, slots: usize) -> Option<Instant> {
        let deadline = if self.queue.is_empty() { None } else { self.earliest_deadline };
        let flush = (batches_in_flight > 0 && batches_in_flight < slots)
            .then(|| self.queue.front().map(|e| e.enqueued() + self.policy.max_delay))
            .flatten();
        match (deadline, flush) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn holds_full_batch(&self) -> bool {
        let mut rows = 0u64;
        let first = &self.queue[0];
        for entry in self.queue.iter().filter(|e| !e.is_abandoned() && e.can_join(first)) {
            rows += u64::from(entry.rows());
            if rows >= u64::from(self.policy.max_batch_rows) {
                return true;
            }
        }
        false
    }

    /// Takes the front entry and, in order, every later one that fits and
    /// can join it. Entries taken from the front cost O(1) each; the walk
    /// stops once the batch is full.
    fn take_batch(&mut self) -> Vec<E> {
        let first = self.queue.pop_front().expect("next_batch checked the queue is not empty");
        let max = self.policy.max_batch_rows;
        let mut rows = first.rows();
        let mut batch = vec![first];
        let mut index = 0;
        while rows < max && index < self.queue.len() {
            let entry = &self.queue[index];
            if entry.is_abandoned() {
                self.queue.remove(index);
            } else if rows + entry.rows() <= max && entry.can_join(&batch[0]) {
                rows += entry.rows();
                batch.extend(self.queue.remove(index));
            } else {
                index += 1;
            }
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use super::*;

    #[derive(Debug, PartialEq)]
    struct Fake {
        id: u32,
        rows: u32,
        enqueued: Instant,
        deadline: Instant,
        width: i64,
        abandoned: Rc<Cell<bool>>,
    }

    impl Queued for Fake {
        fn rows(&self) -> u32 {
            self.rows
        }
        fn enqueued(&self) -> Instant {
            self.enqueued
        }
        fn deadline(&self) -> Instant {
            self.deadline
        }
        fn is_abandoned(&self) -> bool {
            self.abandoned.get()
        }
        fn can_join(&self, first: &Self) -> bool {
            self.width == first.width
        }
    }

    struct Clock {
        start: Instant,
    }

    impl Clock {
        fn new() -> Self {
            Clock { start: Instant::now() }
        }
        fn at(&self, us: u64) -> Instant {
            self.start + Duration::from_micros(us)
        }
        fn entry(&self, id: u32, rows: u32, at_us: u64) -> Fake {
            Fake {
                id,
                rows,
                enqueued: self.at(at_us),
                deadline: self.at(at_us + 1_000_000),
                width: 256,
                abandoned: Rc::new(Cell::new(false)),
            }
        }
    }

    fn policy() -> BatchPolicy {
        BatchPolicy { max_batch_rows: 8, max_delay: Duration::from_micros(500), max_queue: 16 }
    }

    fn ids(next: Next<Fake>) -> Vec<u32> {
        match next {
            Next::Batch(batch) => batch.iter().map(|e| e.id).collect(),
            other => panic!("expected a batch, got {other:?}"),
        }
    }

    #[test]
    fn empty_queue_has_nothing() {
        let mut state = BatchState::<Fake>::new(policy());
        assert_eq!(state.next_batch(Instant::now(), 0), Next::Empty);
        assert_eq!(state.next_wakeup(0, 2), None);
    }

    #[test]
    fn idle_replica_takes_a_single_request_at_once() {
        let clock = Clock::new();
        let mut state = BatchState::new(policy());
        state.push(clock.entry(1, 1, 0)).unwrap();
        assert_eq!(ids(state.next_batch(clock.at(0), 0)), vec![1]);
        assert_eq!(state.len(), 0);
    }

    #[test]
    fn busy_version_waits_up_to_max_delay() {
        let clock = Clock::new();
        let mut state = BatchState::new(policy());
        state.push(clock.entry(1, 1, 0)).unwrap();
        state.push(clock.entry(2, 1, 100)).unwrap();
        assert_eq!(state.next_batch(clock.at(200), 1), Next::WaitUntil(clock.at(500)));
        assert_eq!(state.next_wakeup(1, 2), Some(clock.at(500)));
        assert_eq!(ids(state.next_batch(clock.at(500), 1)), vec![1, 2]);
    }

    #[test]
    fn full_batch_goes_without_waiting() {
        let clock = Clock::new();
        let mut state = BatchState::new(policy());
        for id in 0..10 {
            state.push(clock.entry(id, 1, 0)).unwrap();
        }
        assert_eq!(ids(state.next_batch(clock.at(1), 3)), (0..8).collect::<Vec<_>>());
        assert_eq!(state.len(), 2);
    }

    #[test]
    fn rows_never_exceed_the_maximum() {
        let clock = Clock::new();
        let mut state = BatchState::new(policy());
        state.push(clock.entry(1, 5, 0)).unwrap();
        state.push(clock.entry(2, 4, 0)).unwrap();
        state.push(clock.entry(3, 3, 0)).unwrap();
        assert_eq!(ids(state.next_batch(clock.at(0), 0)), vec![1, 3]);
        assert_eq!(ids(state.next_batch(clock.at(0), 0)), vec![2]);
    }

    #[test]
    fn different_shapes_are_not_mixed() {
        let clock = Clock::new();
        let mut state = BatchState::new(policy());
        state.push(clock.entry(1, 1, 0)).unwrap();
        let mut wide = clock.entry(2, 1, 0);
        wide.width = 512;
        state.push(wide).unwrap();
        state.push(clock.entry(3, 1, 0)).unwrap();
        assert_eq!(ids(state.next_batch(clock.at(0), 0)), vec![1, 3]);
        assert_eq!(ids(state.next_batch(clock.at(0), 0)), vec![2]);
    }

    #[test]
    fn queue_bound_refuses_extra_entries() {
        let clock = Clock::new();
        let mut state = BatchState::new(BatchPolicy { max_queue: 2, ..policy() });
        state.push(clock.entry(1, 1, 0)).unwrap();
        state.push(clock.entry(2, 1, 0)).unwrap();
        let refused = state.push(clock.entry(3, 1, 0)).unwrap_err();
        assert_eq!(refused.id, 3);
        assert_eq!(state.len(), 2);
    }

    #[test]
    fn abandoned_entries_free_their_place_and_are_never_batched() {
        let clock = Clock::new();
        let mut state = BatchState::new(BatchPolicy { max_queue: 2, ..policy() });
        let gone = clock.entry(1, 1, 0);
        let flag = gone.abandoned.clone();
        state.push(gone).unwrap();
        state.push(clock.entry(2, 1, 0)).unwrap();
        flag.set(true);
        state.push(clock.entry(3, 1, 0)).unwrap();
        assert_eq!(ids(state.next_batch(clock.at(0), 0)), vec![2, 3]);
    }

    #[test]
    fn expired_entries_are_handed_back() {
        let clock = Clock::new();
        let mut state = BatchState::new(policy());
        let mut short = clock.entry(1, 1, 0);
        short.deadline = clock.at(300);
        state.push(short).unwrap();
        state.push(clock.entry(2, 1, 0)).unwrap();
        assert_eq!(state.next_wakeup(0, 2), Some(clock.at(300)));
        assert!(state.take_expired(clock.at(299)).is_empty());
        let expired = state.take_expired(clock.at(300));
        assert_eq!(expired.iter().map(|e| e.id).collect::<Vec<_>>(), vec![1]);
        assert_eq!(ids(state.next_batch(clock.at(300), 0)), vec![2]);
    }

    #[test]
    fn no_flush_wakeup_while_every_slot_is_busy() {
        let clock = Clock::new();
        let mut state = BatchState::new(policy());
        state.push(clock.entry(1, 1, 0)).unwrap();
        // Two slots, both executing: only the deadline can wake the task.
        assert_eq!(state.next_wakeup(2, 2), Some(clock.at(1_000_000)));
        assert_eq!(state.next_wakeup(1, 2), Some(clock.at(500)));
    }

    #[test]
    fn deadlines_are_tracked_after_entries_leave() {
        let clock = Clock::new();
        let mut state = BatchState::new(policy());
        let mut short = clock.entry(1, 1, 0);
        short.deadline = clock.at(300);
        state.push(short).unwrap();
        assert_eq!(ids(state.next_batch(clock.at(10), 0)), vec![1]);
        // The entry with the short deadline left in a batch; a later one
        // must neither expire early nor be forgotten.
        let mut later = clock.entry(2, 1, 20);
        later.deadline = clock.at(900);
        state.push(later).unwrap();
        assert!(state.take_expired(clock.at(400)).is_empty());
        assert_eq!(state.next_wakeup(0, 2), Some(clock.at(900)));
        let expired = state.take_expired(clock.at(900));
        assert_eq!(expired.iter().map(|e| e.id).collect::<Vec<_>>(), vec![2]);
        assert_eq!(state.len(), 0);
    }

    #[test]
    fn drain_returns_live_entries() {
        let clock = Clock::new();
        let mut state = BatchState::new(policy());
        let gone = clock.entry(1, 1, 0);
        gone.abandoned.set(true);
        state.push(gone).unwrap();
        state.push(clock.entry(2, 1, 0)).unwrap();
        assert_eq!(state.drain().iter().map(|e| e.id).collect::<Vec<_>>(), vec![2]);
        assert_eq!(state.len(), 0);
    }
}
