//! Logging to standard error, filtered by `MAAS_LOG`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The filter when `MAAS_LOG` is unset: info, with the actor framework's
/// per-message chatter left out.
const DEFAULT_FILTER: &str = "info,ractor=warn,ractor_cluster=warn";

/// Installs the process's log subscriber. `MAAS_LOG` takes tracing's
/// filter syntax (e.g. `debug` or `info,maas_coordinator=debug`).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("MAAS_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER)))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
