//! `GET /v1/console/stream`: the console's live feed, as server-sent
//! events. Once a second it sends one [`ConsoleTick`] — every version the
//! key sees with its rates, percentiles, load, running totals and drift
//! scores, the standing alerts, and for keys that administer the cluster
//! its nodes — so a page draws every chart from one stream, not one
//! request per chart.
//!
//! A stream is a task that owns its slot and hands ticks to the response
//! through a channel of two. At most [`MAX_STREAMS`] are open at once on a
//! coordinator and [`MAX_STREAMS_PER_KEY`] per key (others get a 503); a
//! stream ends after [`MAX_STREAM_LIFE`] (the page reconnects), when its
//! client goes away, or when a tick waits [`STALLED_AFTER`] for a client
//! that stopped reading; and the key is admitted again before every tick,
//! so a revoked or narrowed key stops seeing what it no longer may. The
//! cluster's status, which asks every node, is computed at most once a
//! second however many admin streams are open.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::collections::BTreeMap;

use actix_web::http::header::AUTHORIZATION;
use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use maas_api::{ClusterStatus, ConsoleTick, ConsoleVersion, InputDriftScore};
use maas_tenancy::{Action, Caller};
use parking_lot::Mutex;
use tokio::sync::Semaphore;

use crate::auth::{self, bearer_token, Access};
use crate::http::admin::cluster::cluster_status;
use crate::http::error::HttpResult;
use crate::http::monitoring_views as views;
use crate::http::routes::caller;
use crate::state::AppState;
use maas_serving::ServeError;

/// Streams open at once on one coordinator.
pub const MAX_STREAMS: usize = 64;
/// Streams open at once for one key (or the admin token).
pub const MAX_STREAMS_PER_KEY: usize = 8;
/// How long one stream lasts before the page must open another.
pub const MAX_STREAM_LIFE: Duration = Duration::from_secs(3600);
/// How long a tick may wait for a client that is not reading.
pub const STALLED_AFTER: Duration = Duration::from_secs(10);
/// Time between ticks.
const TICK: Duration = Duration::from_secs(1);

static STREAMS: Semaphore = Semaphore::const_new(MAX_STREAMS);
static PER_KEY: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());
static CLUSTER: tokio::sync::Mutex<Option<(Instant, ClusterStatus)>> = tokio::sync::Mutex::const_new(None);

/// A key's share of the streams, released when dropped.
struct KeySlot(String);

impl KeySlot {
    fn take(identity: String) -> Option<KeySlot> {
        let mut open = PER_KEY.lock();
        let count = open.entry(identity.clone()).or_insert(0);
        if *count >= MAX_STREAMS_PER_KEY {
            return None;
        }
        *count += 1;
        Some(KeySlot(identity))
    }
}

impl Drop for KeySlot {
    fn drop(&mut self) {
        let mut open = PER_KEY.lock();
        if let Some(count) = open.get_mut(&self.0) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.0);
            }
        }
    }
}

/// The cluster's status, from at most a second ago; without the nodes'
/// cached artifact lists, which the console does not show.
async fn recent_cluster_status(state: &AppState) -> ClusterStatus {
    let mut cached = CLUSTER.lock().await;
    if let Some((at, status)) = cached.as_ref() {
        if at.elapsed() < TICK {
            return status.clone();
        }
    }
    let mut status = cluster_status(state).await;
    for link in &mut status.links {
        if let Some(load) = &mut link.status {
            load.cached_artifacts.clear();
        }
    }
    *cached = Some((Instant::now(), status.clone()));
    status
}

/// One second of what `caller` may see.
pub async fn tick(state: &AppState, caller: &Caller) -> ConsoleTick {
    let monitor = state.inference.table().monitor();
    let versions = monitor
        .versions()
        .iter()
        .filter(|m| caller.sees(&m.model))
        .map(|m| {
            let stats = m.stats.snapshot();
            ConsoleVersion {
                live: views::live_version(m.live_view()),
                success: stats.success.count,
                fail: stats.fail.count,
                batches: stats.execution_count,
                queue_ns: stats.queue.ns,
                compute_ns: stats.compute_input.ns + stats.compute_infer.ns + stats.compute_output.ns,
                drift: m.drift_scores().into_iter().map(|(input, score)| InputDriftScore { input, score }).collect(),
                evaluated: monitor.has_evaluation(&m.model),
            }
        })
        .collect();
    let (active, _) = monitor.alerts.list();
    let alerts = active.iter().filter(|a| caller.sees(&a.model)).map(views::alert).collect();
    let cluster = match caller.permit(Action::Administer, None) {
        Ok(()) => Some(recent_cluster_status(state).await),
        Err(_) => None,
    };
    let at = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64();
    ConsoleTick { at, versions, alerts, cluster }
}

/// `GET /v1/console/stream`.
pub async fn stream(state: web::Data<AppState>, request: HttpRequest) -> HttpResult {
    let caller = caller(&request)?;
    let response = || {
        let mut response = HttpResponse::Ok();
        response
            .content_type("text/event-stream")
            .insert_header(("Cache-Control", "no-cache"))
            .insert_header(("X-Accel-Buffering", "no"));
        response
    };
    if request.method() == Method::HEAD {
        return Ok(response().finish());
    }
    let busy = |why: String| ServeError::Unavailable(format!("{why}; close another console or try again later"));
    let identity = caller.key().map_or_else(|| format!("token of tenant {}", caller.tenant()), |key| key.id.clone());
    let key_slot = KeySlot::take(identity)
        .ok_or_else(|| busy(format!("this key has {MAX_STREAMS_PER_KEY} console streams open")))?;
    let permit = STREAMS
        .try_acquire()
        .map_err(|_| busy(format!("{MAX_STREAMS} console streams are open on this coordinator")))?;
    let token = request.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer_token);
    let token = token.map(str::to_string);
    let (sender, receiver) = tokio::sync::mpsc::channel::<web::Bytes>(2);
    let state = state.into_inner();
    tokio::spawn(async move {
        let _slots = (permit, key_slot);
        let started = Instant::now();
        let mut interval = tokio::time::interval(TICK);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        while started.elapsed() < MAX_STREAM_LIFE {
            interval.tick().await;
            // Admitted again each tick: a revoked key's stream ends.
            let Ok(caller) = auth::admit(&state.gate, Access::View, token.as_deref(), None) else { return };
            let tick = tick(&state, &caller).await;
            let json = serde_json::to_string(&tick).expect("a tick serializes");
            let event = web::Bytes::from(format!("data: {json}\n\n"));
            match tokio::time::timeout(STALLED_AFTER, sender.send(event)).await {
                Ok(Ok(())) => {}
                // Gone, or not reading.
                Ok(Err(_)) | Err(_) => return,
            }
        }
    });
    let events = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let event = receiver.recv().await?;
        Some((Ok::<_, actix_web::Error>(event), receiver))
    });
    Ok(response().streaming(events))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_holds_at_most_its_share_of_streams() {
        let identity = "key-under-test".to_string();
        let mut held: Vec<KeySlot> =
            (0..MAX_STREAMS_PER_KEY).map(|_| KeySlot::take(identity.clone()).unwrap()).collect();
        assert!(KeySlot::take(identity.clone()).is_none(), "a key opened more than its share");
        assert!(KeySlot::take("another key".into()).is_some(), "one key's streams held another's back");
        held.pop();
        assert!(KeySlot::take(identity.clone()).is_some(), "a closed stream did not give its slot back");
        held.clear();
        assert!(!PER_KEY.lock().contains_key(&identity), "a key with no streams is still counted");
    }
}
