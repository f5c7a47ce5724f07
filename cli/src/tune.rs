//! `maas tune`: finds the batching and instance settings of a model that
//! give the most throughput within a p99 latency target, on the live
//! cluster.
//!
//! Each trial publishes the model's artifact under a trial model
//! (`<model>.tune`, one replica, so one node loads it) with one setting
//! changed, waits for it to be ready, and drives it with the bench load
//! generator (`maas-bench http --json`) at doubling concurrency until its
//! p99 passes the target. A trial's score is its best throughput within the
//! target. The grid is searched one setting at a time from the current
//! configuration (batch size, then queue delay, then instances), each step
//! keeping the best so far, so it costs the sum of the axes, not their
//! product; the search stops at its time budget. The frontier is printed
//! and drawn ([`crate::tune_plot`]); `--apply` publishes the best
//! configuration as the model's next version with the same artifact.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use maas_api::{ArtifactName, ModelDetail, PublishRequest, Published, VersionDeleted};
use maas_protocol::ModelConfig;
use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::client::Client;
use crate::output::table;
use crate::tune_plot::Line;

/// What the user asked for.
pub struct TuneOptions {
    /// The version whose artifact and configuration are the starting point.
    pub version: Option<u64>,
    /// The p99 target in milliseconds.
    pub p99_ms: f64,
    /// Seconds measured per load point.
    pub seconds: f64,
    /// The whole search's budget.
    pub budget: Duration,
    /// The most concurrent clients tried.
    pub max_concurrency: usize,
    /// Where the frontier's SVG goes.
    pub plot: PathBuf,
    /// Publish the best setting as the model's next version.
    pub apply: bool,
    /// The bench binary.
    pub bench: PathBuf,
}

/// The settings one trial changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Setting {
    /// Rows per batch at most.
    pub max_batch_size: u32,
    /// How long a partial batch waits, in microseconds.
    pub max_queue_delay_us: u64,
    /// Instances on the node.
    pub instance_count: u32,
}

impl Setting {
    fn of(config: &ModelConfig) -> Setting {
        Setting {
            max_batch_size: config.max_batch_size,
            max_queue_delay_us: config.max_queue_delay_us,
            instance_count: config.instance_count,
        }
    }

    fn apply_to(self, config: &ModelConfig) -> ModelConfig {
        let mut config = config.clone();
        config.max_batch_size = self.max_batch_size;
        config.max_queue_delay_us = self.max_queue_delay_us;
        config.instance_count = self.instance_count;
        config.warmup_batch_sizes.retain(|&rows| rows <= self.max_batch_size);
        config
    }

    /// A short label: `b16 d500us i2`.
    pub fn label(&self) -> String {
        format!("b{} d{}us i{}", self.max_batch_size, self.max_queue_delay_us, self.instance_count)
    }
}

/// One load point of the bench generator.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Point {
    /// Concurrent clients.
    pub concurrency: usize,
    /// Successful requests per second.
    pub requests_per_second: f64,
    /// Median latency.
    pub p50_ms: f64,
    /// 99th percentile latency.
    pub p99_ms: f64,
    /// Failed requests.
    pub errors: u64,
}

/// A measured setting.
#[derive(Debug, Clone, Serialize)]
pub struct Trial {
    /// What was tried.
    pub setting: Setting,
    /// Its points, by concurrency.
    pub points: Vec<Point>,
}

impl Trial {
    /// The most throughput within `p99_ms` (with no errors), and its point.
    pub fn best_within(&self, p99_ms: f64) -> Option<&Point> {
        self.points
            .iter()
            .filter(|p| p.p99_ms <= p99_ms && p.errors == 0)
            .max_by(|a, b| a.requests_per_second.total_cmp(&b.requests_per_second))
    }
}

/// The next settings to try along each axis, from `best`.
fn axis(best: Setting, index: usize, current: Setting) -> Vec<Setting> {
    let mut values: Vec<Setting> = match index {
        0 => [1, 4, 16, 64].iter().map(|&b| Setting { max_batch_size: b, ..best }).collect(),
        1 => [0, 200, 1000, 5000].iter().map(|&d| Setting { max_queue_delay_us: d, ..best }).collect(),
        _ => {
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
            [1, 2, 4].iter().filter(|&&i| i <= cores.max(2)).map(|&i| Setting { instance_count: i, ..best }).collect()
        }
    };
    values.retain(|s| *s != current);
    values
}

