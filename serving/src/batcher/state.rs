//! The batching policy as pure state: no channels, no clocks of its own.
//!
//! [`BatchState`] is driven by the batcher task and by unit tests alike.
//! Entries wait in one queue per priority level (Triton's: level 1 is the
//! highest), each in arrival order. When a replica slot is free,
//! [`BatchState::next_batch`] forms a batch from the front of the highest
//! non-empty level:
//!
//! - at once if no batch of this version is executing (an idle replica
//!   never waits for company), or if the queues hold a full batch;
//! - otherwise once that front entry has waited `max_delay`, so that under
//!   load batches fill while earlier ones execute.
//!
//! A batch takes entries level by level, each level in order, while their
//! rows fit in `max_batch_rows`, skipping entries whose non-batch dimensions
//! differ from the first one's. Entries whose deadline passed are handed
//! back by [`BatchState::take_expired`] to be answered with a timeout;
//! entries whose client went away are dropped silently. Past `max_queue`
//! entries, [`BatchState::push`] makes room by shedding the newest entry of
//! the lowest level below the newcomer's, and refuses the newcomer when
//! there is none: under overload the lowest priority goes first.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Priority levels; level 1 is the highest.
pub const PRIORITY_LEVELS: u32 = 8;

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
    /// Its priority level, 1 (highest) to [`PRIORITY_LEVELS`].
    fn priority(&self) -> u32;
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

/// What [`BatchState::push`] did.
#[derive(Debug, PartialEq)]
pub enum Pushed<E> {
    /// The entry waits.
    Queued,
    /// The entry waits, and this lower-priority one was shed to make room.
    Displaced(E),
    /// The queues are full of entries of its priority or higher.
    Refused(E),
}

/// Waiting requests of one model version.
pub struct BatchState<E> {
    policy: BatchPolicy,
    /// One queue per level, the highest first.
    levels: Vec<VecDeque<E>>,
    waiting: usize,
    /// No entry's deadline is earlier than this (it may be earlier than
    /// the true earliest after entries leave), so the batcher's loop checks
    /// deadlines without walking the queue on every wake.
    earliest_deadline: Option<Instant>,
}

fn level_index(priority: u32) -> usize {
    (priority.clamp(1, PRIORITY_LEVELS) - 1) as usize
}

impl<E: Queued> BatchState<E> {
    /// An empty queue with `policy`.
    pub fn new(policy: BatchPolicy) -> Self {
        let levels = (0..PRIORITY_LEVELS).map(|_| VecDeque::new()).collect();
        BatchState { policy, levels, waiting: 0, earliest_deadline: None }
    }

    /// Requests waiting.
    pub fn len(&self) -> usize {
        self.waiting
    }

    /// Whether no request waits.
    pub fn is_empty(&self) -> bool {
        self.waiting == 0
    }

    /// Queues an entry, shedding a lower-priority one when the queues are
    /// full, or hands it back.
    pub fn push(&mut self, entry: E) -> Pushed<E> {
        let mut displaced = None;
        if self.waiting >= self.policy.max_queue {
            self.forget_abandoned();
            if self.waiting >= self.policy.max_queue {
                let level = level_index(entry.priority());
                let lowest = self.levels.iter().rposition(|queue| !queue.is_empty());
                match lowest {
                    Some(lowest) if lowest > level => {
                        displaced = self.levels[lowest].pop_back();
                        self.waiting -= 1;
                    }
                    _ => return Pushed::Refused(entry),
                }
            }
        }
        debug_assert!(entry.rows() <= self.policy.max_batch_rows, "requests are validated against max batch");
        let deadline = entry.deadline();
        self.earliest_deadline = Some(self.earliest_deadline.map_or(deadline, |d| d.min(deadline)));
        self.levels[level_index(entry.priority())].push_back(entry);
        self.waiting += 1;
        match displaced {
            Some(shed) => Pushed::Displaced(shed),
            None => Pushed::Queued,
        }
    }

