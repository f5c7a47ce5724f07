//! The process's one Prometheus recorder.
//!
//! `metrics` has one global recorder per process. Each binary installs it
//! first thing with its histogram buckets; when a coordinator and a node
//! share a process (the in-process test sandbox), the second caller gets
//! the first one's handle instead of an error, and both render the same
//! registry.

use anyhow::Context;
use metrics_exporter_prometheus::{BuildError, PrometheusBuilder, PrometheusHandle};
use parking_lot::Mutex;

static INSTALLED: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

/// Installs the recorder `configure` sets up, or returns the one already
/// installed in this process.
pub fn install_prometheus(
    configure: impl FnOnce(PrometheusBuilder) -> Result<PrometheusBuilder, BuildError>,
) -> anyhow::Result<PrometheusHandle> {
    let mut installed = INSTALLED.lock();
    if let Some(handle) = installed.as_ref() {
        return Ok(handle.clone());
    }
    let recorder = configure(PrometheusBuilder::new()).context("configuring the metrics recorder")?.build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|e| anyhow::anyhow!("installing the metrics recorder: {e}"))?;
    *installed = Some(handle.clone());
    Ok(handle)
}