/// Runs the search on `model`.
pub async fn tune(client: &Client, model: &str, options: &TuneOptions, json: bool) -> Result<()> {
    let detail: ModelDetail = client.get_as(&format!("/v1/models/{model}")).await?;
    let chosen = options.version.or_else(|| detail.versions.iter().map(|v| v.version).max());
    let version = detail
        .versions
        .iter()
        .find(|v| Some(v.version) == chosen)
        .with_context(|| format!("model '{model}' has no version {chosen:?}"))?;
    if !version.config.platform.runs_on_nodes() {
        bail!("model '{model}' version {} is not run by nodes; there is nothing to tune", version.version);
    }
    let started = Instant::now();
    let trial_model = format!("{model}.tune");
    let progress = ProgressBar::new(0);
    progress.set_style(ProgressStyle::with_template("{bar:24} {pos}/{len} trials · {msg}").expect("a valid template"));
    let current = Setting::of(&version.config);
    let mut trials = vec![run_trial(client, &trial_model, version, current, options, &progress).await?];
    let mut best = current;
    'axes: for index in 0..3 {
        let candidates = axis(best, index, current);
        progress.inc_length(candidates.len() as u64);
        for setting in candidates {
            if started.elapsed() > options.budget {
                progress.suspend(|| eprintln!("stopped at the budget of {:?}", options.budget));
                break 'axes;
            }
            if trials.iter().any(|t| t.setting == setting) {
                progress.inc(1);
                continue;
            }
            trials.push(run_trial(client, &trial_model, version, setting, options, &progress).await?);
        }
        best = winner(&trials, options.p99_ms).map_or(best, |t| t.setting);
    }
    progress.finish_and_clear();
    report(&trials, current, options, json)?;
    let winner = winner(&trials, options.p99_ms);
    let lines: Vec<Line> = trials
        .iter()
        .map(|t| Line {
            label: t.setting.label(),
            points: t.points.iter().map(|p| (p.p99_ms, p.requests_per_second)).collect(),
        })
        .collect();
    let best = winner.and_then(|t| t.best_within(options.p99_ms)).map(|p| (p.p99_ms, p.requests_per_second));
    crate::tune_plot::write(&options.plot, &lines, best, options.p99_ms, model)?;
    eprintln!("frontier plot: {}", options.plot.display());
    if options.apply {
        match winner {
            Some(trial) if trial.setting != current => {
                let request = PublishRequest {
                    config: trial.setting.apply_to(&version.config),
                    artifact: Some(ArtifactName { sha256: version.artifact.sha256.clone() }),
                    engine_key: None,
                    source: Some(format!("maas tune --p99-ms {} ({})", options.p99_ms, trial.setting.label())),
                    parent: Some(version.version),
                };
                let published: Published =
                    client.send_as(Method::POST, &format!("/v1/models/{model}/versions"), &request).await?;
                eprintln!("published {} version {} with {}", published.model, published.version, trial.setting.label());
            }
            _ => eprintln!("nothing to apply: the current setting is already the best one measured"),
        }
    }
    Ok(())
}

/// The trial with the most throughput within the target.
fn winner(trials: &[Trial], p99_ms: f64) -> Option<&Trial> {
    trials.iter().filter(|t| t.best_within(p99_ms).is_some()).max_by(|a, b| {
        let rate = |t: &Trial| t.best_within(p99_ms).map_or(0.0, |p| p.requests_per_second);
        rate(a).total_cmp(&rate(b))
    })
}

/// Publishes `setting` as a version of the trial model, measures it at
/// doubling concurrency until its p99 passes the target, and deletes it.
async fn run_trial(
    client: &Client,
    trial_model: &str,
    version: &maas_api::VersionDetail,
    setting: Setting,
    options: &TuneOptions,
    progress: &ProgressBar,
) -> Result<Trial> {
    progress.set_message(format!("{}: loading", setting.label()));
    let mut config = setting.apply_to(&version.config);
    config.name = trial_model.to_string();
    config.replicas = maas_protocol::ReplicaRange { min: 1, max: 1, target_in_flight: None };
    let request = PublishRequest {
        config,
        artifact: Some(ArtifactName { sha256: version.artifact.sha256.clone() }),
        engine_key: None,
        source: Some(format!("maas tune trial of {} version {}", version.config.name, version.version)),
        parent: None,
    };
    let published: Published =
        client.send_as(Method::POST, &format!("/v1/models/{trial_model}/versions"), &request).await?;
    let path = format!("{trial_model}/versions/{}", published.version);
    let measured = async {
        wait_ready(client, &path).await?;
        let mut points = Vec::new();
        let mut concurrency = 1;
        while concurrency <= options.max_concurrency {
            progress.set_message(format!("{}: {concurrency} clients", setting.label()));
            let point = measure(client.url(), client.token(), trial_model, concurrency, options)?;
            let past_target = point.p99_ms > options.p99_ms || point.errors > 0;
            progress.set_message(format!(
                "{}: {concurrency} clients, {:.0} req/s, p99 {:.2} ms",
                setting.label(),
                point.requests_per_second,
                point.p99_ms
            ));
            points.push(point);
            if past_target {
                break;
            }
            concurrency *= 2;
        }
        Ok::<_, anyhow::Error>(points)
    }
    .await;
    let path = format!("/v1/models/{trial_model}/versions/{}", published.version);
    let mut deleted: Result<VersionDeleted> = client.send_empty_as(Method::DELETE, &path).await;
    for _ in 0..2 {
        if deleted.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        deleted = client.send_empty_as(Method::DELETE, &path).await;
    }
    if let Err(error) = deleted {
        progress.suspend(|| eprintln!("could not delete trial version {}: {error:#}", published.version));
    }
    progress.inc(1);
    Ok(Trial { setting, points: measured? })
}

