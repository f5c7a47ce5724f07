//! Rate limits and quotas of keys and tenants: token buckets for requests
//! and rows, a count of requests in flight.
//!
//! A request is held to its key's limits and to its tenant's, which every
//! key of the tenant (and, for the shared tenants `default` and
//! `anonymous`, every caller without a key) draws from together. It passes
//! only when both have room, and then takes from both.
//!
//! With several coordinators each one enforces its share of the rates and
//! bursts: the figures divided by the number of live coordinators
//! ([`Limiter::set_coordinators`], from etcd membership). Clients spread
//! over the coordinators (a load balancer, or the test's round robin) then
//! see the configured rate for the whole cluster. Concurrency is per
//! coordinator.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, MutexGuard};

use crate::caller::Caller;
use crate::limits::Limits;
use crate::Refusal;

/// A token bucket: `rate` tokens a second up to `capacity`. The rate and
/// capacity are given at each use, so that changed limits apply at once.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    fn full(capacity: f64, now: Instant) -> Bucket {
        Bucket { tokens: capacity, updated: now }
    }

    /// Adds what `rate` brought since the last refill, up to `capacity`.
    fn refill(&mut self, rate: f64, capacity: f64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(capacity);
        self.updated = now;
    }

    /// How long until `cost` tokens are there; none when they are.
    fn wait_for(&self, cost: f64, rate: f64) -> Option<Duration> {
        // At most a day: a bucket owing much at a tiny rate must not overflow.
        (self.tokens < cost).then(|| Duration::from_secs_f64(((cost - self.tokens) / rate).clamp(0.0, 86_400.0)))
    }
}

/// Whose limits an account enforces.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Holder {
    Key(String),
    Tenant(String),
}

impl Holder {
    fn name(&self) -> String {
        match self {
            Holder::Key(_) => "this key".into(),
            Holder::Tenant(tenant) => format!("tenant '{tenant}'"),
        }
    }
}

/// One key's or tenant's state.
#[derive(Debug, Default)]
struct Account {
    requests: Option<Bucket>,
    rows: Option<Bucket>,
    tokens: Option<Bucket>,
    in_flight: u32,
}

/// An account a request draws from, with the limits it was admitted under.
struct Held {
    holder: Holder,
    account: Arc<Mutex<Account>>,
    limits: Limits,
}

/// The accounts of every key and tenant, as this coordinator enforces them.
#[derive(Default)]
pub struct Limiter {
    accounts: Mutex<HashMap<Holder, Arc<Mutex<Account>>>>,
    coordinators: AtomicUsize,
}

/// A request admitted under its key's and tenant's limits; dropping it ends
/// the request's share of their concurrency.
#[must_use = "the admission holds a concurrency slot until dropped"]
pub struct Admission {
    held: Vec<Held>,
    share: f64,
}

impl Limiter {
    /// A limiter for one coordinator until told otherwise.
    pub fn new() -> Limiter {
        Limiter { accounts: Mutex::new(HashMap::new()), coordinators: AtomicUsize::new(1) }
    }

    /// How many coordinators share each key's and tenant's rates.
    pub fn set_coordinators(&self, count: usize) {
        self.coordinators.store(count.max(1), Ordering::Relaxed);
    }

    /// Admits one request of `caller`: a token from each request bucket and
    /// a concurrency slot of each account it draws from; or the refusal
    /// with when to retry. A refused request takes nothing.
    pub fn admit(&self, caller: &Caller) -> Result<Admission, Refusal> {
        let share = 1.0 / self.coordinators.load(Ordering::Relaxed) as f64;
        let held = self.accounts_of(caller);
        if held.is_empty() {
            return Ok(Admission { held, share });
        }
        let now = Instant::now();
        // Always the key before the tenant: one lock order, no deadlock.
        let mut guards: Vec<MutexGuard<'_, Account>> = held.iter().map(|h| h.account.lock()).collect();
        let mut refusal: Option<Refusal> = None;
        for (held, account) in held.iter().zip(guards.iter_mut()) {
            let limits = &held.limits;
            if let Some(max) = limits.max_concurrent {
                if account.in_flight >= max {
                    let message = format!("{} has {max} requests in flight, its limit", held.holder.name());
                    refusal = later(refusal, limited(message, Duration::from_secs(1)));
                    continue;
                }
            }
            if let Some(configured) = limits.requests_per_second {
                let (rate, capacity) = (configured * share, (request_capacity(limits) * share).max(1.0));
                let bucket = account.requests.get_or_insert_with(|| Bucket::full(capacity, now));
                bucket.refill(rate, capacity, now);
                if let Some(wait) = bucket.wait_for(1.0, rate) {
                    let message = format!("{} is limited to {configured} requests/s", held.holder.name());
                    refusal = later(refusal, limited(message, wait));
                }
            }
        }
        if let Some(refusal) = refusal {
            return Err(refusal);
        }
        for account in guards.iter_mut() {
            if let Some(bucket) = account.requests.as_mut() {
                bucket.tokens -= 1.0;
            }
            account.in_flight += 1;
        }
        drop(guards);
        Ok(Admission { held, share })
    }

