//! `GET /v1/console/stream`: the console's live feed, as server-sent
//! events. Once a second it sends one [`ConsoleTick`] — every version the
//! key sees with its rates, percentiles, load, running totals and drift
//! scores, the standing alerts, and for keys that administer the cluster
//! its nodes — so a page draws every chart from one stream, not one
//! request per chart.
//!
//! A stream costs the coordinator a timer and one tick's JSON a second. At
//! most [`MAX_STREAMS`] are open at once (others get a 503), each ends
//! after [`MAX_STREAM_LIFE`] (the page reconnects), and the key is admitted
//! again before every tick, so a revoked or narrowed key stops seeing
//! what it no longer may.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::http::header::AUTHORIZATION;
use actix_web::{web, HttpRequest, HttpResponse};
use maas_api::{ConsoleTick, ConsoleVersion, InputDriftScore};
use maas_tenancy::{Action, Caller};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::auth::{self, bearer_token, Access};
use crate::http::admin::cluster::cluster_status;
use crate::http::error::HttpResult;
use crate::http::monitoring_views as views;
use crate::http::routes::caller;
use crate::state::AppState;
use maas_serving::ServeError;

/// Streams open at once on one coordinator.
pub const MAX_STREAMS: usize = 64;
/// How long one stream lasts before the page must open another.
pub const MAX_STREAM_LIFE: Duration = Duration::from_secs(3600);
/// Time between ticks.
const TICK: Duration = Duration::from_secs(1);

static STREAMS: Semaphore = Semaphore::const_new(MAX_STREAMS);

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
        Ok(()) => Some(cluster_status(state).await),
        Err(_) => None,
    };
    let at = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64();
    ConsoleTick { at, versions, alerts, cluster }
}

/// What a stream carries from tick to tick.
struct Feed {
    state: web::Data<AppState>,
    token: Option<String>,
    started: Instant,
    interval: tokio::time::Interval,
    _permit: SemaphorePermit<'static>,
}

/// `GET /v1/console/stream`.
pub async fn stream(state: web::Data<AppState>, request: HttpRequest) -> HttpResult {
    caller(&request)?;
    let permit = STREAMS.try_acquire().map_err(|_| {
        ServeError::Unavailable(format!("{MAX_STREAMS} console streams are open on this coordinator; try again later"))
    })?;
    let token = request.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer_token);
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let feed = Feed { state, token: token.map(str::to_string), started: Instant::now(), interval, _permit: permit };
    let events = futures_util::stream::unfold(feed, |mut feed| async move {
        if feed.started.elapsed() >= MAX_STREAM_LIFE {
            return None;
        }
        feed.interval.tick().await;
        // Admitted again each tick: a revoked key's stream ends.
        let caller = auth::admit(&feed.state.gate, Access::View, feed.token.as_deref(), None).ok()?;
        let tick = tick(&feed.state, &caller).await;
        let json = serde_json::to_string(&tick).expect("a tick serializes");
        Some((Ok::<_, actix_web::Error>(web::Bytes::from(format!("data: {json}\n\n"))), feed))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(events))
}
