//! Leaving the cluster without failing a request.
//!
//! On SIGTERM (or Ctrl-C) the node first removes its registration, so
//! coordinators stop sending it new batches and the leader moves its
//! replicas; it keeps answering what it already received, and exits once
//! nothing has been in flight for a moment (or the drain time is up).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::membership::Registration;

/// How long the node must be idle before it exits.
const QUIET: Duration = Duration::from_millis(1000);

/// Deregisters and waits for requests in flight to finish.
pub async fn leave(registration: Option<Registration>, in_flight: Arc<AtomicUsize>, limit: Duration) {
    tracing::info!("draining: leaving the cluster");
    if let Some(registration) = registration {
        registration.leave().await;
    }
    let started = Instant::now();
    let mut quiet_since = Instant::now();
    while started.elapsed() < limit {
        if in_flight.load(Ordering::Acquire) > 0 {
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() >= QUIET {
            tracing::info!(ms = started.elapsed().as_millis() as u64, "drained");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tracing::warn!(in_flight = in_flight.load(Ordering::Acquire), "drain time is up; exiting");
}