    /// The accounts `caller` draws from: its key's and its tenant's, each
    /// when it has limits.
    fn accounts_of(&self, caller: &Caller) -> Vec<Held> {
        let mut wanted = Vec::with_capacity(2);
        if let (Some(limits), Some(key)) = (caller.limits(), caller.key()) {
            wanted.push((Holder::Key(key.id.clone()), limits.clone()));
        }
        if let Some(limits) = caller.tenant_limits() {
            wanted.push((Holder::Tenant(caller.tenant().to_string()), limits.clone()));
        }
        if wanted.is_empty() {
            return Vec::new();
        }
        let mut accounts = self.accounts.lock();
        wanted
            .into_iter()
            .map(|(holder, limits)| {
                let account = accounts.entry(holder.clone()).or_default().clone();
                Held { holder, account, limits }
            })
            .collect()
    }
}

impl Admission {
    /// Takes `rows` from the row bucket of each account, or from none.
    pub fn rows(&self, rows: u64) -> Result<(), Refusal> {
        let now = Instant::now();
        let mut guards: Vec<_> = self.held.iter().map(|h| h.account.lock()).collect();
        let mut refusal: Option<Refusal> = None;
        for (held, account) in self.held.iter().zip(guards.iter_mut()) {
            let Some(configured) = held.limits.rows_per_second else { continue };
            let (rate, capacity) = (configured * self.share, (row_capacity(&held.limits) * self.share).max(1.0));
            if rows as f64 > capacity {
                return Err(Refusal::Forbidden(format!(
                    "a request of {rows} rows is more than the row burst of {capacity:.0} that {} has here",
                    held.holder.name()
                )));
            }
            let bucket = account.rows.get_or_insert_with(|| Bucket::full(capacity, now));
            bucket.refill(rate, capacity, now);
            if let Some(wait) = bucket.wait_for(rows as f64, rate) {
                let message = format!("{} is limited to {configured} rows/s", held.holder.name());
                refusal = later(refusal, limited(message, wait));
            }
        }
        if let Some(refusal) = refusal {
            return Err(refusal);
        }
        for (held, account) in self.held.iter().zip(guards.iter_mut()) {
            if held.limits.rows_per_second.is_some() {
                if let Some(bucket) = account.rows.as_mut() {
                    bucket.tokens -= rows as f64;
                }
            }
        }
        Ok(())
    }
}

impl Admission {
    /// Refuses a generative request while a token bucket it draws from
    /// owes tokens (is empty), with when it will hold one again.
    pub fn tokens_available(&self) -> Result<(), Refusal> {
        let now = Instant::now();
        let mut refusal: Option<Refusal> = None;
        for held in &self.held {
            let Some((rate, capacity)) = token_rate(&held.limits, self.share) else { continue };
            let mut account = held.account.lock();
            let bucket = account.tokens.get_or_insert_with(|| Bucket::full(capacity, now));
            bucket.refill(rate, capacity, now);
            if let Some(wait) = bucket.wait_for(1.0, rate) {
                let configured = held.limits.tokens_per_minute.unwrap_or_default();
                let message = format!("{} is limited to {configured} tokens/minute", held.holder.name());
                refusal = later(refusal, limited(message, wait));
            }
        }
        refusal.map_or(Ok(()), Err)
    }

    /// Gives back the request taken from each request bucket at admission,
    /// for a request refused after it (by its token quota), and its
    /// concurrency slot with the admission: a refused request takes
    /// nothing.
    pub fn return_request(self) {
        for held in &self.held {
            let capacity = (request_capacity(&held.limits) * self.share).max(1.0);
            if let Some(bucket) = held.account.lock().requests.as_mut() {
                bucket.tokens = (bucket.tokens + 1.0).min(capacity);
            }
        }
    }

