//! How much a version is wanted right now: when a request last came for it,
//! how many are in flight and how many of those wait for a replica. Versions loaded on demand
//! (`replicas.min: 0`) are placed while some coordinator reports them
//! wanted and unloaded once they have been idle long enough.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A version's recent use.
#[derive(Debug, Default)]
pub struct Activity {
    /// When the last request arrived or ended, in ms since [`origin`],
    /// plus one (0: never).
    last_request_ms: AtomicU64,
    /// Requests waiting for a replica to be loaded.
    waiting: AtomicU32,
    /// Requests being served.
    in_flight: AtomicU32,
    /// When requests last went from none in flight to some, in ms since
    /// [`origin`], plus one (0: never).
    busy_since_ms: AtomicU64,
}

/// A request counted as waiting for a replica until dropped.
pub struct Waiting<'a>(&'a Activity);

/// A request counted in flight until dropped.
pub struct InFlight<'a>(&'a Activity);

impl Activity {
    /// Notes a request that arrived at `arrived`, counted in flight while
    /// the guard lives.
    pub fn touch(&self, arrived: Instant) -> InFlight<'_> {
        let ms = arrived.saturating_duration_since(origin()).as_millis() as u64 + 1;
        self.last_request_ms.fetch_max(ms, Ordering::Relaxed);
        if self.in_flight.fetch_add(1, Ordering::Relaxed) == 0 {
            self.busy_since_ms.store(ms, Ordering::Relaxed);
        }
        InFlight(self)
    }

    /// Whether requests are in flight now (waiting ones included).
    pub fn is_busy(&self) -> bool {
        self.in_flight() > 0
    }

    /// Requests in flight now (waiting ones included).
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// How long ago the last request arrived, if any did.
    pub fn idle_for(&self, now: Instant) -> Option<Duration> {
        since(&self.last_request_ms, now)
    }

    /// How long requests have been in flight without a break (the age of
    /// the oldest one, at most), if any are.
    pub fn busy_for(&self, now: Instant) -> Option<Duration> {
        match self.is_busy() {
            true => since(&self.busy_since_ms, now),
            false => None,
        }
    }

    /// Counts a request as waiting for a replica while the guard lives.
    pub fn wait(&self) -> Waiting<'_> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        Waiting(self)
    }

    /// Requests waiting for a replica now.
    pub fn waiting(&self) -> u32 {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Whether a request waits now or one arrived within `idle_after`.
    pub fn is_wanted(&self, idle_after: Duration, now: Instant) -> bool {
        self.is_busy() || self.waiting() > 0 || self.idle_for(now).is_some_and(|idle| idle < idle_after)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        // A request that ends is use too: a long one (a generation stream)
        // leaves the version wanted for the idle time after it, not before.
        let ms = Instant::now().saturating_duration_since(origin()).as_millis() as u64 + 1;
        self.0.last_request_ms.fetch_max(ms, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How long before `now` the instant kept in `ms_plus_one` was.
fn since(ms_plus_one: &AtomicU64, now: Instant) -> Option<Duration> {
    match ms_plus_one.load(Ordering::Relaxed) {
        0 => None,
        plus_one => Some(now.saturating_duration_since(origin() + Duration::from_millis(plus_one - 1))),
    }
}

/// The instant times are counted from.
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_request_leaves_its_version_wanted_for_the_idle_time_after_it_ends() {
        let activity = Activity::default();
        let idle = Duration::from_secs(10);
        // A stream that began a minute ago ends now.
        let stream = activity.touch(Instant::now() - Duration::from_secs(60));
        drop(stream);
        assert!(
            activity.is_wanted(idle, Instant::now() + Duration::from_secs(5)),
            "unwanted at once after a long stream"
        );
        assert!(!activity.is_wanted(idle, Instant::now() + Duration::from_secs(11)));
    }

    #[test]
    fn a_version_is_wanted_while_requests_wait_and_for_the_idle_time_after_one() {
        let activity = Activity::default();
        let now = Instant::now();
        let idle = Duration::from_secs(10);
        assert!(!activity.is_wanted(idle, now), "never asked for");
        let waiting = activity.wait();
        assert!(activity.is_wanted(idle, now + Duration::from_secs(3600)));
        drop(waiting);
        assert!(!activity.is_wanted(idle, now));
        let in_flight = activity.touch(now);
        assert!(activity.is_busy());
        assert!(activity.is_wanted(idle, now + Duration::from_secs(3600)), "in flight, it is wanted");
        drop(in_flight);
        assert!(!activity.is_busy());
        let idle_for = activity.idle_for(now + Duration::from_secs(9)).unwrap();
        // Kept in whole milliseconds.
        assert!(idle_for.abs_diff(Duration::from_secs(9)) < Duration::from_millis(2), "{idle_for:?}");
        assert!(activity.is_wanted(idle, now + Duration::from_secs(9)));
        assert!(!activity.is_wanted(idle, now + Duration::from_secs(11)));
        drop(activity.touch(now - Duration::from_secs(100)));
        assert!(activity.is_wanted(idle, now + Duration::from_secs(9)), "an older arrival does not move it back");
    }

    #[test]
    fn busy_for_counts_from_the_first_of_an_unbroken_run_of_requests() {
        let activity = Activity::default();
        let now = Instant::now();
        assert_eq!(activity.busy_for(now), None);
        let first = activity.touch(now);
        let second = activity.touch(now + Duration::from_secs(5));
        let busy = activity.busy_for(now + Duration::from_secs(8)).unwrap();
        assert!(busy.abs_diff(Duration::from_secs(8)) < Duration::from_millis(2), "{busy:?}");
        drop((first, second));
        assert_eq!(activity.busy_for(now + Duration::from_secs(8)), None, "nothing in flight");
        let _third = activity.touch(now + Duration::from_secs(9));
        let busy = activity.busy_for(now + Duration::from_secs(10)).unwrap();
        assert!(busy.abs_diff(Duration::from_secs(1)) < Duration::from_millis(2), "a new run: {busy:?}");
    }
}
