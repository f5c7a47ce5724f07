//! Per-key rate limits and quotas: token buckets for requests and rows,
//! a count of requests in flight.
//!
//! With several coordinators each one enforces its share of a key's rates
//! and bursts: the figures divided by the number of live coordinators
//! ([`Limiter::set_coordinators`], from etcd membership). Clients spread
//! over the coordinators (a load balancer, or the test's round robin) then
//! see the key's rate for the whole cluster. Concurrency is per coordinator.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::caller::Caller;
use crate::limits::Limits;
use crate::Refusal;

/// A token bucket: `rate` tokens a second up to `capacity`.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    fn full(capacity: f64, now: Instant) -> Bucket {
        Bucket { tokens: capacity, updated: now }
    }

    /// Takes `cost` tokens, or tells how long until they are there.
    fn take(&mut self, cost: f64, rate: f64, capacity: f64, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(capacity);
        self.updated = now;
        if self.tokens >= cost {
            self.tokens -= cost;
            return Ok(());
        }
        Err(Duration::from_secs_f64((cost - self.tokens) / rate))
    }
}

/// One key's state.
#[derive(Debug)]
struct KeyState {
    requests: Option<Bucket>,
    rows: Option<Bucket>,
    in_flight: u32,
}

/// The limits of every key, as this coordinator enforces them.
#[derive(Default)]
pub struct Limiter {
    keys: Mutex<HashMap<String, Arc<Mutex<KeyState>>>>,
    coordinators: AtomicUsize,
}

/// A request admitted under its key's limits; dropping it ends the
/// request's share of the key's concurrency.
#[must_use = "the admission holds a concurrency slot until dropped"]
pub struct Admission {
    held: Option<(Arc<Mutex<KeyState>>, Limits)>,
    share: f64,
}

impl Limiter {
    /// A limiter for one coordinator until told otherwise.
    pub fn new() -> Limiter {
        Limiter { keys: Mutex::new(HashMap::new()), coordinators: AtomicUsize::new(1) }
    }

    /// How many coordinators share each key's rates.
    pub fn set_coordinators(&self, count: usize) {
        self.coordinators.store(count.max(1), Ordering::Relaxed);
    }

    /// Admits one request of `caller`: a token from its request bucket and a
    /// concurrency slot; or the refusal with when to retry.
    pub fn admit(&self, caller: &Caller) -> Result<Admission, Refusal> {
        let share = 1.0 / self.coordinators.load(Ordering::Relaxed) as f64;
        let (Some(limits), Some(key)) = (caller.limits(), caller.key()) else {
            return Ok(Admission { held: None, share });
        };
        let state = self
            .keys
            .lock()
            .entry(key.id.clone())
            .or_insert_with(|| Arc::new(Mutex::new(fresh(limits, share))))
            .clone();
        let now = Instant::now();
        {
            let mut guard = state.lock();
            if let Some(max) = limits.max_concurrent {
                if guard.in_flight >= max {
                    return Err(limited(
                        format!("this key has {max} requests in flight, its limit"),
                        Duration::from_secs(1),
                    ));
                }
            }
            if let (Some(bucket), Some(rate)) = (guard.requests.as_mut(), limits.requests_per_second) {
                let capacity = request_capacity(limits) * share;
                bucket
                    .take(1.0, rate * share, capacity.max(1.0), now)
                    .map_err(|wait| limited(format!("this key is limited to {rate} requests/s"), wait))?;
            }
            guard.in_flight += 1;
        }
        Ok(Admission { held: Some((state, limits.clone())), share })
    }
}

impl Admission {
    /// Takes `rows` from the key's row bucket.
    pub fn rows(&self, rows: u64) -> Result<(), Refusal> {
        let Some((state, limits)) = &self.held else { return Ok(()) };
        let Some(rate) = limits.rows_per_second else { return Ok(()) };
        let capacity = (row_capacity(limits) * self.share).max(1.0);
        if rows as f64 > capacity {
            return Err(Refusal::Forbidden(format!(
                "a request of {rows} rows is more than this key's row burst of {capacity:.0} allows"
            )));
        }
        let mut guard = state.lock();
        let bucket = guard.rows.as_mut().expect("a row rate has a bucket");
        bucket
            .take(rows as f64, rate * self.share, capacity, Instant::now())
            .map_err(|wait| limited(format!("this key is limited to {rate} rows/s"), wait))
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some((state, _)) = &self.held {
            let mut guard = state.lock();
            guard.in_flight = guard.in_flight.saturating_sub(1);
        }
    }
}