    /// Takes `tokens` from each token bucket the request draws from (they
    /// may go below zero): what it may use when admitted, then the
    /// difference once it is known.
    pub fn spend_tokens(&self, tokens: u64) {
        self.change_tokens(-(tokens as f64));
    }

    /// Gives back `tokens` taken for a request that used fewer.
    pub fn refund_tokens(&self, tokens: u64) {
        self.change_tokens(tokens as f64);
    }

    fn change_tokens(&self, change: f64) {
        let now = Instant::now();
        for held in &self.held {
            let Some((rate, capacity)) = token_rate(&held.limits, self.share) else { continue };
            let mut account = held.account.lock();
            let bucket = account.tokens.get_or_insert_with(|| Bucket::full(capacity, now));
            bucket.refill(rate, capacity, now);
            bucket.tokens = (bucket.tokens + change).min(capacity);
        }
    }
}

/// Tokens per second and the bucket's size on this coordinator, when
/// `limits` bound tokens.
fn token_rate(limits: &Limits, share: f64) -> Option<(f64, f64)> {
    let per_minute = limits.tokens_per_minute?;
    let capacity = limits.tokens_burst.unwrap_or(per_minute).max(1.0);
    Some((per_minute / 60.0 * share, (capacity * share).max(1.0)))
}

