//! `maas-coordinator`: the front of a maas cluster (see the
//! `maas_coordinator` library).

use anyhow::Context;
use clap::Parser;
use maas_coordinator::CoordinatorConfig;

fn main() -> anyhow::Result<()> {
    let config = CoordinatorConfig::parse();
    maas_process::init_logging();
    maas_process::keep_freed_memory(maas_process::FreedMemory::up_to(config.keep_free_memory_mib as usize * (1 << 20)));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.io_threads.max(1))
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(maas_coordinator::run(config, async {
        let _ = tokio::signal::ctrl_c().await;
    }))
}
