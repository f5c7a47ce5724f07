//! The batcher task of one model version.
//!
//! It owns the version's [`BatchState`], receives requests from its
//! handle, and whenever a replica slot is free asks the state for a batch
//! and hands it to [`crate::dispatch`]. Requests past their deadline get a
//! timeout; when no replica is up, every waiting request gets 503 at once,
//! unless the version is loaded on demand: then they wait for a replica
//! (or get 503 once the leader finds that no node can hold one).

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use super::state::{BatchPolicy, BatchState, Next, Pushed};
use super::BatcherHandle;
use crate::dispatch;
use crate::error::ServeError;
use crate::pending::PendingRequest;
use crate::version::VersionShared;

/// Starts the batcher of `version` and returns its handle.
pub fn spawn(version: Arc<VersionShared>, policy: BatchPolicy) -> BatcherHandle {
    // Room for twice the queue: the task empties the channel on every wake,
    // and the queue, not the channel, decides what a flood displaces.
    let (sender, requests) = mpsc::channel(policy.max_queue.max(1) * 2);
    let handle = BatcherHandle { sender, model: version.name.clone(), version: version.version };
    tokio::spawn(run(version, policy, requests));
    handle
}

async fn run(version: Arc<VersionShared>, policy: BatchPolicy, mut requests: mpsc::Receiver<PendingRequest>) {
    let mut state = BatchState::new(policy);
    let (done_sender, mut done) = mpsc::unbounded_channel::<()>();
    let mut in_flight = 0usize;
    // One timer, moved only when the wake-up time changes: most wakes are
    // arrivals and completions, which leave it where it is.
    let timer = tokio::time::sleep_until(tokio::time::Instant::now());
    tokio::pin!(timer);
    let mut armed: Option<Instant> = None;
    loop {
        let wakeup = state.next_wakeup(in_flight, version.replicas.capacity());
        if wakeup != armed {
            if let Some(at) = wakeup {
                timer.as_mut().reset(at.into());
            }
            armed = wakeup;
        }
        // Requests for a version loaded on demand wait while it has no
        // replica; a replica's arrival wakes the batcher.
        let cold = version.loads_on_demand() && !state.is_empty() && version.replicas.capacity() == 0;
        tokio::select! {
            biased;
            Some(()) = done.recv() => in_flight -= 1,
            _ = version.replicas.changed(), if cold => {}
            request = requests.recv() => match request {
                Some(request) => enqueue(&mut state, &version, request),
                None => break,
            },
            _ = &mut timer, if armed.is_some() => armed = None,
        }
        // Take whatever else has arrived, so it can join the batch.
        while let Ok(request) = requests.try_recv() {
            enqueue(&mut state, &version, request);
        }
        while let Ok(()) = done.try_recv() {
            in_flight -= 1;
        }

        let now = Instant::now();
        for expired in state.take_expired(now) {
            let waited = now - expired.enqueued;
            expired.fail(ServeError::Timeout { model: version.name.clone(), version: version.version, waited });
        }
        let capacity = version.replicas.capacity();
        if capacity == 0 {
            let error = match version.loads_on_demand() {
                true => version.cannot_load_error(),
                false => Some(version.no_replica_error()),
            };
            if let Some(error) = error {
                for request in state.drain() {
                    request.fail(error.clone());
                }
            }
            version.monitor.set_queued(state.len());
            continue;
        }
        while in_flight < capacity {
            match state.next_batch(now, in_flight) {
                Next::Batch(batch) => {
                    in_flight += 1;
                    let version = version.clone();
                    let done_sender = done_sender.clone();
                    tokio::spawn(async move {
                        dispatch::dispatch(&version, batch).await;
                        let _ = done_sender.send(());
                    });
                }
                Next::WaitUntil(_) | Next::Empty => break,
            }
        }
        version.monitor.set_queued(state.len());
    }
    for request in state.drain() {
        request.fail(ServeError::Unavailable(format!(
            "model '{}' version {} was unloaded",
            version.name, version.version
        )));
    }
}

/// Queues a request; under overload the lowest priority is answered 503,
/// the newcomer or a waiting request it displaces.
fn enqueue(state: &mut BatchState<PendingRequest>, version: &VersionShared, request: PendingRequest) {
    let overloaded = || ServeError::Overloaded { model: version.name.clone(), version: version.version };
    match state.push(request) {
        Pushed::Queued => {}
        Pushed::Displaced(shed) | Pushed::Refused(shed) => shed.fail(overloaded()),
    }
}
