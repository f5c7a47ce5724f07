//! Markdown tables of benchmark results.

use std::fmt::Write;
use std::time::Duration;

use crate::load::{Encoding, LoadPoint};
use crate::raw::RawPoint;

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
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

/// The HTTP table; with the raw points, each throughput is also shown as a
/// share of raw LibTorch at batch 1 and at the largest batch measured.
pub fn http_table(points: &[LoadPoint], raw: Option<&[RawPoint]>) -> String {
    let mut out = String::from(
        "| model | encoding | clients | requests/s | p50 (ms) | p90 (ms) | p99 (ms) | errors | vs raw batch 1 | vs raw best |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let first = raw.and_then(|r| r.first()).map(|p| p.rows_per_second);
    let best = raw.and_then(|r| r.iter().map(|p| p.rows_per_second).reduce(f64::max));
    let ratio = |ceiling: Option<f64>, value: f64| ceiling.map(|c| format!("{:.2}", value / c)).unwrap_or_else(|| "-".into());
    for p in points {
        let rps = p.requests_per_second();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} |",
            p.model,
            match p.encoding {
                Encoding::Json => "json",
                Encoding::Binary => "binary",
                Encoding::Grpc => "grpc",
                Encoding::GrpcStream => "grpc-stream",
            },
            p.concurrency,
            rps,
            ms(p.quantile(0.5)),
            ms(p.quantile(0.9)),
            ms(p.quantile(0.99)),
            p.errors,
            ratio(first, rps),
            ratio(best, rps),
        );
    }
    out
}
