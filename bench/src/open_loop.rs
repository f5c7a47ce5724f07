//! Open-loop HTTP load: requests arrive at a fixed mean rate with
//! exponential gaps (a Poisson process), whether or not earlier ones were
//! answered. Latency is measured from each request's scheduled arrival, so
//! a stalled server shows up as latency instead of as a slower client
//! (no coordinated omission). Arrivals are bounded in count and time, and
//! at most `max_in_flight` requests are outstanding; arrivals past that are
//! counted as dropped.
//!
//! Arrivals are timed by a thread of their own sleeping with the operating
//! system's timer (tens of microseconds late at most), not by the async
//! runtime's timer wheel, whose millisecond ticks would add up to a
//! millisecond to every measured latency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use tokio::sync::{mpsc, Semaphore};

use crate::load::{Encoding, LoadPoint, Target};

/// Requests outstanding at most.
const MAX_IN_FLIGHT: usize = 4096;

/// An open-loop point: the closed-loop fields plus the offered rate and
/// arrivals that found no room.
pub struct OpenLoopPoint {
    /// Offered requests per second.
    pub offered: f64,
    /// Arrivals dropped because `MAX_IN_FLIGHT` requests were outstanding.
    pub dropped: u64,
    /// The measured window, as for closed loop (`concurrency` is 0).
    pub point: LoadPoint,
}

/// Offers `rate` binary requests per second for `window` after `warmup`.
pub async fn run(target: &Target, rate: f64, warmup: Duration, window: Duration) -> Result<OpenLoopPoint> {
    let client = crate::load::load_client(256)?;
    let histogram = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?));
    let counts = Arc::new(Mutex::new((0u64, 0u64)));
    let room = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let started = Instant::now();
    let (measure_from, stop_at) = (started + warmup, started + warmup + window);
    let limit = ((warmup + window).as_secs_f64() * rate).ceil() as u64 + 1;
    let mut arrivals = spawn_arrivals(started, stop_at, rate, limit);
    let mut dropped = 0;
    let mut tasks = Vec::new();
    while let Some((index, next_arrival)) = arrivals.recv().await {
        let Ok(permit) = room.clone().try_acquire_owned() else {
            if next_arrival >= measure_from {
                dropped += 1;
            }
            continue;
        };
        let (body, json_len) = target.binary_body(index as usize);
        let request =
            client.post(target.infer_url()).header("Inference-Header-Content-Length", json_len.to_string()).body(body);
        let (histogram, counts, scheduled) = (histogram.clone(), counts.clone(), next_arrival);
        tasks.push(tokio::spawn(async move {
            let success = match request.send().await {
                Ok(response) => response.status().is_success() && response.bytes().await.is_ok(),
                Err(_) => false,
            };
            drop(permit);
            if scheduled >= measure_from {
                let mut counts = counts.lock();
                if success {
                    counts.0 += 1;
                    let _ = histogram.lock().record(scheduled.elapsed().as_micros().max(1) as u64);
                } else {
                    counts.1 += 1;
                }
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let (requests, errors) = *counts.lock();
    let latency_us = histogram.lock().clone();
    let point = LoadPoint {
        model: target.model.clone(),
        rows_per_request: target.rows,
        encoding: Encoding::Binary,
        concurrency: 0,
        requests,
        errors,
        window,
        latency_us,
    };
    Ok(OpenLoopPoint { offered: rate, dropped, point })
}

/// Starts the thread that times arrivals: Poisson gaps at `rate` from
/// `started`, at most `limit` of them and none from `stop_at` on. Each
/// arrival is sent, numbered, at its scheduled instant.
fn spawn_arrivals(
    started: Instant,
    stop_at: Instant,
    rate: f64,
    limit: u64,
) -> mpsc::UnboundedReceiver<(u64, Instant)> {
    let (sender, receiver) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("arrivals".into())
        .spawn(move || {
            let mut next_arrival = started;
            for index in 0..limit {
                next_arrival += Duration::from_secs_f64(-(1.0 - rand::random::<f64>()).ln() / rate);
                if next_arrival >= stop_at {
                    break;
                }
                if let Some(gap) = next_arrival.checked_duration_since(Instant::now()) {
                    std::thread::sleep(gap);
                }
                if sender.send((index, next_arrival)).is_err() {
                    break;
                }
            }
        })
        .expect("starting the arrivals thread");
    receiver
}
