//! `maas-bench`: throughput and latency of a running maas coordinator,
//! beside the ceiling of raw in-process LibTorch on the same model.
//!
//! ```text
//! maas-bench raw   --artifact .maas/models/mlp/1/model.pt --batch 1,64
//! maas-bench raw   --artifact build/bert/model.onnx --config build/bert/config.onnx.json --batch 1,8
//! maas-bench http  --url http://127.0.0.1:8000 --model mlp --concurrency 1,16,64 \
//!                  --encoding json,binary,grpc,grpc-stream --grpc-url http://127.0.0.1:9000
//! maas-bench suite --url http://127.0.0.1:8000      (both, as a Markdown table)
//! maas-bench placement --versions 10,100,1000 --nodes 10,100
//! maas-bench zipf --url http://127.0.0.1:8000 --artifacts .maas/bench-mlps --models 1000
//! maas-bench cycles --artifact .maas/bench-mlps/mlp-08.pt --cycles 1000
//! maas-bench step --artifact .maas/bench-mlps/mlp-03.pt --clients 16
//! maas-bench registry --artifact .maas/bench-mlps/mlp-00.pt --models 10000
//! ```
//!
//! Every run is bounded in time; HTTP load is closed-loop (each client sends
//! its next request when the previous one is answered) after a warm-up.

mod cycles;
mod grpc;
mod load;
mod open_loop;
mod placement;
mod plot;
mod quic;
mod raw;
mod registry_scale;
mod report;
mod step;
mod zipf;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(version, about = "Benchmarks a maas cluster against raw LibTorch")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Rows/s of raw in-process LibTorch at each batch size.
    Raw(RawArgs),
    /// Closed-loop load on a coordinator over HTTP and gRPC.
    Http(HttpArgs),
    /// The standard suite: raw ceiling, then every encoding at each concurrency.
    Suite(SuiteArgs),
    /// Time of the leader's placement with many versions and nodes.
    Placement(PlacementArgs),
    /// Many models loaded on demand under Zipf-distributed traffic.
    Zipf(ZipfArgs),
    /// Load → infer → unload cycles, with the node's memory before and after.
    Cycles(CycleArgs),
    /// A load step on one model whose replicas follow load.
    Step(StepArgs),
    /// Publishing, listing and reconciling a registry of many models.
    Registry(RegistryArgs),
}

#[derive(Args, Clone)]
struct RegistryArgs {
    /// Coordinator base URLs (the first publishes and lists; all report
    /// their rounds).
    #[arg(long = "url", default_value = "http://127.0.0.1:8000")]
    urls: Vec<String>,
    /// File holding the admin token.
    #[arg(long, default_value = ".maas/coordinator/admin.token")]
    token_file: PathBuf,
    /// TorchScript MLP (input `[-1, 64]`, output `[-1, 10]`).
    #[arg(long)]
    artifact: PathBuf,
    /// Versions to publish.
    #[arg(long, default_value_t = 10000)]
    models: usize,
    /// Publishes in flight at once.
    #[arg(long, default_value_t = 8)]
    parallel: usize,
}

#[derive(Args, Clone)]
struct StepArgs {
    /// Coordinator base URL.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    url: String,
    /// File holding the admin token.
    #[arg(long, default_value = ".maas/coordinator/admin.token")]
    token_file: PathBuf,
    /// TorchScript MLP (input `[-1, 64]`, output `[-1, 10]`).
    #[arg(long)]
    artifact: PathBuf,
    /// Clients during the step (one before and after it).
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Seconds of each phase.
    #[arg(long, default_value_t = 15.0)]
    seconds: f64,
    /// Longest wait, in seconds, for the replicas to go after the traffic stops.
    #[arg(long, default_value_t = 120)]
    zero_within_seconds: u64,
}

