//! `maas top`, `maas alerts` and `maas eval`: the monitoring views.

use std::time::Duration;

use anyhow::Result;
use serde_json::Value;

use crate::client::Client;
use crate::output::{print, table};

fn seconds_as_ms(value: &Value) -> String {
    value.as_f64().map(|s| format!("{:.2}", s * 1000.0)).unwrap_or_else(|| "-".into())
}

fn number(value: &Value, decimals: usize) -> String {
    value.as_f64().map(|v| format!("{v:.decimals$}")).unwrap_or_else(|| "-".into())
}

/// One screen of `maas top`.
fn top_screen(view: &Value) {
    let alerts = view["alerts"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = view["versions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|v| {
            let raised: Vec<String> = alerts
                .iter()
                .filter(|a| a["model"] == v["model"] && a["version"] == v["version"])
                .map(|a| a["kind"].as_str().unwrap_or("?").to_string())
                .collect();
            vec![
                v["model"].as_str().unwrap_or("?").to_string(),
                v["version"].to_string(),
                number(&v["requests_per_second"], 1),
                seconds_as_ms(&v["p50_seconds"]),
                seconds_as_ms(&v["p99_seconds"]),
                format!("{:.1}", v["error_rate"].as_f64().unwrap_or(0.0) * 100.0),
                number(&v["mean_batch_rows"], 1),
                v["in_flight"].to_string(),
                v["queued"].to_string(),
                if raised.is_empty() { "-".into() } else { raised.join(",") },
            ]
        })
        .collect();
    table(&["MODEL", "VERSION", "REQ/S", "P50 MS", "P99 MS", "ERR %", "BATCH", "IN FLIGHT", "QUEUED", "ALERTS"], &rows);
}

/// `maas top`: the live view, refreshed every `interval` (once with `once`).
pub async fn top(client: &Client, json: bool, interval: Duration, once: bool) -> Result<()> {
    loop {
        let view = client.get("/v1/monitor").await?;
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

fn alert_rows(alerts: &Value, cleared: bool) -> Vec<Vec<String>> {
    alerts
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|a| {
            let mut row = vec![
                a["kind"].as_str().unwrap_or("?").to_string(),
                a["model"].as_str().unwrap_or("?").to_string(),
                a["version"].to_string(),
                a["input"].as_str().unwrap_or("-").to_string(),
                number(&a["observed"], 4),
                number(&a["baseline"], 4),
                ago(&a["since"]),
            ];
            if cleared {
                row.push(ago(&a["cleared"]));
            }
            row
        })
        .collect()
}

/// How long ago a Unix time in seconds was.
fn ago(value: &Value) -> String {
    let Some(at) = value.as_f64() else { return "-".into() };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64();
    format!("{:.0} s ago", (now - at).max(0.0))
}

/// `maas alerts`.
pub async fn alerts(client: &Client, json: bool) -> Result<()> {
    let answer = client.get("/v1/alerts").await?;
    if json {
        print(&answer);
        return Ok(());
    }
    let header = ["KIND", "MODEL", "VERSION", "INPUT", "OBSERVED", "BASELINE", "SINCE"];
    let active = alert_rows(&answer["active"], false);
    if active.is_empty() {
        println!("no active alert");
    } else {
        table(&header, &active);
    }
    let recent = alert_rows(&answer["recent"], true);
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
    let answer = client.get(&format!("/v1/models/{model}/evaluation")).await?;
    if json {
        print(&answer);
        return Ok(());
    }
    let task = answer["task"].as_str().unwrap_or("?");
    println!("{model}: {task}, scored over the last {} labelled requests per version", answer["window"]);
    let columns: &[&str] =
        if task == "regression" { &["mae", "rmse"] } else { &["accuracy", "precision", "recall", "f1"] };
    let rows: Vec<Vec<String>> = answer["versions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|v| {
            let mut row = vec![v["version"].to_string(), v["samples"].to_string()];
            row.extend(columns.iter().map(|c| number(&v[*c], 4)));
            row
        })
        .collect();
    let mut header = vec!["VERSION", "SAMPLES"];
    let upper: Vec<String> = columns.iter().map(|c| c.to_uppercase()).collect();
    header.extend(upper.iter().map(String::as_str));
    table(&header, &rows);
    let feedback = &answer["feedback"];
    println!(
        "feedback: {} joined, {} for unknown ids, {} for expired ids; {} predictions waiting",
        feedback["joined"], feedback["unknown"], feedback["expired"], answer["pending_predictions"]
    );
    Ok(())
}