    fn forget_abandoned(&mut self) {
        for queue in &mut self.levels {
            queue.retain(|e| !e.is_abandoned());
        }
        self.waiting = self.levels.iter().map(VecDeque::len).sum();
    }

    /// Returns the entries past their deadline, dropping abandoned ones on
    /// the way. Walks the queues only when some deadline may have passed.
    pub fn take_expired(&mut self, now: Instant) -> Vec<E> {
        if self.earliest_deadline.is_none_or(|earliest| now < earliest) {
            return Vec::new();
        }
        let mut expired = Vec::new();
        let mut earliest: Option<Instant> = None;
        for queue in &mut self.levels {
            let mut index = 0;
            while index < queue.len() {
                let entry = &queue[index];
                if entry.is_abandoned() {
                    queue.remove(index);
                } else if entry.deadline() <= now {
                    expired.extend(queue.remove(index));
                } else {
                    earliest = Some(earliest.map_or(entry.deadline(), |d| d.min(entry.deadline())));
                    index += 1;
                }
            }
        }
        self.waiting = self.levels.iter().map(VecDeque::len).sum();
        self.earliest_deadline = earliest;
        expired
    }

    /// Removes every entry, e.g. to fail them when no replica is left.
    pub fn drain(&mut self) -> Vec<E> {
        self.earliest_deadline = None;
        self.waiting = 0;
        self.levels.iter_mut().flat_map(|queue| queue.drain(..)).filter(|e| !e.is_abandoned()).collect()
    }

    /// The front entry of the highest non-empty level, dropping abandoned
    /// fronts on the way.
    fn head(&mut self) -> Option<&E> {
        for queue in &mut self.levels {
            while queue.front().is_some_and(|e| e.is_abandoned()) {
                queue.pop_front();
                self.waiting -= 1;
            }
            if !queue.is_empty() {
                return queue.front();
            }
        }
        None
    }

    /// Forms the next batch, given that a replica slot is free and
    /// `batches_in_flight` batches of this version are executing.
    pub fn next_batch(&mut self, now: Instant, batches_in_flight: usize) -> Next<E> {
        let Some(head) = self.head() else { return Next::Empty };
        let flush_at = head.enqueued() + self.policy.max_delay;
        let idle = batches_in_flight == 0;
        if !idle && now < flush_at && !self.holds_full_batch() {
            return Next::WaitUntil(flush_at);
        }
        Next::Batch(self.take_batch())
    }