fn fresh(limits: &Limits, share: f64) -> KeyState {
    let now = Instant::now();
    KeyState {
        requests: limits.requests_per_second.map(|_| Bucket::full((request_capacity(limits) * share).max(1.0), now)),
        rows: limits.rows_per_second.map(|_| Bucket::full((row_capacity(limits) * share).max(1.0), now)),
        in_flight: 0,
    }
}

fn request_capacity(limits: &Limits) -> f64 {
    limits.requests_burst.or(limits.requests_per_second).unwrap_or(1.0).max(1.0)
}

fn row_capacity(limits: &Limits) -> f64 {
    limits.rows_burst.or(limits.rows_per_second).unwrap_or(1.0).max(1.0)
}

fn limited(message: String, wait: Duration) -> Refusal {
    Refusal::Limited { message, retry_after: wait }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{issue, KeySpec};
    use crate::{Role, Scope};

    fn caller(limits: Limits) -> Caller {
        let spec = KeySpec {
            tenant: "t".into(),
            role: Role::Inference,
            scope: Scope::everything(),
            limits,
            priority: None,
            description: String::new(),
        };
        Caller::Key(Arc::new(issue(spec).unwrap().record))
    }

    #[test]
    fn a_bucket_refills_at_its_rate_up_to_its_capacity() {
        let start = Instant::now();
        let mut bucket = Bucket::full(2.0, start);
        assert!(bucket.take(1.0, 10.0, 2.0, start).is_ok());
        assert!(bucket.take(1.0, 10.0, 2.0, start).is_ok());
        let wait = bucket.take(1.0, 10.0, 2.0, start).unwrap_err();
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        assert!(bucket.take(1.0, 10.0, 2.0, start + Duration::from_millis(100)).is_ok());
        // A long pause refills to the capacity, not beyond.
        let later = start + Duration::from_secs(60);
        assert!(bucket.take(2.0, 10.0, 2.0, later).is_ok());
        assert!(bucket.take(1.0, 10.0, 2.0, later).is_err());
    }

    #[test]
    fn the_burst_passes_then_the_rate_holds() {
        let limiter = Limiter::new();
        let caller = caller(Limits { requests_per_second: Some(1.0), requests_burst: Some(3.0), ..Limits::default() });
        for _ in 0..3 {
            drop(limiter.admit(&caller).unwrap());
        }
        match limiter.admit(&caller) {
            Err(Refusal::Limited { retry_after, .. }) => assert!(retry_after <= Duration::from_secs(1)),
            other => panic!("expected a limit, got {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn each_of_two_coordinators_grants_half_the_rate() {
        let limiter = Limiter::new();
        limiter.set_coordinators(2);
        let caller = caller(Limits { requests_per_second: Some(10.0), ..Limits::default() });
        let admitted = (0..20).filter(|_| limiter.admit(&caller).is_ok()).count();
        assert_eq!(admitted, 5);
    }

    #[test]
    fn concurrency_is_held_until_the_admission_drops() {
        let limiter = Limiter::new();
        let caller = caller(Limits { max_concurrent: Some(2), ..Limits::default() });
        let first = limiter.admit(&caller).unwrap();
        let _second = limiter.admit(&caller).unwrap();
        assert!(matches!(limiter.admit(&caller), Err(Refusal::Limited { .. })));
        drop(first);
        assert!(limiter.admit(&caller).is_ok());
    }

    #[test]
    fn rows_come_from_their_own_bucket() {
        let limiter = Limiter::new();
        let caller = caller(Limits { rows_per_second: Some(100.0), ..Limits::default() });
        let admission = limiter.admit(&caller).unwrap();
        assert!(admission.rows(60).is_ok());
        assert!(matches!(admission.rows(60), Err(Refusal::Limited { .. })));
        assert!(matches!(admission.rows(101), Err(Refusal::Forbidden(_))), "more than the burst never passes");
        let unlimited = Limiter::new().admit(&Caller::Anonymous).unwrap();
        assert!(unlimited.rows(1_000_000).is_ok());
    }
}