#[derive(Args, Clone)]
struct CycleArgs {
    /// Coordinator base URL.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    url: String,
    /// File holding the admin token.
    #[arg(long, default_value = ".maas/coordinator/admin.token")]
    token_file: PathBuf,
    /// The node's metrics URL (its budget should hold one version).
    #[arg(long, default_value = "http://127.0.0.1:9100/metrics")]
    node_metrics: String,
    /// MLP (input `[-1, 64]`, output `[-1, 10]`) in the format of --platform.
    #[arg(long)]
    artifact: PathBuf,
    /// The artifact's format: pytorch_libtorch, torch_aoti or onnxruntime_onnx.
    #[arg(long, default_value = "pytorch_libtorch")]
    platform: String,
    /// Cycles to run.
    #[arg(long, default_value_t = 1000)]
    cycles: usize,
    /// Cycles before the first memory reading.
    #[arg(long, default_value_t = 50)]
    warm_up: usize,
    /// Models called in turn (each call evicts the one before).
    #[arg(long, default_value_t = 2)]
    models: usize,
    /// Memory each model declares, in bytes: over half of what the node
    /// has left beside its repository's models.
    #[arg(long, default_value_t = 26 << 20)]
    memory_bytes: u64,
}

#[derive(Args, Clone)]
struct ZipfArgs {
    /// Coordinator base URL.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    url: String,
    /// File holding the admin token.
    #[arg(long, default_value = ".maas/coordinator/admin.token")]
    token_file: PathBuf,
    /// Folder of MLP artifacts (`bench/make_mlps.py` writes them).
    #[arg(long, default_value = ".maas/bench-mlps")]
    artifacts: PathBuf,
    /// Versions to publish and call.
    #[arg(long, default_value_t = 1000)]
    models: usize,
    /// Zipf exponent of the traffic over the models.
    #[arg(long, default_value_t = 1.1)]
    exponent: f64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Seconds of traffic.
    #[arg(long, default_value_t = 180.0)]
    seconds: f64,
    /// Other coordinators of the cluster (base URLs): the leader among all
    /// of them decides and counts the evictions.
    #[arg(long = "other-coordinator")]
    other_coordinators: Vec<String>,
}

#[derive(Args, Clone)]
struct RawArgs {
    /// The model's artifact, in the format its config's platform names.
    #[arg(long, alias = "torchscript", default_value = ".maas/models/mlp/1/model.pt")]
    artifact: PathBuf,
    /// Its configuration (platform and inputs); without one, the model is
    /// TorchScript with one FP32 input of --row-shape.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Input shape without the batch dimension, without --config.
    #[arg(long, value_delimiter = ',', default_value = "256")]
    row_shape: Vec<i64>,
    /// Batch sizes to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    batch: Vec<i64>,
    /// LibTorch intra-op threads.
    #[arg(long, default_value_t = 1)]
    threads: i32,
    /// Device of the raw run: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Seconds per batch size.
    #[arg(long, default_value_t = 3.0)]
    raw_seconds: f64,
}

#[derive(Args, Clone)]
struct HttpArgs {
    /// Coordinator base URL.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    url: String,
    /// Model to load (its single FP32 input is filled with random rows).
    #[arg(long, default_value = "mlp")]
    model: String,
    /// Concurrent clients to measure at.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    concurrency: Vec<usize>,
    /// Request encodings: json, binary (HTTP), grpc, grpc-stream, quic (straight to --node).
    #[arg(long, value_delimiter = ',', default_value = "json,binary,grpc,grpc-stream,quic")]
    encoding: Vec<load::Encoding>,
    /// The coordinator's gRPC front.
    #[arg(long, default_value = "http://127.0.0.1:9000")]
    grpc_url: String,
    /// For `quic`: a node to load directly, as NAME=HOST:PORT.
    #[arg(long, default_value = "node-0=127.0.0.1:7100")]
    node: String,
    /// For `quic`: the model version on the node.
    #[arg(long, default_value_t = 1)]
    node_version: u64,
    /// For `quic`: the cluster certificates and the client's name in them.
    #[arg(long, default_value = ".maas/certs")]
    cert_dir: PathBuf,
    /// For `quic`: the client certificate's name.
    #[arg(long, default_value = "coordinator")]
    client_name: String,
    /// Seconds measured per point.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Rows in each request (an image client sending several images at once).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
    rows: u32,
    /// Seconds of warm-up per point.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Print one JSON object per point instead of the table (what `maas tune` reads).
    #[arg(long)]
    json: bool,
}