impl Drop for Admission {
    fn drop(&mut self) {
        for held in &self.held {
            let mut account = held.account.lock();
            account.in_flight = account.in_flight.saturating_sub(1);
        }
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

/// Of two refusals, the one that asks to wait longer.
fn later(current: Option<Refusal>, next: Refusal) -> Option<Refusal> {
    let wait = |refusal: &Refusal| match refusal {
        Refusal::Limited { retry_after, .. } => *retry_after,
        _ => Duration::MAX,
    };
    match current {
        Some(current) if wait(&current) >= wait(&next) => Some(current),
        _ => Some(next),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caller::Identity;
    use crate::key::{issue, KeySpec};
    use crate::{Role, Scope};

    fn caller_of(tenant: &str, limits: Limits) -> Caller {
        let spec = KeySpec {
            tenant: tenant.into(),
            role: Role::Inference,
            scope: Scope::everything(),
            limits,
            priority: None,
            description: String::new(),
        };
        Caller::of_key(Arc::new(issue(spec).unwrap().record))
    }

    fn caller(limits: Limits) -> Caller {
        caller_of("t", limits)
    }

    fn tenant_limited(caller: Caller, limits: Limits) -> Caller {
        caller.with_tenant_limits(Some(Arc::new(limits)))
    }

    fn rate(requests_per_second: f64) -> Limits {
        Limits { requests_per_second: Some(requests_per_second), ..Limits::default() }
    }

    #[test]
    fn a_bucket_refills_at_its_rate_up_to_its_capacity() {
        let start = Instant::now();
        let mut bucket = Bucket::full(2.0, start);
        bucket.refill(10.0, 2.0, start);
        assert_eq!(bucket.wait_for(2.0, 10.0), None);
        bucket.tokens -= 2.0;
        let wait = bucket.wait_for(1.0, 10.0).unwrap();
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        bucket.refill(10.0, 2.0, start + Duration::from_millis(100));
        assert_eq!(bucket.wait_for(1.0, 10.0), None);
        // A long pause refills to the capacity, not beyond.
        bucket.refill(10.0, 2.0, start + Duration::from_secs(60));
        assert_eq!(bucket.tokens, 2.0);
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
    fn a_token_quota_admits_while_it_holds_a_token_and_charges_at_the_end() {
        let limiter = Limiter::new();
        let caller = caller(Limits { tokens_per_minute: Some(60.0), ..Limits::default() });
        let first = limiter.admit(&caller).unwrap();
        first.tokens_available().unwrap();
        // A long answer: more than the bucket held, so it owes tokens.
        first.spend_tokens(90);
        drop(first);
        let second = limiter.admit(&caller).unwrap();
        match second.tokens_available() {
            // 30 owed plus the one wanted, at one token a second.
            Err(Refusal::Limited { retry_after, message }) => {
                assert!(
                    retry_after > Duration::from_secs(29) && retry_after <= Duration::from_secs(31),
                    "{retry_after:?}"
                );
                assert!(message.contains("60 tokens/minute"), "{message}");
            }
            other => panic!("expected a limit, got {other:?}"),
        }
        // A request that used fewer tokens than were taken gets them back.
        second.refund_tokens(90);
        assert!(second.tokens_available().is_ok());
        // A caller without a token quota is never refused for tokens.
        let free = limiter.admit(&super::tests::caller(Limits::default())).unwrap();
        free.spend_tokens(1_000_000);
        assert!(free.tokens_available().is_ok());
    }

    #[test]
    fn a_request_refused_by_its_token_quota_takes_no_request() {
        let limiter = Limiter::new();
        let limits = Limits {
            requests_per_second: Some(0.01),
            requests_burst: Some(2.0),
            tokens_per_minute: Some(60.0),
            ..Limits::default()
        };
        let caller = caller(limits);
        let first = limiter.admit(&caller).unwrap();
        first.spend_tokens(600);
        drop(first);
        // Refused for tokens, ten times: the second request of the burst is
        // still there afterwards.
        for _ in 0..10 {
            let admission = limiter.admit(&caller).unwrap();
            assert!(admission.tokens_available().is_err());
            admission.return_request();
        }
        let second = limiter.admit(&caller).unwrap();
        second.refund_tokens(600);
        assert!(second.tokens_available().is_ok());
        drop(second);
        assert!(limiter.admit(&caller).is_err(), "the burst of two is spent");
    }

    #[test]
    fn each_of_two_coordinators_grants_half_the_rate() {
        let limiter = Limiter::new();
        limiter.set_coordinators(2);
        let caller = caller(rate(10.0));
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
        let unlimited = Limiter::new().admit(&Caller::from(Identity::Anonymous)).unwrap();
        assert!(unlimited.rows(1_000_000).is_ok());
    }

    #[test]
    fn the_keys_of_a_tenant_share_its_rate() {
        let limiter = Limiter::new();
        let team = rate(4.0);
        let first = tenant_limited(caller_of("team", Limits::default()), team.clone());
        let second = tenant_limited(caller_of("team", rate(100.0)), team.clone());
        let other_tenant = tenant_limited(caller_of("other", Limits::default()), team);
        let admitted = (0..10).flat_map(|_| [&first, &second]).filter(|caller| limiter.admit(caller).is_ok()).count();
        assert_eq!(admitted, 4, "two keys of one tenant get the tenant's burst between them");
        match limiter.admit(&first) {
            Err(Refusal::Limited { message, .. }) => assert!(message.contains("tenant 'team'"), "{message}"),
            other => panic!("expected the tenant's limit, got {:?}", other.map(|_| ())),
        }
        assert!(limiter.admit(&other_tenant).is_ok(), "another tenant has its own bucket");
    }

    #[test]
    fn a_request_refused_by_its_tenant_takes_nothing_from_its_key() {
        let limiter = Limiter::new();
        let key = caller(Limits { requests_per_second: Some(1.0), requests_burst: Some(2.0), ..Limits::default() });
        let concurrency = Limits { max_concurrent: Some(1), ..Limits::default() };
        let held = tenant_limited(key.clone(), concurrency.clone());
        let first = limiter.admit(&held).unwrap();
        assert!(matches!(limiter.admit(&held), Err(Refusal::Limited { .. })), "the tenant has one slot");
        drop(first);
        // The refused request took no token: the key's burst of two still
        // has its second one.
        assert!(limiter.admit(&held).is_ok());
    }

    #[test]
    fn tenant_limits_hold_callers_without_keys() {
        let limiter = Limiter::new();
        let anonymous = Caller::from(Identity::Anonymous).with_tenant_limits(Some(Arc::new(rate(2.0))));
        let admitted = (0..5).filter(|_| limiter.admit(&anonymous).is_ok()).count();
        assert_eq!(admitted, 2);
        let open = Caller::from(Identity::Anonymous);
        assert!((0..5).all(|_| limiter.admit(&open).is_ok()), "no tenant limits, no limit");
    }

    #[test]
    fn tenant_rows_are_shared_and_a_refusal_takes_none() {
        let limiter = Limiter::new();
        let tenant_rows = Limits { rows_per_second: Some(100.0), ..Limits::default() };
        let key_rows = Limits { rows_per_second: Some(80.0), ..Limits::default() };
        let caller = tenant_limited(caller(key_rows), tenant_rows);
        let admission = limiter.admit(&caller).unwrap();
        assert!(admission.rows(50).is_ok());
        assert!(matches!(admission.rows(50), Err(Refusal::Limited { .. })), "the key has 30 left");
        assert!(admission.rows(30).is_ok(), "the refusal took nothing from the tenant");
        assert!(matches!(admission.rows(81), Err(Refusal::Forbidden(_))));
    }
}