async fn wait_ready(client: &Client, path: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if client.get(&format!("/v2/models/{path}/ready")).await.is_ok_and(|r| r["ready"] == true) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{path} was not ready within 5 minutes");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The variable that hands the bench load generator its bearer token.
const BENCH_TOKEN_VAR: &str = "MAAS_BENCH_TOKEN";

/// One point from the bench load generator.
/// The token goes through the environment, never the command line.
fn measure(url: &str, token: Option<&str>, model: &str, concurrency: usize, options: &TuneOptions) -> Result<Point> {
    let mut command = Command::new(&options.bench);
    command
        .args(["http", "--json", "--encoding", "binary", "--url", url, "--model", model])
        .args(["--concurrency", &concurrency.to_string(), "--seconds", &options.seconds.to_string()])
        .args(["--warmup", "0.5"])
        .env_remove(BENCH_TOKEN_VAR);
    if let Some(token) = token {
        command.env(BENCH_TOKEN_VAR, token);
    }
    let output = command
        .output()
        .with_context(|| format!("running {} (set --bench to the maas-bench binary)", options.bench.display()))?;
    if !output.status.success() {
        bail!("the load generator failed: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().find(|l| l.starts_with('{')).context("the load generator printed no point")?;
    serde_json::from_str(line).with_context(|| format!("reading the load generator's point {line}"))
}

fn report(trials: &[Trial], current: Setting, options: &TuneOptions, json: bool) -> Result<()> {
    let target = options.p99_ms;
    if json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"p99_ms": target, "trials": trials}))?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = trials
        .iter()
        .map(|t| {
            let best = t.best_within(target);
            vec![
                t.setting.max_batch_size.to_string(),
                t.setting.max_queue_delay_us.to_string(),
                t.setting.instance_count.to_string(),
                best.map_or("none".into(), |p| format!("{:.0}", p.requests_per_second)),
                best.map_or("-".into(), |p| format!("{:.2}", p.p99_ms)),
                best.map_or("-".into(), |p| p.concurrency.to_string()),
                if t.setting == current { "current".into() } else { String::new() },
            ]
        })
        .collect();
    table(&["max_batch", "delay_us", "instances", &format!("req/s @p99<={target}ms"), "p99 ms", "clients", ""], &rows);
    let rate = |s: Setting| {
        trials.iter().find(|t| t.setting == s).and_then(|t| t.best_within(target)).map(|p| p.requests_per_second)
    };
    match winner(trials, target) {
        None => println!("\nno setting met p99 <= {target} ms at any concurrency"),
        Some(best) if best.setting == current => {
            println!("\nthe current setting ({}) is the best measured: it is on the frontier", current.label())
        }
        Some(best) => {
            let best_rate = rate(best.setting).unwrap_or(0.0);
            let gain = match rate(current) {
                Some(now) if now > 0.0 => format!("{:+.0} % throughput", (best_rate / now - 1.0) * 100.0),
                _ => "the current setting never met the target".into(),
            };
            println!("\nbest within p99 <= {target} ms: {} at {best_rate:.0} req/s ({gain})", best.setting.label());
        }
    }
    Ok(())
}

/// The bench binary beside this one, else `maas-bench` on the path.
pub fn default_bench() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("maas-bench")))
        .filter(|path| path.is_file())
        .unwrap_or_else(|| Path::new("maas-bench").to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(concurrency: usize, rps: f64, p99_ms: f64) -> Point {
        Point { concurrency, requests_per_second: rps, p50_ms: p99_ms / 2.0, p99_ms, errors: 0 }
    }

    #[test]
    fn the_winner_is_the_most_throughput_within_the_target() {
        let setting = |b| Setting { max_batch_size: b, max_queue_delay_us: 500, instance_count: 1 };
        let trials = vec![
            Trial { setting: setting(1), points: vec![point(1, 100.0, 2.0), point(2, 150.0, 30.0)] },
            Trial {
                setting: setting(16),
                points: vec![point(1, 90.0, 3.0), point(8, 400.0, 9.0), point(16, 600.0, 25.0)],
            },
        ];
        assert_eq!(trials[1].best_within(10.0).unwrap().requests_per_second, 400.0);
        assert_eq!(winner(&trials, 10.0).unwrap().setting, setting(16));
        assert_eq!(winner(&trials, 2.5).unwrap().setting, setting(1));
        assert!(winner(&trials, 1.0).is_none());
    }

    #[test]
    fn each_axis_moves_one_setting_from_the_best() {
        let best = Setting { max_batch_size: 16, max_queue_delay_us: 500, instance_count: 1 };
        let batches = axis(best, 0, best);
        assert!(batches.iter().all(|s| s.max_queue_delay_us == 500 && s.instance_count == 1));
        assert!(!batches.contains(&best), "the current setting is measured once, first");
        let delays = axis(best, 1, best);
        assert!(delays.iter().all(|s| s.max_batch_size == 16) && delays.len() == 4);
    }
}
