//! A coordinator and a node in one test process, on loopback ports.
//!
//! The cross-process tests (`tests/`) start real binaries, which is what a
//! user runs but costs seconds per test. A [`Sandbox`] runs the same code —
//! `maas_node::run` and `maas_coordinator::run` — as tasks of the test's own
//! runtime: real LibTorch, real QUIC with mutual TLS, a real control session,
//! real HTTP and gRPC fronts, started in a fraction of the time, for tests
//! about the request path rather than about processes.

use std::net::SocketAddr;
use std::sync::Once;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use maas_coordinator::CoordinatorConfig;
use maas_node::NodeConfig;
use maas_tests::cluster::{free_tcp_port, free_udp_port, make_certs, models_dir, TempDir, ADMIN_TOKEN};
use maas_tests::wait::wait_until;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running coordinator and node, stopped when dropped.
pub struct Sandbox {
    /// The coordinator's HTTP address.
    pub http_addr: SocketAddr,
    /// The coordinator's gRPC address.
    pub grpc_addr: SocketAddr,
    /// A client for the fronts.
    pub client: reqwest::Client,
    stops: Vec<oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<Result<()>>>,
    _dir: TempDir,
}

impl Sandbox {
    /// Starts a node serving `models` from the example repository and a
    /// coordinator linked to it, and waits until the coordinator is ready.
    pub async fn start(models: &[&str]) -> Result<Sandbox> {
        static TORCH: Once = Once::new();
        TORCH.call_once(|| maas_torch::prepare_process(1, 1));
        let dir = TempDir::new("sandbox");
        let certs = dir.path().join("certs");
        make_certs(&certs, &["coordinator", "node-0"])?;
        let quic_addr: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse()?;
        let http_addr: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse()?;
        let grpc_addr: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse()?;
        let path = |p: &std::path::Path| p.display().to_string();
        let node = NodeConfig::try_parse_from([
            "maas-node".to_string(),
            "--name=node-0".into(),
            format!("--quic-addr={quic_addr}"),
            format!("--metrics-addr=127.0.0.1:{}", free_tcp_port()),
            format!("--cert-dir={}", path(&certs)),
            "--device=cpu".into(),
            format!("--data-dir={}", path(&dir.path().join("node-0"))),
            format!("--model-repository={}", path(&models_dir())),
            format!("--models={}", models.join(",")),
        ])
        .context("node flags")?;
        let coordinator = CoordinatorConfig::try_parse_from([
            "maas-coordinator".to_string(),
            format!("--http-addr={http_addr}"),
            format!("--grpc-addr={grpc_addr}"),
            format!("--cert-dir={}", path(&certs)),
            format!("--node=node-0={quic_addr}"),
            format!("--data-dir={}", path(&dir.path().join("coordinator"))),
            format!("--admin-token={ADMIN_TOKEN}"),
        ])
        .context("coordinator flags")?;
        let mut sandbox = Sandbox {
            http_addr,
            grpc_addr,
            client: reqwest::Client::new(),
            stops: Vec::new(),
            tasks: Vec::new(),
            _dir: dir,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        sandbox.stops.push(stop);
        sandbox.tasks.push(tokio::spawn(maas_node::run(node, async move {
            let _ = stopped.await;
        })));
        let (stop, stopped) = oneshot::channel::<()>();
        sandbox.stops.push(stop);
        sandbox.tasks.push(tokio::spawn(maas_coordinator::run(coordinator, async move {
            let _ = stopped.await;
        })));
        let ready = sandbox.url("/v2/health/ready");
        let client = sandbox.client.clone();
        let waited = wait_until("the sandbox coordinator ready", Duration::from_secs(30), async || {
            client.get(&ready).send().await.is_ok_and(|r| r.status().is_success())
        })
        .await;
        if let Err(error) = waited {
            // A node or coordinator that stopped says why.
            let mut reasons = Vec::new();
            for task in sandbox.tasks.iter_mut().filter(|t| t.is_finished()) {
                match task.await {
                    Ok(Ok(())) => reasons.push("a task ended without an error".to_string()),
                    Ok(Err(stopped)) => reasons.push(format!("{stopped:#}")),
                    Err(panicked) => reasons.push(panicked.to_string()),
                }
            }
            anyhow::bail!("{error:#}; {reasons:?}");
        }
        Ok(sandbox)
    }

    /// `http://<coordinator>` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http_addr, path)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
        for task in &self.tasks {
            task.abort();
        }
    }
}
