//! `maas-node`: a worker of a maas cluster (see the `maas_node` library).

use anyhow::Context;
use clap::Parser;
use maas_node::NodeConfig;

fn main() -> anyhow::Result<()> {
    let config = NodeConfig::parse();
    maas_process::init_logging();
    // Before any other torch call: thread pools and the allocator.
    maas_torch::prepare_process(config.inter_op_threads, config.intra_op_threads);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.io_threads)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(maas_node::run(config, stop_signal()))
}

/// Resolves on Ctrl-C or SIGTERM.
async fn stop_signal() {
    let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(terminate) => terminate,
        Err(error) => {
            tracing::error!(%error, "cannot watch SIGTERM; only Ctrl-C stops this node");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
