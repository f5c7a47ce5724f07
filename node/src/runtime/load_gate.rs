//! Who may load when on one node.
//!
//! Loads of different versions run side by side, up to a bound. A load
//! that must be measured (no node has measured its version yet) runs alone:
//! the allocator's count before and after is the only measure of what it
//! keeps, and a neighbour's load would blur it. A load that happened to
//! run alone is measured too. Two loads of one version wait for each other,
//! so that the second finds the first's replica.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{OwnedMutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard, Semaphore, SemaphorePermit};

/// A version's name and number.
type VersionKey = (String, u64);

/// The gate every load (and trial) passes.
pub struct LoadGate {
    side_by_side: Semaphore,
    alone: RwLock<()>,
    versions: Mutex<HashMap<VersionKey, Arc<tokio::sync::Mutex<()>>>>,
    /// Loads under way.
    active: AtomicU32,
    /// Loads started, ever.
    started: AtomicU64,
}

/// A load's right to run, held until it is done.
pub struct LoadTurn<'a> {
    gate: &'a LoadGate,
    _version: OwnedMutexGuard<()>,
    _mode: Mode<'a>,
    /// No other load was under way when this one started.
    first: bool,
    /// `started` once this one had started.
    started: u64,
    key: VersionKey,
}

/// The guards a turn holds, released with it.
enum Mode<'a> {
    Alone { _all: RwLockWriteGuard<'a, ()> },
    Shared { _some: RwLockReadGuard<'a, ()>, _permit: SemaphorePermit<'a> },
}

impl LoadGate {
    /// A gate letting `side_by_side` loads run at once (at least one).
    pub fn new(side_by_side: usize) -> LoadGate {
        LoadGate {
            side_by_side: Semaphore::new(side_by_side.max(1)),
            alone: RwLock::new(()),
            versions: Mutex::new(HashMap::new()),
            active: AtomicU32::new(0),
            started: AtomicU64::new(0),
        }
    }

    /// Waits for the turn to load `key`: alone when `alone`, else beside
    /// other loads.
    pub async fn enter(&self, key: VersionKey, alone: bool) -> LoadTurn<'_> {
        let lock = self.versions.lock().entry(key.clone()).or_default().clone();
        let version = lock.lock_owned().await;
        let mode = match alone {
            true => Mode::Alone { _all: self.alone.write().await },
            false => {
                let shared = self.alone.read().await;
                let permit = self.side_by_side.acquire().await.expect("the semaphore is never closed");
                Mode::Shared { _some: shared, _permit: permit }
            }
        };
        let first = self.active.fetch_add(1, Ordering::AcqRel) == 0;
        let started = self.started.fetch_add(1, Ordering::AcqRel) + 1;
        LoadTurn { gate: self, _version: version, _mode: mode, first, started, key }
    }
}

impl LoadTurn<'_> {
    /// Whether no other load ran at any time since this one started.
    pub fn ran_alone(&self) -> bool {
        self.first && self.gate.started.load(Ordering::Acquire) == self.started
    }
}

impl Drop for LoadTurn<'_> {
    fn drop(&mut self) {
        self.gate.active.fetch_sub(1, Ordering::AcqRel);
        let mut versions = self.gate.versions.lock();
        // Only the map and this turn's guard hold the lock: nobody waits on it.
        if versions.get(&self.key).is_some_and(|lock| Arc::strong_count(lock) == 2) {
            versions.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn key(name: &str) -> (String, u64) {
        (name.to_string(), 1)
    }

    #[tokio::test]
    async fn loads_of_different_versions_run_side_by_side_and_are_not_alone() {
        let gate = LoadGate::new(2);
        let a = gate.enter(key("a"), false).await;
        let b = tokio::time::timeout(Duration::from_secs(1), gate.enter(key("b"), false)).await.expect("side by side");
        assert!(!a.ran_alone() && !b.ran_alone());
        // The bound: a third waits.
        assert!(tokio::time::timeout(Duration::from_millis(50), gate.enter(key("c"), false)).await.is_err());
        drop((a, b));
        let c = gate.enter(key("c"), false).await;
        assert!(c.ran_alone(), "nothing else ran since it started");
    }

    #[tokio::test]
    async fn a_load_to_measure_waits_for_the_others_and_holds_back_new_ones() {
        let gate = Arc::new(LoadGate::new(4));
        let shared = gate.enter(key("a"), false).await;
        let waiting = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.enter(key("m"), true).await.ran_alone() })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "a shared load is under way");
        // A load arriving after it waits behind it.
        assert!(tokio::time::timeout(Duration::from_millis(50), gate.enter(key("b"), false)).await.is_err());
        drop(shared);
        assert!(waiting.await.unwrap(), "it ran alone");
    }

    #[tokio::test]
    async fn two_loads_of_one_version_take_turns_and_leave_no_lock_behind() {
        let gate = Arc::new(LoadGate::new(4));
        let first = gate.enter(key("a"), false).await;
        let second = {
            let gate = gate.clone();
            tokio::spawn(async move {
                let _turn = gate.enter(key("a"), false).await;
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!second.is_finished());
        drop(first);
        second.await.unwrap();
        assert!(gate.versions.lock().is_empty());
    }
}