    /// When the task must wake even if nothing arrives: the earliest
    /// deadline, and the head entry's flush time while batches execute but
    /// a slot is free. With every slot taken a flush could not go anywhere;
    /// the next completion wakes the task instead (waking for a flush time
    /// already past would spin).
    pub fn next_wakeup(&self, batches_in_flight: usize, slots: usize) -> Option<Instant> {
        let deadline = if self.waiting == 0 { None } else { self.earliest_deadline };
        let head = self.levels.iter().find_map(|queue| queue.front());
        let flush = (batches_in_flight > 0 && batches_in_flight < slots)
            .then(|| head.map(|e| e.enqueued() + self.policy.max_delay))
            .flatten();
        match (deadline, flush) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn holds_full_batch(&self) -> bool {
        let mut rows = 0u64;
        let Some(first) = self.levels.iter().find_map(|queue| queue.front()) else { return false };
        for entry in self.levels.iter().flatten().filter(|e| !e.is_abandoned() && e.can_join(first)) {
            rows += u64::from(entry.rows());
            if rows >= u64::from(self.policy.max_batch_rows) {
                return true;
            }
        }
        false
    }

    /// Takes the head entry and, level by level and in order, every later
    /// one that fits and can join it. Entries taken from the front cost O(1)
    /// each; the walk stops once the batch is full.
    fn take_batch(&mut self) -> Vec<E> {
        let first_level = self.levels.iter().position(|queue| !queue.is_empty()).expect("next_batch found a head");
        let first = self.levels[first_level].pop_front().expect("the level is not empty");
        self.waiting -= 1;
        let max = self.policy.max_batch_rows;
        let mut rows = first.rows();
        let mut batch = vec![first];
        for queue in &mut self.levels[first_level..] {
            let mut index = 0;
            while rows < max && index < queue.len() {
                let entry = &queue[index];
                if entry.is_abandoned() {
                    queue.remove(index);
                    self.waiting -= 1;
                } else if rows + entry.rows() <= max && entry.can_join(&batch[0]) {
                    rows += entry.rows();
                    batch.extend(queue.remove(index));
                    self.waiting -= 1;
                } else {
                    index += 1;
                }
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
        priority: u32,
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
        fn priority(&self) -> u32 {
            self.priority
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
                priority: 4,
                abandoned: Rc::new(Cell::new(false)),
            }
        }
    }

    fn policy() -> BatchPolicy {
        BatchPolicy { max_batch_rows: 8, max_delay: Duration::from_micros(500), max_queue: 16 }
    }

    trait Queue {
        fn queued(self);
    }

    impl Queue for Pushed<Fake> {
        fn queued(self) {
            assert_eq!(self, Pushed::Queued);
        }
    }

    fn at_priority(mut entry: Fake, priority: u32) -> Fake {
        entry.priority = priority;
        entry
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
        state.push(clock.entry(1, 1, 0)).queued();
        assert_eq!(ids(state.next_batch(clock.at(0), 0)), vec![1]);
        assert_eq!(state.len(), 0);
    }

    #[test]
    fn busy_version_waits_up_to_max_delay() {
        let clock = Clock::new();
        let mut state = BatchState::new(policy());
        state.push(clock.entry(1, 1, 0)).queued();
        state.push(clock.entry(2, 1, 100)).queued();
        assert_eq!(state.next_batch(clock.at(200), 1), Next::WaitUntil(clock.at(500)));
        assert_eq!(state.next_wakeup(1, 2), Some(clock.at(500)));
        assert_eq!(ids(state.next_batch(clock.at(500), 1)), vec![1, 2]);
    }

    #[test]
    fn full_batch_goes_without_waiting() {
        let clock = Clock::new();
        let mut state = BatchState::new(policy());
        for id in 0..10 {
            state.push(clock.entry(id, 1, 0)).queued();
        }
        assert_eq!(ids(state.next_batch(clock.at(1), 3)), (0..8).collect::<Vec<_>>());
        assert_eq!(state.len(), 2);
    }

    #[test]
    fn rows_never_exceed_the_maximum() {
        let clock = Clock::new();
        let mut state = BatchState::new(policy());
        state.push(clock.entry(1, 5, 0)).queued();
        state.push(clock.entry(2, 4, 0)).queued();
        state.push(clock.entry(3, 3, 0)).queued();
        assert_eq!(ids(state.next_batch(clock.at(0), 0)), vec![1, 3]);
        assert_eq!(ids(state.next_batch(clock.at(0), 0)), vec![2]);
    }

    #[test]
    fn different_shapes_are_not_mixed() {
        let clock = Clock::new();
        let mut state = BatchState::new(policy());
        state.push(clock.entry(1, 1, 0)).queued();
        let mut wide = clock.entry(2, 1, 0);
        wide.width = 512;
        state.push(wide).queued();
        state.push(clock.entry(3, 1, 0)).queued();
        assert_eq!(ids(state.next_batch(clock.at(0), 0)), vec![1, 3]);
        assert_eq!(ids(state.next_batch(clock.at(0), 0)), vec![2]);
    }

    #[test]
    fn queue_bound_refuses_extra_entries() {
        let clock = Clock::new();
        let mut state = BatchState::new(BatchPolicy { max_queue: 2, ..policy() });
        state.push(clock.entry(1, 1, 0)).queued();
        state.push(clock.entry(2, 1, 0)).queued();
        let Pushed::Refused(refused) = state.push(clock.entry(3, 1, 0)) else { panic!("a full queue took more") };
        assert_eq!(refused.id, 3);
        assert_eq!(state.len(), 2);
    }

    #[test]
    fn abandoned_entries_free_their_place_and_are_never_batched() {
        let clock = Clock::new();
        let mut state = BatchState::new(BatchPolicy { max_queue: 2, ..policy() });
        let gone = clock.entry(1, 1, 0);
        let flag = gone.abandoned.clone();
        state.push(gone).queued();
        state.push(clock.entry(2, 1, 0)).queued();
        flag.set(true);
        state.push(clock.entry(3, 1, 0)).queued();
        assert_eq!(ids(state.next_batch(clock.at(0), 0)), vec![2, 3]);
    }

    #[test]
    fn expired_entries_are_handed_back() {
        let clock = Clock::new();
        let mut state = BatchState::new(policy());
        let mut short = clock.entry(1, 1, 0);
        short.deadline = clock.at(300);
        state.push(short).queued();
        state.push(clock.entry(2, 1, 0)).queued();
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
        state.push(clock.entry(1, 1, 0)).queued();
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
        state.push(short).queued();
        assert_eq!(ids(state.next_batch(clock.at(10), 0)), vec![1]);
        // The entry with the short deadline left in a batch; a later one
        // must neither expire early nor be forgotten.
        let mut later = clock.entry(2, 1, 20);
        later.deadline = clock.at(900);
        state.push(later).queued();
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
        state.push(gone).queued();
        state.push(clock.entry(2, 1, 0)).queued();
        assert_eq!(state.drain().iter().map(|e| e.id).collect::<Vec<_>>(), vec![2]);
        assert_eq!(state.len(), 0);
    }

    #[test]
    fn higher_priorities_are_batched_first_and_fill_with_lower_ones() {
        let clock = Clock::new();
        let mut state = BatchState::new(policy());
        for id in 0..6 {
            state.push(at_priority(clock.entry(id, 1, u64::from(id)), 8)).queued();
        }
        state.push(at_priority(clock.entry(10, 1, 100), 1)).queued();
        state.push(at_priority(clock.entry(11, 1, 101), 2)).queued();
        // The newest, highest entries lead; the oldest low ones fill the rest.
        assert_eq!(ids(state.next_batch(clock.at(200), 0)), vec![10, 11, 0, 1, 2, 3, 4, 5]);
        // A busy version waits on the head's flush time, the head being the
        // highest level's oldest entry.
        state.push(at_priority(clock.entry(20, 1, 300), 8)).queued();
        state.push(at_priority(clock.entry(21, 1, 400), 1)).queued();
        assert_eq!(state.next_batch(clock.at(450), 1), Next::WaitUntil(clock.at(900)));
        assert_eq!(ids(state.next_batch(clock.at(900), 1)), vec![21, 20]);
    }

    #[test]
    fn a_full_queue_sheds_its_lowest_priority_first() {
        let clock = Clock::new();
        let mut state = BatchState::new(BatchPolicy { max_queue: 3, ..policy() });
        state.push(at_priority(clock.entry(1, 1, 0), 8)).queued();
        state.push(at_priority(clock.entry(2, 1, 1), 8)).queued();
        state.push(at_priority(clock.entry(3, 1, 2), 5)).queued();
        // A higher newcomer displaces the newest of the lowest level.
        match state.push(at_priority(clock.entry(4, 1, 3), 1)) {
            Pushed::Displaced(shed) => assert_eq!(shed.id, 2),
            other => panic!("expected a displacement, got {other:?}"),
        }
        // A newcomer no higher than the lowest waiting is refused.
        assert!(matches!(state.push(at_priority(clock.entry(5, 1, 4), 8)), Pushed::Refused(_)));
        assert_eq!(state.len(), 3);
        assert_eq!(ids(state.next_batch(clock.at(10), 0)), vec![4, 3, 1]);
        assert!(state.is_empty());
    }
}
