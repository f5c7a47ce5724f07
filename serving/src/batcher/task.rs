//! The batcher task of one model version.
//!
//! It owns the version's [`BatchState`], receives requests from its
//! handle, and whenever a replica slot is free asks the state for a batch
//! and hands it to [`crate::dispatch`]. Requests past their deadline get a
//! timeout; when no replica is up, every waiting request gets 503 at once,
//! unless the version is loaded on demand: then they wait for a replica
//! (or get 503 once the leader finds that no node can hold one). With
//! nothing queued or in flight for [`STOP_AFTER_IDLE`] it stops.

use std::sync::{Arc, Weak};
use std::time::Instant;

use tokio::sync::mpsc;

use super::state::{BatchPolicy, BatchState, Next, Pushed};
use super::{Slot, STOP_AFTER_IDLE};
use crate::dispatch;
use crate::error::ServeError;
use crate::pending::PendingRequest;
use crate::version::VersionShared;

/// Starts the batcher task of `version` and returns the sender of its
/// requests. The task stops when `slot` is dropped (the version is gone)
/// or, after it has been idle a while, empties `slot` and stops.
pub(super) fn spawn(
    version: Arc<VersionShared>,
    policy: BatchPolicy,
    slot: Weak<Slot>,
) -> mpsc::Sender<PendingRequest> {
    // Room for twice the queue: the task empties the channel on every wake,
    // and the queue, not the channel, decides what a flood displaces.
    let (sender, requests) = mpsc::channel(policy.max_queue.max(1) * 2);
    tokio::spawn(run(version, policy, requests, slot));
    sender
}

async fn run(
    version: Arc<VersionShared>,
    policy: BatchPolicy,
    mut requests: mpsc::Receiver<PendingRequest>,
    slot: Weak<Slot>,
) {
    let mut state = BatchState::new(policy);
    let (done_sender, mut done) = mpsc::unbounded_channel::<()>();
    let mut in_flight = 0usize;
    // One timer, moved only when the wake-up time changes: most wakes are
    // arrivals and completions, which leave it where it is.
    let timer = tokio::time::sleep_until(tokio::time::Instant::now());
    tokio::pin!(timer);
    let mut armed: Option<Instant> = None;
    // Moved only when it fires early: most wakes leave it where it is.
    let idle_timer = tokio::time::sleep(STOP_AFTER_IDLE);
    tokio::pin!(idle_timer);
    let mut last_busy = tokio::time::Instant::now();
    let mut replica_changes = version.replicas.watch();
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
        replica_changes.borrow_and_update();
        let cold = version.loads_on_demand() && !state.is_empty() && version.replicas.capacity() == 0;
        tokio::select! {
            biased;
            Some(()) = done.recv() => in_flight -= 1,
            _ = replica_changes.changed(), if cold => {}
            request = requests.recv() => match request {
                Some(request) => enqueue(&mut state, &version, request),
                None => break,
            },
            _ = &mut timer, if armed.is_some() => armed = None,
            _ = &mut idle_timer, if state.is_empty() && in_flight == 0 => {
                let stop_at = last_busy + STOP_AFTER_IDLE;
                if stop_at > tokio::time::Instant::now() {
                    idle_timer.as_mut().reset(stop_at);
                } else if stop_when_idle(&slot, &mut requests) {
                    return;
                } else {
                    idle_timer.as_mut().reset(tokio::time::Instant::now() + STOP_AFTER_IDLE);
                }
            }
        }
        // Take whatever else has arrived, so it can join the batch.
        while let Ok(request) = requests.try_recv() {
            enqueue(&mut state, &version, request);
        }
        while let Ok(()) = done.try_recv() {
            in_flight -= 1;
        }

        if !state.is_empty() || in_flight > 0 {
            last_busy = tokio::time::Instant::now();
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

/// Stops the task if no request came meanwhile: takes its sender out of
/// `slot` (so the next request starts a new task), checking under the
/// slot's lock that the channel is empty. False when a request came.
fn stop_when_idle(slot: &Weak<Slot>, requests: &mut mpsc::Receiver<PendingRequest>) -> bool {
    let Some(slot) = slot.upgrade() else { return true };
    let mut sender = slot.lock();
    if !requests.is_empty() {
        return false;
    }
    *sender = None;
    true
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
