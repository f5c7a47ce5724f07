//! Markdown tables of benchmark results.

use std::fmt::Write;
use std::time::Duration;

use crate::load::{Encoding, LoadPoint};
use crate::raw::RawPoint;

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

/// The encoding as a label.
pub fn encoding_name(encoding: Encoding) -> &'static str {
    match encoding {
        Encoding::Json => "json",
        Encoding::Binary => "binary",
        Encoding::Grpc => "grpc",
        Encoding::GrpcStream => "grpc-stream",
        Encoding::Quic => "quic-direct",
    }
}

/// Every point as JSON, with the raw ceiling.
pub fn json(
    points: &[LoadPoint],
    raw: &[RawPoint],
    open_loop: &[crate::open_loop::OpenLoopPoint],
) -> serde_json::Value {
    let latency = |p: &LoadPoint| {
        serde_json::json!({
            "p50_ms": p.quantile(0.5).as_secs_f64() * 1e3,
            "p90_ms": p.quantile(0.9).as_secs_f64() * 1e3,
            "p99_ms": p.quantile(0.99).as_secs_f64() * 1e3,
            "p999_ms": p.quantile(0.999).as_secs_f64() * 1e3,
        })
    };
    serde_json::json!({
        "raw": raw.iter().map(|r| serde_json::json!({"batch": r.batch, "rows_per_second": r.rows_per_second, "forward_p50_ms": r.p50.as_secs_f64() * 1e3})).collect::<Vec<_>>(),
        "closed_loop": points.iter().map(|p| serde_json::json!({
            "model": p.model, "encoding": encoding_name(p.encoding), "clients": p.concurrency,
            "rows_per_request": p.rows_per_request, "requests_per_second": p.requests_per_second(), "rows_per_second": p.rows_per_second(), "errors": p.errors, "latency": latency(p),
        })).collect::<Vec<_>>(),
        "open_loop": open_loop.iter().map(|o| serde_json::json!({
            "model": o.point.model, "offered_per_second": o.offered, "served_per_second": o.point.requests_per_second(),
            "errors": o.point.errors, "dropped": o.dropped, "latency": latency(&o.point),
        })).collect::<Vec<_>>(),
    })
}

/// The open-loop table.
pub fn open_loop_table(points: &[crate::open_loop::OpenLoopPoint]) -> String {
    let mut out = String::from(
        "| model | offered/s | served/s | p50 (ms) | p90 (ms) | p99 (ms) | p99.9 (ms) | errors | dropped |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for o in points {
        let p = &o.point;
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} |",
            p.model,
            o.offered,
            p.requests_per_second(),
            ms(p.quantile(0.5)),
            ms(p.quantile(0.9)),
            ms(p.quantile(0.99)),
            ms(p.quantile(0.999)),
            p.errors,
            o.dropped
        );
    }
    out
}

/// The raw LibTorch table.
pub fn raw_table(points: &[RawPoint]) -> String {
    let mut out = String::from("| raw LibTorch batch | rows/s | forward p50 (ms) |\n|---:|---:|---:|\n");
    for p in points {
        let _ = writeln!(out, "| {} | {:.0} | {} |", p.batch, p.rows_per_second, ms(p.p50));
    }
    out
}

/// One line per point, for progress.
pub fn http_line(p: &LoadPoint) -> String {
    format!(
        "{} {:?} c={}: {:.0} req/s, p50 {} ms, p99 {} ms, {} errors",
        p.model,
        p.encoding,
        p.concurrency,
        p.requests_per_second(),
        ms(p.quantile(0.5)),
        ms(p.quantile(0.99)),
        p.errors
    )
}

/// A point as one line of JSON: throughput, latency quantiles in
/// milliseconds, errors.
pub fn http_json(p: &LoadPoint) -> String {
    serde_json::json!({
        "model": p.model,
        "concurrency": p.concurrency,
        "requests_per_second": p.requests_per_second(),
        "rows_per_second": p.requests_per_second() * p.rows_per_request as f64,
        "p50_ms": p.quantile(0.5).as_secs_f64() * 1000.0,
        "p99_ms": p.quantile(0.99).as_secs_f64() * 1000.0,
        "errors": p.errors,
    })
    .to_string()
}

/// The HTTP table; with the raw points, each point's rows/s is also shown as
/// a share of raw LibTorch's rows/s at batch 1 and at its best batch.
pub fn http_table(points: &[LoadPoint], raw: Option<&[RawPoint]>) -> String {
    let mut out = String::from(
        "| model | encoding | rows/request | clients | requests/s | rows/s | p50 (ms) | p90 (ms) | p99 (ms) | errors | vs raw batch 1 | vs raw best |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let first = raw.and_then(|r| r.first()).map(|p| p.rows_per_second);
    let best = raw.and_then(|r| r.iter().map(|p| p.rows_per_second).reduce(f64::max));
    let ratio =
        |ceiling: Option<f64>, value: f64| ceiling.map(|c| format!("{:.2}", value / c)).unwrap_or_else(|| "-".into());
    for p in points {
        let rows = p.rows_per_second();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} |",
            p.model,
            encoding_name(p.encoding),
            p.rows_per_request,
            p.concurrency,
            p.requests_per_second(),
            rows,
            ms(p.quantile(0.5)),
            ms(p.quantile(0.9)),
            ms(p.quantile(0.99)),
            p.errors,
            ratio(first, rows),
            ratio(best, rows),
        );
    }
    out
}
