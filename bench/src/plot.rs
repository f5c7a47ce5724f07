//! An SVG plot of latency against throughput, one line per encoding, with
//! the raw LibTorch ceilings drawn as vertical lines.

use std::fmt::Write;

use crate::load::LoadPoint;
use crate::raw::RawPoint;
use crate::report::encoding_name;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 70.0;
const BOTTOM: f64 = 50.0;
const TOP: f64 = 30.0;
const RIGHT: f64 = 150.0;
const COLOURS: [&str; 6] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"];

/// p99 latency (ms, log scale) against rows/s (requests/s for one-row
/// requests) for each encoding.
pub fn svg(title: &str, points: &[LoadPoint], raw: &[RawPoint]) -> String {
    let max_x =
        points.iter().map(|p| p.rows_per_second()).chain(raw.iter().map(|r| r.rows_per_second)).fold(1.0, f64::max)
            * 1.05;
    let latencies: Vec<f64> =
        points.iter().map(|p| p.quantile(0.99).as_secs_f64() * 1e3).filter(|v| *v > 0.0).collect();
    let (min_y, max_y) = (
        latencies.iter().copied().fold(f64::INFINITY, f64::min).min(0.1).log10().floor(),
        latencies.iter().copied().fold(0.1, f64::max).log10().ceil().max(0.0),
    );
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |v: f64| LEFT + v / max_x * plot_w;
    let y = |ms: f64| TOP + plot_h - (ms.max(1e-6).log10() - min_y) / (max_y - min_y).max(1.0) * plot_h;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(out, r#"<text x="{LEFT}" y="18" font-size="14">{title}</text>"#);
    let _ = writeln!(
        out,
        r#"<line x1="{LEFT}" y1="{}" x2="{}" y2="{}" stroke="black"/>"#,
        TOP + plot_h,
        LEFT + plot_w,
        TOP + plot_h
    );
    let _ = writeln!(out, r#"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{}" stroke="black"/>"#, TOP + plot_h);
    for step in 0..=5 {
        let value = max_x * f64::from(step) / 5.0;
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="middle">{:.0}</text>"#,
            x(value),
            TOP + plot_h + 16.0,
            value
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">rows/s (one row per request unless the table says otherwise)</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 10.0
    );
    for decade in (min_y as i32)..=(max_y as i32) {
        let ms = 10f64.powi(decade);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{0}" x2="{1}" y2="{0}" stroke="#ddd"/><text x="{2}" y="{3}" text-anchor="end">{4} ms</text>"##,
            y(ms),
            LEFT + plot_w,
            LEFT - 6.0,
            y(ms) + 4.0,
            ms
        );
    }
    let _ = writeln!(
        out,
        r#"<text transform="translate(16 {}) rotate(-90)" text-anchor="middle">p99 latency (log)</text>"#,
        TOP + plot_h / 2.0
    );
    for (label, rate) in [
        ("raw batch 1", raw.first()),
        ("raw best", raw.iter().max_by(|a, b| a.rows_per_second.total_cmp(&b.rows_per_second))),
    ] {
        if let Some(point) = rate {
            let px = x(point.rows_per_second);
            let _ = writeln!(
                out,
                r##"<line x1="{px}" y1="{TOP}" x2="{px}" y2="{}" stroke="#888" stroke-dasharray="4 3"/><text x="{}" y="{}" fill="#555">{label}</text>"##,
                TOP + plot_h,
                px + 3.0,
                TOP + 12.0
            );
        }
    }
    let mut encodings: Vec<&str> = points.iter().map(|p| encoding_name(p.encoding)).collect();
    encodings.dedup();
    for (index, name) in encodings.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        let mut line: Vec<&LoadPoint> = points.iter().filter(|p| encoding_name(p.encoding) == *name).collect();
        line.sort_by(|a, b| a.rows_per_second().total_cmp(&b.rows_per_second()));
        let path: Vec<String> = line
            .iter()
            .map(|p| format!("{:.1},{:.1}", x(p.rows_per_second()), y(p.quantile(0.99).as_secs_f64() * 1e3)))
            .collect();
        let _ =
            writeln!(out, r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#, path.join(" "));
        for p in &line {
            let _ = writeln!(
                out,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"><title>{name} c={} {:.0} rows/s</title></circle>"#,
                x(p.rows_per_second()),
                y(p.quantile(0.99).as_secs_f64() * 1e3),
                p.concurrency,
                p.rows_per_second()
            );
        }
        let ly = TOP + 14.0 + 18.0 * index as f64;
        let _ = writeln!(
            out,
            r#"<rect x="{}" y="{}" width="12" height="3" fill="{colour}"/><text x="{}" y="{}">{name}</text>"#,
            WIDTH - RIGHT + 16.0,
            ly - 4.0,
            WIDTH - RIGHT + 32.0,
            ly
        );
    }
    out.push_str("</svg>\n");
    out
}
