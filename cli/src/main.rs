//! `maas`: the command line for a maas cluster's management API.
//!
//! ```text
//! maas deploy clf --model model.pt --config config.json [--alias production]
//! maas models | describe clf | alias clf production 2 | traffic clf 1=90 2=10
//! maas rollback clf production | delete clf 1 | status
//! maas nodes | drain node-1
//! maas top | alerts | eval clf
//! maas keys create --tenant team-a --role inference --scope 'a-*' | keys list | keys revoke ID
//! maas usage [--tenant team-a] [--minutes 60]
//! ```
//!
//! Human tables by default; `--json` prints the API's JSON for scripts.

mod client;
mod decoder;
mod keys;
mod limits;
mod monitoring;
mod output;
mod pipeline;
mod replicas;
mod rollout;
mod tenants;
mod tune;
mod tune_plot;
mod usage;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use maas_api::{
    AliasDeleted, AliasRequest, AliasSet, ArtifactName, ClusterStatus, Draining, ModelDetail, ModelList, NodeLink,
    PublishRequest, Published, RolledBack, SplitEntry, SplitRequest, SplitSet, VersionDeleted,
};
use maas_protocol::ModelConfig;
use reqwest::Method;
use serde_json::{json, Value};

use crate::client::Client;
use crate::output::{print, table};