#[derive(Args, Clone)]
struct PlacementArgs {
    /// Model versions to place (2 replicas each).
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000")]
    versions: Vec<usize>,
    /// Live nodes.
    #[arg(long, value_delimiter = ',', default_value = "10,100")]
    nodes: Vec<usize>,
    /// Plans timed per point (the median is reported).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
}

#[derive(Args, Clone)]
struct SuiteArgs {
    #[command(flatten)]
    http: HttpArgs,
    #[command(flatten)]
    raw: RawArgs,
    /// Open-loop (Poisson) offered rates in requests/s, HTTP binary; none to skip.
    #[arg(long, default_value = "5000,15000,25000", value_parser = parse_rates)]
    rates: Rates,
    /// Folder for the report: report.md, results.json, latency.svg.
    #[arg(long, default_value = ".maas/bench")]
    report_dir: PathBuf,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Raw(args) => {
            let points = run_raw(&args)?;
            print!("{}", report::raw_table(&points));
        }
        Command::Http(args) => {
            let points = run_http(&args)?;
            if args.json {
                points.iter().for_each(|point| println!("{}", report::http_json(point)));
            } else {
                print!("{}", report::http_table(&points, None));
            }
        }
        Command::Placement(args) => {
            let grid: Vec<(usize, usize)> =
                args.versions.iter().flat_map(|v| args.nodes.iter().map(move |n| (*v, *n))).collect();
            print!("{}", placement::table(&placement::measure(&grid, args.rounds)?));
        }
        Command::Cycles(args) => {
            let settings = cycles::CycleSettings {
                url: args.url,
                token: std::fs::read_to_string(&args.token_file)?.trim().to_string(),
                node_metrics: args.node_metrics,
                artifact: args.artifact,
                platform: args.platform,
                cycles: args.cycles,
                warm_up: args.warm_up,
                models: args.models,
                memory_bytes: args.memory_bytes,
            };
            tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(cycles::run(settings))?;
        }
        Command::Registry(args) => {
            let settings = registry_scale::RegistrySettings {
                urls: args.urls,
                token: std::fs::read_to_string(&args.token_file)?.trim().to_string(),
                artifact: args.artifact,
                models: args.models,
                parallel: args.parallel,
            };
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(registry_scale::run(settings))?;
        }
        Command::Step(args) => {
            let settings = step::StepSettings {
                url: args.url,
                token: std::fs::read_to_string(&args.token_file)?.trim().to_string(),
                artifact: args.artifact,
                clients: args.clients,
                seconds: args.seconds,
                zero_within: Duration::from_secs(args.zero_within_seconds),
            };
            tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(step::run(settings))?;
        }
        Command::Zipf(args) => {
            let token = std::fs::read_to_string(&args.token_file)?.trim().to_string();
            let settings = zipf::ZipfSettings {
                url: args.url,
                token,
                artifacts: args.artifacts,
                models: args.models,
                exponent: args.exponent,
                clients: args.clients,
                seconds: args.seconds,
                other_coordinators: args.other_coordinators,
            };
            tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(zipf::run(settings))?;
        }
        Command::Suite(args) => {
            let raw = run_raw(&args.raw)?;
            let http = run_http(&args.http)?;
            let open = run_open_loop(&args)?;
            let mut markdown = report::raw_table(&raw);
            markdown.push('\n');
            markdown.push_str(&report::http_table(&http, Some(&raw)));
            if !open.is_empty() {
                markdown.push('\n');
                markdown.push_str(&report::open_loop_table(&open));
            }
            print!("{markdown}");
            std::fs::create_dir_all(&args.report_dir)?;
            std::fs::write(args.report_dir.join("report.md"), &markdown)?;
            let json = report::json(&http, &raw, &open);
            std::fs::write(args.report_dir.join("results.json"), serde_json::to_string_pretty(&json)?)?;
            let title = format!("{}: p99 latency against throughput", args.http.model);
            std::fs::write(args.report_dir.join("latency.svg"), plot::svg(&title, &http, &raw))?;
            eprintln!("report written to {}", args.report_dir.display());
        }
    }
    Ok(())
}

