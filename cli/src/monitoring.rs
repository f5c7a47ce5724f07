//! `maas top`, `maas alerts` and `maas eval`: the monitoring views.

use std::time::Duration;

use anyhow::Result;
use maas_api::{Alert, AlertList, Evaluation, LiveStatus};

use crate::client::Client;
use crate::output::{print, table};

fn seconds_as_ms(value: Option<f64>) -> String {
    value.map(|s| format!("{:.2}", s * 1000.0)).unwrap_or_else(|| "-".into())
}

fn number(value: Option<f64>, decimals: usize) -> String {
    value.map(|v| format!("{v:.decimals$}")).unwrap_or_else(|| "-".into())
}

/// One screen of `maas top`.
fn top_screen(view: &LiveStatus) {
    let rows: Vec<Vec<String>> = view
        .versions
        .iter()
        .map(|v| {
            let raised: Vec<&str> = view
                .alerts
                .iter()
                .filter(|a| a.model == v.model && a.version == v.version)
                .map(|a| a.kind.as_str())
                .collect();
            vec![
                v.model.clone(),
                v.version.to_string(),
                number(Some(v.requests_per_second), 1),
                seconds_as_ms(v.p50_seconds),
                seconds_as_ms(v.p99_seconds),
                format!("{:.1}", v.error_rate * 100.0),
                number(v.mean_batch_rows, 1),
                v.in_flight.to_string(),
                v.queued.to_string(),
                if raised.is_empty() { "-".into() } else { raised.join(",") },
            ]
        })
        .collect();
    table(&["MODEL", "VERSION", "REQ/S", "P50 MS", "P99 MS", "ERR %", "BATCH", "IN FLIGHT", "QUEUED", "ALERTS"], &rows);
}

/// `maas top`: the live view, refreshed every `interval` (once with `once`).
pub async fn top(client: &Client, json: bool, interval: Duration, once: bool) -> Result<()> {
    loop {
        let view: LiveStatus = client.get_as("/v1/monitor").await?;
        if json {
            print(&view);
        } else {
            if !once {
                // Clear the screen and home the cursor.
                print!("\x1b[2J\x1b[H");
                println!(
                    "maas top: {} (every {:?}, Ctrl-C to quit; rates over the last 10 s)\n",
                    client.url(),
                    interval
                );
            }
            top_screen(&view);
        }
        if once || json {
            return Ok(());
        }
        tokio::time::sleep(interval).await;
    }
}

fn alert_rows(alerts: &[Alert], cleared: bool) -> Vec<Vec<String>> {
    alerts
        .iter()
        .map(|a| {
            let mut row = vec![
                a.kind.clone(),
                a.model.clone(),
                a.version.to_string(),
                a.input.clone().unwrap_or_else(|| "-".into()),
                number(Some(a.observed), 4),
                number(Some(a.baseline), 4),
                ago(Some(a.since)),
            ];
            if cleared {
                row.push(ago(a.cleared));
            }
            row
        })
        .collect()
}

/// How long ago a Unix time in seconds was.
fn ago(value: Option<f64>) -> String {
    let Some(at) = value else { return "-".into() };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64();
    format!("{:.0} s ago", (now - at).max(0.0))
}

/// `maas alerts`.
pub async fn alerts(client: &Client, json: bool) -> Result<()> {
    let answer: AlertList = client.get_as("/v1/alerts").await?;
    if json {
        print(&answer);
        return Ok(());
    }
    let header = ["KIND", "MODEL", "VERSION", "INPUT", "OBSERVED", "BASELINE", "SINCE"];
    let active = alert_rows(&answer.active, false);
    if active.is_empty() {
        println!("no active alert");
    } else {
        table(&header, &active);
    }
    let recent = alert_rows(&answer.recent, true);
    if !recent.is_empty() {
        println!("\nrecently cleared:");
        let mut header = header.to_vec();
        header.push("CLEARED");
        table(&header, &recent);
    }
    Ok(())
}

/// `maas eval MODEL`.
pub async fn eval(client: &Client, json: bool, model: &str) -> Result<()> {
    let answer: Evaluation = client.get_as(&format!("/v1/models/{model}/evaluation")).await?;
    if json {
        print(&answer);
        return Ok(());
    }
    let task = answer.task.as_str();
    println!("{model}: {task}, scored over the last {} labelled requests per version", answer.window);
    let rows: Vec<Vec<String>> = answer
        .versions
        .iter()
        .map(|v| {
            let mut row = vec![v.version.to_string(), v.samples.to_string()];
            let scores = match task {
                "regression" => vec![v.mae, v.rmse],
                "rating" => vec![v.mean_rating],
                _ => vec![v.accuracy, v.precision, v.recall, v.f1],
            };
            row.extend(scores.into_iter().map(|s| number(s, 4)));
            row
        })
        .collect();
    let mut header = vec!["VERSION", "SAMPLES"];
    header.extend(match task {
        "regression" => &["MAE", "RMSE"][..],
        "rating" => &["MEAN RATING"][..],
        _ => &["ACCURACY", "PRECISION", "RECALL", "F1"][..],
    });
    table(&header, &rows);
    let feedback = &answer.feedback;
    println!(
        "feedback: {} joined, {} for unknown ids, {} for expired ids; {} predictions waiting",
        feedback.joined, feedback.unknown, feedback.expired, answer.pending_predictions
    );
    Ok(())
}