/// Manage the models of a maas cluster.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Coordinator URL.
    #[arg(long, global = true, env = "MAAS_URL", default_value = "http://127.0.0.1:8000")]
    url: String,
    /// File holding the admin token or an API key, read when
    /// `MAAS_ADMIN_TOKEN` is not set (tokens are never taken on the command
    /// line, which every user of the machine can see).
    #[arg(long, global = true, env = "MAAS_ADMIN_TOKEN_FILE", default_value = ".maas/coordinator/admin.token")]
    token_file: PathBuf,
    /// CA certificate (PEM) to trust for an https URL.
    #[arg(long, global = true, env = "MAAS_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// Seconds to wait for a connection or for the next bytes of an answer.
    #[arg(long, global = true, env = "MAAS_TIMEOUT_SECONDS", default_value_t = 60)]
    timeout: u64,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Upload a TorchScript file and publish it as the model's next version.
    Deploy {
        /// Model name.
        name: String,
        /// TorchScript file.
        #[arg(long)]
        model: PathBuf,
        /// Configuration JSON (its name is set to NAME).
        #[arg(long)]
        config: PathBuf,
        /// Where the model came from, recorded in its lineage.
        #[arg(long)]
        source: Option<String>,
        /// Version it derives from (default: the newest).
        #[arg(long)]
        parent: Option<u64>,
        /// Point this alias at the new version.
        #[arg(long)]
        alias: Option<String>,
    },
    /// Publish an external LLM engine (an OpenAI-compatible server such as
    /// vLLM or SGLang) as the next version of a generative model.
    Engine {
        /// Model name.
        name: String,
        /// The engine's base URL (`http://host:port`); repeat for several.
        #[arg(long = "url", required = true)]
        urls: Vec<String>,
        /// The engine's name for the model (default: NAME).
        #[arg(long)]
        engine_model: Option<String>,
        /// A file holding the bearer key the engine asks for.
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// Point this alias at the new version.
        #[arg(long)]
        alias: Option<String>,
    },
    /// Publish a decoder exported by `scripts/export_decoder.py` (its
    /// model.pt, tokenizer.json and decoder.json) as the next version of a
    /// generative model that maas nodes run.
    Decoder {
        /// Model name.
        name: String,
        /// The export's folder.
        #[arg(long)]
        dir: PathBuf,
        /// Most sequences stepped together.
        #[arg(long, default_value_t = 16)]
        max_batch_size: u32,
        /// Bytes the sequences' key/value caches may take on one replica
        /// (default 256 MiB).
        #[arg(long)]
        cache_bytes: Option<u64>,
        /// Point this alias at the new version.
        #[arg(long)]
        alias: Option<String>,
    },
    /// Publish a pipeline (a configuration with `platform: pipeline` and
    /// its steps) as the model's next version; processor artifacts given as
    /// file paths, relative to the configuration, are uploaded first.
    Pipeline {
        /// Model name.
        name: String,
        /// The pipeline's configuration JSON (its name is set to NAME).
        #[arg(long)]
        config: PathBuf,
        /// Point this alias at the new version.
        #[arg(long)]
        alias: Option<String>,
    },
    /// Find the batching and instance settings with the most throughput
    /// within a p99 target, on the live cluster (trials run as `MODEL.tune`).
    Tune {
        /// Model name.
        model: String,
        /// The version to start from (default: the newest).
        #[arg(long)]
        version: Option<u64>,
        /// The p99 latency target, in milliseconds.
        #[arg(long)]
        p99_ms: f64,
        /// Seconds of load per point.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Seconds the whole search may take (it stops after the trial running then).
        #[arg(long, default_value_t = 600)]
        budget: u64,
        /// The most concurrent clients tried.
        #[arg(long, default_value_t = 64)]
        max_concurrency: usize,
        /// Where to write the frontier plot (SVG).
        #[arg(long, default_value = "tune.svg")]
        plot: PathBuf,
        /// Publish the best setting as the model's next version (same artifact).
        #[arg(long)]
        apply: bool,
        /// The load generator (`maas-bench`; by default the one beside `maas`).
        #[arg(long)]
        bench: Option<PathBuf>,
    },
    /// List models.
    Models,
    /// Show a model's versions, aliases and split.
    Describe {
        /// Model name.
        name: String,
    },
    /// Point an alias at a version, or delete it.
    Alias {
        /// Model name.
        name: String,
        /// Alias name.
        alias: String,
        /// Target version.
        version: Option<u64>,
        /// Delete the alias.
        #[arg(long, conflicts_with = "version")]
        delete: bool,
    },
    /// Split traffic between versions: VERSION=WEIGHT ...
    Traffic {
        /// Model name.
        name: String,
        /// Shares such as 1=90 2=10.
        shares: Vec<String>,
        /// Remove the split.
        #[arg(long, conflicts_with = "shares")]
        clear: bool,
    },
    /// Move an alias back to its previous version.
    Rollback {
        /// Model name.
        name: String,
        /// Alias name.
        alias: String,
    },
    /// Delete a version no alias or split uses.
    Delete {
        /// Model name.
        name: String,
        /// Version.
        version: u64,
    },
    /// Show the coordinator's health and every version's state.
    Status,
    /// Show the nodes with their live load: in flight, queued, memory.
    Nodes,
    /// Ask a node to leave the cluster: its replicas move, it finishes what
    /// it has in flight, then it exits.
    Drain {
        /// Node name.
        node: String,
    },
    /// Live view of every version: requests/s, p50/p99, errors, batch
    /// size, load and alerts, refreshed in place.
    Top {
        /// Seconds between refreshes.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
        /// Print one screen and exit.
        #[arg(long)]
        once: bool,
    },
    /// Active alerts (latency, error rate, drift) and recently cleared ones.
    Alerts,
    /// A model's scores per version from ground-truth feedback.
    Eval {
        /// Model name.
        model: String,
    },
    /// What each tenant used, per model version.
    Usage {
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// How far back, in minutes.
        #[arg(long, default_value_t = 60)]
        minutes: u64,
    },
    /// Tenants' API keys: create, list, revoke.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Tenants and the limits all their keys share: list, limit, unlimit.
    Tenants {
        #[command(subcommand)]
        command: tenants::TenantsCommand,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // HTTPS uses aws-lc-rs, whatever else the build links.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    if let Err(error) = run(cli).await {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    let token = match std::env::var("MAAS_ADMIN_TOKEN") {
        Ok(token) if !token.is_empty() => Some(token),
        _ => std::fs::read_to_string(&cli.token_file).ok().map(|t| t.trim().to_string()),
    };
    let client = Client::new(&cli.url, token, cli.ca_file.as_deref(), std::time::Duration::from_secs(cli.timeout))?;
    match cli.command {
        Command::Deploy { name, model, config, source, parent, alias } => {
            let text = std::fs::read_to_string(&config).with_context(|| format!("reading {}", config.display()))?;
            let mut document: Value =
                serde_json::from_str(&text).with_context(|| format!("{} is not JSON", config.display()))?;
            document["name"] = json!(name);
            let config: ModelConfig = serde_json::from_value(document)
                .with_context(|| format!("{} is not a model configuration", config.display()))?;
            let uploaded = client.upload(&model, !cli.json).await?;
            if !cli.json {
                println!("uploaded: sha256 {}", uploaded.sha256);
            }
            let request = PublishRequest {
                config,
                artifact: Some(ArtifactName { sha256: uploaded.sha256 }),
                engine_key: None,
                source: Some(source.unwrap_or_else(|| model.display().to_string())),
                parent,
            };
            let published: Published =
                client.send_as(Method::POST, &format!("/v1/models/{name}/versions"), &request).await?;
            let version = published.version;
            if !cli.json {
                println!("checked and published: {name} version {version}");
            }
            if let Some(alias) = &alias {
                rollout::move_alias(&client, &name, alias, version, !cli.json).await?;
            }
            if cli.json {
                let mut shown = serde_json::to_value(&published)?;
                if let Some(alias) = alias {
                    shown["alias"] = json!(alias);
                }
                print(&shown);
            } else {
                println!("{name} version {version} (sha256 {})", published.sha256);
            }
        }
        Command::Engine { name, urls, engine_model, key_file, alias } => {
            let engine_key = match key_file {
                Some(path) => Some(
                    std::fs::read_to_string(&path)
                        .with_context(|| format!("reading the engine key from {}", path.display()))?
                        .trim()
                        .to_string(),
                ),
                None => None,
            };
            let config: ModelConfig = serde_json::from_value(json!({
                "name": name, "platform": "openai_engine", "engine": {"urls": urls, "model": engine_model}
            }))?;
            let request = PublishRequest { config, artifact: None, engine_key, source: None, parent: None };
            let published: Published =
                client.send_as(Method::POST, &format!("/v1/models/{name}/versions"), &request).await?;
            announce(&client, "engine", &name, &published, alias.as_deref(), cli.json).await?;
        }
        Command::Decoder { name, dir, max_batch_size, cache_bytes, alias } => {
            let options = decoder::DecoderOptions { max_batch_size, cache_bytes };
            let published = decoder::publish(&client, &name, &dir, &options, !cli.json).await?;
            announce(&client, "decoder", &name, &published, alias.as_deref(), cli.json).await?;
        }
        Command::Pipeline { name, config, alias } => {
            let published = pipeline::publish(&client, &name, &config, !cli.json).await?;
            announce(&client, "pipeline", &name, &published, alias.as_deref(), cli.json).await?;
        }
        Command::Models => {
            let models: ModelList = client.get_as("/v1/models").await?;
            if cli.json {
                print(&models);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = models
                .models
                .iter()
                .map(|m| {
                    vec![
                        m.name.clone(),
                        join(&m.versions),
                        join(&m.ready_versions),
                        m.aliases.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "),
                        split_text(&m.split),
                        if m.loaded { "yes".into() } else { "no".into() },
                    ]
                })
                .collect();
            table(&["MODEL", "VERSIONS", "READY", "ALIASES", "SPLIT", "LOADED"], &rows);
        }
        Command::Describe { name } => {
            let model: ModelDetail = client.get_as(&format!("/v1/models/{name}")).await?;
            if cli.json {
                print(&model);
                return Ok(());
            }
            println!("model {name}  loaded: {}  split: {}", model.loaded, split_text(&model.split));
            for (alias, target) in &model.aliases {
                println!("alias {alias} -> {} (history {})", target.version, join(&target.history));
            }
            let rows: Vec<Vec<String>> = model
                .versions
                .iter()
                .map(|v| {
                    vec![
                        v.version.to_string(),
                        v.ready_replicas.to_string(),
                        v.artifact.sha256.chars().take(12).collect(),
                        v.artifact.size.to_string(),
                        v.lineage.uploaded_by.clone(),
                        v.lineage.parent.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                        v.lineage.source.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            table(&["VERSION", "REPLICAS", "SHA256", "BYTES", "BY", "PARENT", "SOURCE"], &rows);
        }
        Command::Alias { name, alias, version, delete } => {
            let path = format!("/v1/models/{name}/aliases/{alias}");
            match (version, delete) {
                (_, true) => {
                    let deleted: AliasDeleted = client.send_empty_as(Method::DELETE, &path).await?;
                    if cli.json {
                        print(&deleted);
                    } else {
                        println!("{name}@{alias} deleted");
                    }
                }
                (Some(version), false) => {
                    let set: AliasSet = client.send_as(Method::PUT, &path, &AliasRequest { version }).await?;
                    if cli.json {
                        print(&set);
                    } else {
                        println!("{name}@{alias} -> version {}", set.version);
                    }
                }
                (None, false) => bail!("give the version the alias should point at, or --delete"),
            }
        }
        Command::Traffic { name, shares, clear } => {
            if shares.is_empty() && !clear {
                bail!("give shares such as 1=90 2=10, or --clear");
            }
            let split = shares
                .iter()
                .map(|share| {
                    let (version, weight) =
                        share.split_once('=').with_context(|| format!("'{share}' is not VERSION=WEIGHT"))?;
                    Ok(SplitEntry { version: version.parse()?, weight: weight.parse()? })
                })
                .collect::<Result<Vec<_>>>()?;
            let answer: SplitSet =
                client.send_as(Method::PUT, &format!("/v1/models/{name}/split"), &SplitRequest { split }).await?;
            if cli.json {
                print(&answer);
            } else {
                println!("{name} traffic: {}", if clear { "no split".into() } else { split_text(&answer.split) });
            }
        }
        Command::Rollback { name, alias } => {
            let answer: RolledBack =
                client.send_empty_as(Method::POST, &format!("/v1/models/{name}/aliases/{alias}/rollback")).await?;
            if cli.json {
                print(&answer);
            } else {
                println!("{name}@{alias}: version {} -> {}", answer.from, answer.version);
            }
        }
        Command::Delete { name, version } => {
            let answer: VersionDeleted =
                client.send_empty_as(Method::DELETE, &format!("/v1/models/{name}/versions/{version}")).await?;
            if cli.json {
                print(&answer);
            } else {
                println!("{name} version {version} deleted");
            }
        }
        Command::Status => {
            let server = client.get("/v2").await?;
            let ready = client.send_empty(Method::GET, "/v2/health/ready").await.is_ok();
            let index = client.send_empty(Method::POST, "/v2/repository/index").await?;
            if cli.json {
                print(&json!({"server": server, "ready": ready, "models": index}));
                return Ok(());
            }
            println!(
                "{} {} at {}: {}",
                server["name"].as_str().unwrap_or("?"),
                server["version"].as_str().unwrap_or("?"),
                cli.url,
                if ready { "ready" } else { "not ready" }
            );
            let rows: Vec<Vec<String>> = index
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|e| {
                    ["name", "version", "state", "reason"]
                        .iter()
                        .map(|k| e[*k].as_str().unwrap_or_default().to_string())
                        .collect()
                })
                .collect();
            table(&["MODEL", "VERSION", "STATE", "REASON"], &rows);
            replicas::print_replicas(&client).await?;
        }
        Command::Nodes => {
            let cluster: ClusterStatus = client.get_as("/v1/cluster").await?;
            if cli.json {
                print(&cluster);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = cluster.links.iter().map(node_row).collect();
            table(&["NODE", "ADDRESS", "LINK", "IN FLIGHT", "QUEUED", "MEMORY USED", "STATE"], &rows);
        }
        Command::Top { interval, once } => {
            monitoring::top(&client, cli.json, std::time::Duration::from_secs_f64(interval.max(0.1)), once).await?
        }
        Command::Alerts => monitoring::alerts(&client, cli.json).await?,
        Command::Eval { model } => monitoring::eval(&client, cli.json, &model).await?,
        Command::Keys { command } => keys::run(&client, cli.json, command).await?,
        Command::Tenants { command } => tenants::run(&client, cli.json, command).await?,
        Command::Usage { tenant, minutes } => usage::usage(&client, cli.json, minutes, tenant.as_deref()).await?,
        Command::Tune { model, version, p99_ms, seconds, budget, max_concurrency, plot, apply, bench } => {
            let options = tune::TuneOptions {
                version,
                p99_ms,
                seconds,
                budget: std::time::Duration::from_secs(budget),
                max_concurrency: max_concurrency.max(1),
                plot,
                apply,
                bench: bench.unwrap_or_else(tune::default_bench),
            };
            tune::tune(&client, &model, &options, cli.json).await?;
        }
        Command::Drain { node } => {
            let answer: Draining =
                client.send_empty_as(Method::POST, &format!("/v1/cluster/nodes/{node}/drain")).await?;
            if cli.json {
                print(&answer);
            } else {
                println!("{node} is draining: its replicas move to other nodes and it exits once idle");
            }
        }
    }
    Ok(())
}

/// One row of `maas nodes`.
fn node_row(link: &NodeLink) -> Vec<String> {
    let gib = |bytes: u64| format!("{:.2}", bytes as f64 / (1u64 << 30) as f64);
    let (in_flight, queued, memory, state) = match &link.status {
        Some(status) => {
            let queued: u64 = status.models.iter().map(|m| m.queued).sum();
            let memory = format!("{} / {} GiB", gib(status.memory_used_bytes), gib(status.memory_bytes));
            let state = if status.draining { "draining" } else { "serving" };
            (status.in_flight.to_string(), queued.to_string(), memory, state.to_string())
        }
        None => {
            let state = link.status_error.as_ref().map(|e| format!("no status: {e}")).unwrap_or_else(|| "-".into());
            ("-".into(), "-".into(), "-".into(), state)
        }
    };
    let link_state = if link.up { "up" } else { "down" };
    vec![link.name.clone(), link.addr.clone(), link_state.into(), in_flight, queued, memory, state]
}

fn join(list: &[u64]) -> String {
    list.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

fn split_text(split: &[SplitEntry]) -> String {
    if split.is_empty() {
        return "-".into();
    }
    split.iter().map(|e| format!("{}={}", e.version, e.weight)).collect::<Vec<_>>().join(" ")
}

/// Moves `alias` to a version just published, if asked, and says what was
/// published (as JSON with `json`).
async fn announce(
    client: &Client,
    kind: &str,
    name: &str,
    published: &Published,
    alias: Option<&str>,
    json: bool,
) -> Result<()> {
    if let Some(alias) = alias {
        rollout::move_alias(client, name, alias, published.version, !json).await?;
    }
    match json {
        true => print(&serde_json::to_value(published)?),
        false => println!("{kind} published: {name} version {}", published.version),
    }
    Ok(())
}
