//! Waiting for something to happen by polling for it, instead of sleeping a
//! fixed time and hoping it happened: a test goes on as soon as the
//! condition holds, and a slow machine gets a generous timeout before the
//! test fails.
//!
//! Sleeps that remain in the tests are deliberate: pacing a load, letting
//! a load run across an event, or letting time pass to show that something
//! does *not* happen.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};

/// How often a condition is checked, unless a fiftieth of the timeout is
/// shorter (a one-second deadline is checked every 20 ms).
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Checks `condition` every [`POLL_INTERVAL`] until it is true and returns
/// how long that took, or an error naming `what` (e.g. "two ready replicas
/// of alpha") and `timeout` once `timeout` has passed with it still false.
/// The condition is checked at least once, and once more at the timeout.
pub async fn wait_until(what: &str, timeout: Duration, mut condition: impl AsyncFnMut() -> bool) -> Result<Duration> {
    let ((), elapsed) = poll(what, timeout, async || condition().await.then_some(())).await?;
    Ok(elapsed)
}

/// Like [`wait_until`], for a condition that yields a value: checks
/// `condition` until it gives `Some` and returns that value.
pub async fn wait_for<T>(what: &str, timeout: Duration, condition: impl AsyncFnMut() -> Option<T>) -> Result<T> {
    Ok(poll(what, timeout, condition).await?.0)
}

async fn poll<T>(
    what: &str,
    timeout: Duration,
    mut condition: impl AsyncFnMut() -> Option<T>,
) -> Result<(T, Duration)> {
    let interval = POLL_INTERVAL.min(timeout / 50);
    let started = Instant::now();
    loop {
        if let Some(value) = condition().await {
            return Ok((value, started.elapsed()));
        }
        let elapsed = started.elapsed();
        if elapsed >= timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(interval.min(timeout - elapsed)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_once_the_condition_holds() {
        let mut checks = 0;
        let elapsed = wait_until("the third check", Duration::from_secs(10), async || {
            checks += 1;
            checks == 3
        })
        .await
        .unwrap();
        assert_eq!(checks, 3);
        assert!(elapsed >= 2 * POLL_INTERVAL && elapsed < Duration::from_secs(5), "{elapsed:?}");
        let value = wait_for("a value", Duration::from_secs(10), async || Some(42)).await.unwrap();
        assert_eq!(value, 42);
    }

    #[tokio::test]
    async fn fails_naming_what_never_happened() {
        let mut checks = 0;
        let started = Instant::now();
        let error = wait_until("the impossible", Duration::from_millis(100), async || {
            checks += 1;
            false
        })
        .await
        .unwrap_err();
        assert_eq!(error.to_string(), "timed out after 100ms waiting for the impossible");
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert!(checks >= 2, "checked only {checks} times");
    }
}
