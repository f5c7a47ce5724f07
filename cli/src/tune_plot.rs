//! The throughput-latency frontier of `maas tune` as an SVG: one line per
//! trial through its points (p99 along x, requests/s up y, a point per
//! concurrency), the target as a dashed line, the best point within it
//! ringed. It takes plain lines, so it knows nothing of how they were
//! measured.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

/// One trial's line: its label and its `(p99 ms, requests/s)` points.
pub struct Line {
    /// The setting, as a short label.
    pub label: String,
    /// Its points, by concurrency.
    pub points: Vec<(f64, f64)>,
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 48.0;
const COLOURS: [&str; 8] = ["#1d4ed8", "#b45309", "#047857", "#7c3aed", "#be123c", "#0e7490", "#4d7c0f", "#9d174d"];

/// Writes the plot of `lines` against `p99_ms`, ringing `best`, to `path`.
pub fn write(path: &Path, lines: &[Line], best: Option<(f64, f64)>, p99_ms: f64, model: &str) -> Result<()> {
    std::fs::write(path, svg(lines, best, p99_ms, model)).with_context(|| format!("writing {}", path.display()))
}

fn svg(trials: &[Line], best: Option<(f64, f64)>, p99_ms: f64, model: &str) -> String {
    let points = trials.iter().flat_map(|t| &t.points);
    let max_x = points.clone().map(|p| p.0).fold(p99_ms * 1.5, f64::max);
    let max_y = points.map(|p| p.1).fold(1.0, f64::max) * 1.1;
    let x = |v: f64| LEFT + v / max_x * (WIDTH - LEFT - RIGHT);
    let y = |v: f64| HEIGHT - BOTTOM - v / max_y * (HEIGHT - TOP - BOTTOM);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"##
    );
    let _ = writeln!(out, r##"<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>"##);
    let _ = writeln!(
        out,
        r##"<text x="{LEFT}" y="20" font-size="14" fill="#111827">{} — throughput against p99 latency, one line per setting</text>"##,
        escape(model)
    );
    let (x0, y0) = (x(0.0), y(0.0));
    let _ = writeln!(out, r##"<line x1="{x0}" y1="{y0}" x2="{}" y2="{y0}" stroke="#6b7280"/>"##, x(max_x));
    let _ = writeln!(out, r##"<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{TOP}" stroke="#6b7280"/>"##);
    for step in 0..=4 {
        let (vx, vy) = (max_x * f64::from(step) / 4.0, max_y * f64::from(step) / 4.0);
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{}" text-anchor="middle" fill="#374151">{vx:.1}</text>"##,
            x(vx),
            y0 + 16.0
        );
        let _ = writeln!(
            out,
            r##"<text x="{}" y="{:.1}" text-anchor="end" fill="#374151">{vy:.0}</text>"##,
            x0 - 6.0,
            y(vy) + 4.0
        );
    }
    let _ = writeln!(
        out,
        r##"<text x="{:.1}" y="{}" text-anchor="middle" fill="#111827">p99 latency (ms)</text>"##,
        x(max_x / 2.0),
        HEIGHT - 10.0
    );
    let _ = writeln!(
        out,
        r##"<text x="14" y="{:.1}" transform="rotate(-90 14 {:.1})" text-anchor="middle" fill="#111827">requests/s</text>"##,
        y(max_y / 2.0),
        y(max_y / 2.0)
    );
    let _ = writeln!(
        out,
        r##"<line x1="{0:.1}" y1="{TOP}" x2="{0:.1}" y2="{y0}" stroke="#b91c1c" stroke-dasharray="6 4"/><text x="{0:.1}" y="{1}" fill="#b91c1c" text-anchor="middle">target {p99_ms} ms</text>"##,
        x(p99_ms),
        TOP - 4.0
    );
    for (index, trial) in trials.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        let line: Vec<String> =
            trial.points.iter().map(|&(p99, rate)| format!("{:.1},{:.1}", x(p99), y(rate))).collect();
        let _ = writeln!(
            out,
            r##"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"##,
            line.join(" ")
        );
        for p in &trial.points {
            let _ = writeln!(out, r##"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"/>"##, x(p.0), y(p.1));
        }
        let legend_y = TOP + 16.0 * index as f64;
        let _ = writeln!(
            out,
            r##"<rect x="{}" y="{:.1}" width="14" height="4" fill="{colour}"/><text x="{}" y="{:.1}" fill="#111827">{}</text>"##,
            WIDTH - RIGHT + 16.0,
            legend_y - 4.0,
            WIDTH - RIGHT + 36.0,
            legend_y + 1.0,
            escape(&trial.label)
        );
    }
    if let Some((p99, rate)) = best {
        let _ = writeln!(
            out,
            r##"<circle cx="{:.1}" cy="{:.1}" r="8" fill="none" stroke="#111827" stroke-width="2"/>"##,
            x(p99),
            y(rate)
        );
    }
    out.push_str("</svg>\n");
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_line_per_trial_and_rings_the_best() {
        let lines = vec![Line { label: "b8 d500us i1".into(), points: vec![(2.0, 100.0), (4.0, 180.0)] }];
        let svg = svg(&lines, Some((4.0, 180.0)), 5.0, "cnn<1>");
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert_eq!(svg.matches("r=\"8\"").count(), 1);
        assert!(svg.contains("cnn&lt;1&gt;") && svg.contains("b8 d500us i1") && svg.contains("target 5 ms"));
    }
}