fn run_raw(args: &RawArgs) -> Result<Vec<raw::RawPoint>> {
    let device = maas_torch::resolve_device(&args.device)?;
    let config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
        }
        None => raw::single_input_config(&args.row_shape),
    };
    raw::measure(&args.artifact, &config, &args.batch, args.threads, Duration::from_secs_f64(args.raw_seconds), device)
}

fn run_open_loop(args: &SuiteArgs) -> Result<Vec<open_loop::OpenLoopPoint>> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let target = load::Target::discover(&args.http.url, &args.http.model, args.http.rows as usize).await?;
        let mut points = Vec::new();
        for &rate in &args.rates.0 {
            let (warmup, window) =
                (Duration::from_secs_f64(args.http.warmup), Duration::from_secs_f64(args.http.seconds));
            let point = open_loop::run(&target, rate, warmup, window).await?;
            eprintln!(
                "open loop {rate:.0}/s: served {:.0}/s, dropped {}",
                point.point.requests_per_second(),
                point.dropped
            );
            points.push(point);
        }
        Ok(points)
    })
}

fn run_http(args: &HttpArgs) -> Result<Vec<load::LoadPoint>> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let target = load::Target::discover(&args.url, &args.model, args.rows as usize).await?;
        let mut points = Vec::new();
        for &encoding in &args.encoding {
            for &concurrency in &args.concurrency {
                let (warmup, window) = (Duration::from_secs_f64(args.warmup), Duration::from_secs_f64(args.seconds));
                let point = match encoding {
                    load::Encoding::Grpc | load::Encoding::GrpcStream | load::Encoding::Quic
                        if target.raw_inputs.is_empty() =>
                    {
                        anyhow::bail!(
                            "the gRPC and QUIC encodings drive models with one FP32 input; use json or binary"
                        )
                    }
                    load::Encoding::Grpc | load::Encoding::GrpcStream => {
                        grpc::closed_loop(&args.grpc_url, &target, encoding, concurrency, warmup, window).await?
                    }
                    load::Encoding::Quic => {
                        let (name, addr) =
                            args.node.split_once('=').ok_or_else(|| anyhow::anyhow!("--node is NAME=HOST:PORT"))?;
                        let node = quic::NodeAddress {
                            addr: addr.parse()?,
                            name,
                            cert_dir: &args.cert_dir,
                            client: &args.client_name,
                        };
                        quic::closed_loop(&node, &target, args.node_version, concurrency, warmup, window).await?
                    }
                    _ => load::closed_loop(&target, encoding, concurrency, warmup, window).await?,
                };
                eprintln!("{}", report::http_line(&point));
                points.push(point);
            }
        }
        Ok(points)
    })
}

/// Open-loop rates from the command line.
#[derive(Clone)]
struct Rates(Vec<f64>);

/// Parses `none` or comma-separated positive rates.
fn parse_rates(text: &str) -> Result<Rates, String> {
    if text == "none" {
        return Ok(Rates(Vec::new()));
    }
    text.split(',')
        .map(|rate| match rate.trim().parse::<f64>() {
            Ok(value) if value > 0.0 => Ok(value),
            _ => Err(format!("'{rate}' is not a positive rate in requests/s")),
        })
        .collect::<Result<_, _>>()
        .map(Rates)
}
