//! The coordinator's command line; every flag also reads a `MAAS_COORDINATOR_*` variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use maas_process::Secret;

/// The maas coordinator: serves the Open Inference Protocol v2 over HTTP,
/// batches requests per model version and dispatches them to nodes over QUIC.
#[derive(Debug, Clone, Parser)]
#[command(version)]
pub struct CoordinatorConfig {
    /// This coordinator's name; its certificate is `<cert-dir>/<name>.pem`.
    #[arg(long, env = "MAAS_COORDINATOR_NAME", default_value = "coordinator")]
    pub name: String,

    /// TCP address of the HTTP front (inference, health, metadata, /metrics).
    #[arg(long, env = "MAAS_COORDINATOR_HTTP_ADDR", default_value = "127.0.0.1:8000")]
    pub http_addr: SocketAddr,

    /// TCP address of the gRPC front (Triton's GRPCInferenceService);
    /// default: the HTTP host with the HTTP port + 1000 (8000 -> 9000);
    /// `off` serves no gRPC.
    #[arg(long, env = "MAAS_COORDINATOR_GRPC_ADDR")]
    pub grpc_addr: Option<String>,

    /// HTTP worker threads.
    #[arg(long, env = "MAAS_COORDINATOR_HTTP_WORKERS", default_value_t = 2)]
    pub http_workers: usize,

    /// Threads for batching, dispatch and QUIC.
    #[arg(long, env = "MAAS_COORDINATOR_IO_THREADS", default_value_t = 1)]
    pub io_threads: usize,

    /// Folder with the cluster CA (`ca.pem`) and this coordinator's certificate and key.
    #[arg(long, env = "MAAS_CERT_DIR")]
    pub cert_dir: PathBuf,

    /// Nodes to serve from, as `NAME=HOST:PORT` (the name must match the
    /// node's certificate); each loads every version. Without this flag and
    /// with etcd, nodes are found through their etcd registration and the
    /// leader coordinator places replicas on them.
    #[arg(long = "node", env = "MAAS_COORDINATOR_NODES", value_delimiter = ',')]
    pub nodes: Vec<NodeAddress>,

    /// etcd, holding the registry, keys, usage, membership and the leader
    /// election; without endpoints the registry is a file in the data
    /// folder, for a single machine.
    #[command(flatten)]
    pub etcd: maas_registry::EtcdAccess,

    /// Seconds the leader's election lease lives without keep-alives; a
    /// dead leader is replaced within about this long.
    #[arg(long, env = "MAAS_COORDINATOR_LEASE_TTL_SECONDS", default_value_t = 3)]
    pub lease_ttl_seconds: u64,

    /// Folder for the embedded registry, the generated admin token and, by
    /// default, the artifact store.
    #[arg(long, env = "MAAS_COORDINATOR_DATA_DIR", default_value = ".maas/coordinator")]
    pub data_dir: PathBuf,

    /// Artifact store for uploaded models, which nodes read too: a directory,
    /// a `file://` URL or object storage (`s3://bucket/prefix`, `gs://…`,
    /// `az://…`, with credentials from the environment); default
    /// `<data-dir>/artifacts`.
    #[arg(long, env = "MAAS_ARTIFACT_STORE")]
    pub artifact_store: Option<String>,

    /// Seconds after its last request that a version loaded on demand
    /// (`replicas.min: 0`) is wanted no more; its replica is then unloaded
    /// (after the reconciler's grace). Cluster mode only.
    #[arg(long, env = "MAAS_COORDINATOR_IDLE_UNLOAD_SECONDS", default_value_t = 300)]
    pub idle_unload_seconds: u64,

    /// Seconds a version's requests in flight per replica must stay above
    /// its target before the leader adds a replica (up to `replicas.max`).
    #[arg(long, env = "MAAS_COORDINATOR_SCALE_UP_SECONDS", default_value_t = 3)]
    pub scale_up_seconds: u64,

    /// Seconds a version's load must fit in one replica fewer (at half its
    /// target) before the leader removes one (down to `replicas.min`).
    #[arg(long, env = "MAAS_COORDINATOR_SCALE_DOWN_SECONDS", default_value_t = 60)]
    pub scale_down_seconds: u64,

    /// Freed memory each allocator heap keeps for reuse, MiB; requests
    /// larger than this are given back to the system as soon as they are
    /// done. More saves page faults under large batches, less returns a
    /// spike of large requests sooner.
    #[arg(long, env = "MAAS_COORDINATOR_KEEP_FREE_MEMORY_MIB", default_value_t = 32,
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub keep_free_memory_mib: u64,

    /// Requests slower than this many milliseconds are logged with their
    /// id, batch, node and where their time went.
    #[arg(long, env = "MAAS_COORDINATOR_SLOW_REQUEST_MS", default_value_t = 1000)]
    pub slow_request_ms: u64,

    /// Turns off statistics, anomaly detection, drift and feedback (to
    /// measure what they cost); Prometheus metrics stay.
    #[arg(long, env = "MAAS_COORDINATOR_NO_MONITORING")]
    pub no_monitoring: bool,

    /// One request in this many feeds the input drift profiles.
    #[arg(long, env = "MAAS_COORDINATOR_DRIFT_SAMPLE_EVERY", default_value_t = 10)]
    pub drift_sample_every: u64,

    /// Sampled rows in each version's reference profile (its first ones)
    /// and in the sliding window compared with it.
    #[arg(long, env = "MAAS_COORDINATOR_DRIFT_ROWS", default_value_t = 500)]
    pub drift_rows: usize,

    /// Drift score (largest feature PSI of an input) that raises an alert.
    #[arg(long, env = "MAAS_COORDINATOR_DRIFT_THRESHOLD", default_value_t = 0.25)]
    pub drift_threshold: f64,

    /// Predictions kept per model for feedback (requests with an `id`).
    #[arg(long, env = "MAAS_COORDINATOR_FEEDBACK_CAPACITY", default_value_t = 100_000)]
    pub feedback_capacity: usize,

    /// How long a prediction waits for its feedback, in seconds.
    #[arg(long, env = "MAAS_COORDINATOR_FEEDBACK_TTL_SECONDS", default_value_t = 3600)]
    pub feedback_ttl_seconds: u64,

    /// Joined feedback pairs each version is evaluated over.
    #[arg(long, env = "MAAS_COORDINATOR_EVALUATION_WINDOW", default_value_t = 1000)]
    pub evaluation_window: usize,

    /// Largest model upload accepted, in bytes.
    #[arg(long, env = "MAAS_COORDINATOR_MAX_UPLOAD_BYTES", default_value_t = 2 << 30)]
    pub max_upload_bytes: u64,

    /// Bearer token for the management API. When unset it is read from
    /// `--admin-token-file`, which is generated (mode 0600) at first start.
    #[arg(long, env = "MAAS_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<Secret>,

    /// File holding the admin token (default: `<data-dir>/admin.token`).
    #[arg(long, env = "MAAS_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,

    /// A shared bearer token for inference on every model (tenants' keys
    /// work besides). Inference is open to requests without a token when
    /// neither this nor `--require-keys` is set.
    #[arg(long, env = "MAAS_INFERENCE_TOKEN", hide_env_values = true)]
    pub inference_token: Option<Secret>,

    /// Ask Prometheus scrapers of `/metrics` for this bearer token (an
    /// admin's works too); `/metrics` is open when unset.
    #[arg(long, env = "MAAS_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<Secret>,

    /// Refuse requests without a key or token on every route but health,
    /// server metadata and metrics (inference included).
    #[arg(long, env = "MAAS_REQUIRE_KEYS")]
    pub require_keys: bool,

    /// Certificate (PEM) of the HTTP and gRPC fronts: with `--tls-key`,
    /// both serve TLS only (HTTPS and gRPC over TLS).
    #[arg(long, env = "MAAS_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// Private key (PEM) of `--tls-cert`.
    #[arg(long, env = "MAAS_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Require clients of the fronts to present a certificate signed by
    /// this CA (PEM).
    #[arg(long, env = "MAAS_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,

    /// A CA (PEM) trusted for `https://` engine URLs besides the system's
    /// roots, for engines behind a private certificate.
    #[arg(long, env = "MAAS_ENGINE_CA")]
    pub engine_ca: Option<PathBuf>,

    /// Open connections each front (HTTP, gRPC) holds at most; further
    /// clients wait in the listen backlog.
    #[arg(long, env = "MAAS_COORDINATOR_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "MAAS_COORDINATOR_MAX_BODY_BYTES", default_value_t = 64 << 20)]
    pub max_body_bytes: usize,

    /// Requests that may wait per model version before new ones get 503.
    #[arg(long, env = "MAAS_COORDINATOR_MAX_QUEUE", default_value_t = 1024)]
    pub max_queue: usize,

    /// Deadline of a request that sets no `timeout` parameter, in milliseconds.
    #[arg(long, env = "MAAS_COORDINATOR_REQUEST_TIMEOUT_MS", default_value_t = 30_000)]
    pub request_timeout_ms: u64,

    /// How often counted usage is stored, in milliseconds: what a crash
    /// loses at most.
    #[arg(long, env = "MAAS_COORDINATOR_USAGE_FLUSH_MS", default_value_t = 5_000)]
    pub usage_flush_ms: u64,

    /// The longest deadline a request may ask for with its `timeout`
    /// parameter, in milliseconds; longer ones are cut to it.
    #[arg(long, env = "MAAS_COORDINATOR_MAX_REQUEST_TIMEOUT_MS", default_value_t = 300_000)]
    pub max_request_timeout_ms: u64,

    /// Batches in flight per model instance on a node.
    #[arg(long, env = "MAAS_COORDINATOR_BATCHES_PER_INSTANCE", default_value_t = 2)]
    pub batches_per_instance: usize,

    /// Largest frame exchanged with a node, in bytes.
    #[arg(long, env = "MAAS_COORDINATOR_MAX_FRAME_BYTES", default_value_t = maas_protocol::frame::DEFAULT_MAX_FRAME_BYTES)]
    pub max_frame_bytes: usize,
}

impl CoordinatorConfig {
    /// Where the gRPC front listens, or `None` when it is off.
    pub fn grpc_addr(&self) -> anyhow::Result<Option<SocketAddr>> {
        match self.grpc_addr.as_deref() {
            Some("off") => Ok(None),
            Some(text) => Ok(Some(text.parse().map_err(|e| anyhow::anyhow!("--grpc-addr '{text}': {e}"))?)),
            None => {
                let port = self.http_addr.port().checked_add(1000).ok_or_else(|| {
                    anyhow::anyhow!(
                        "the HTTP port {} leaves no room for the default gRPC port; pass --grpc-addr",
                        self.http_addr.port()
                    )
                })?;
                Ok(Some(SocketAddr::new(self.http_addr.ip(), port)))
            }
        }
    }

    /// Where the artifact store is.
    pub fn artifact_store(&self) -> String {
        self.artifact_store.clone().unwrap_or_else(|| self.data_dir.join("artifacts").to_string_lossy().into_owned())
    }

    /// The fronts' TLS, when configured.
    pub fn front_tls(&self) -> Option<maas_fronts::tls::FrontTls> {
        Some(maas_fronts::tls::FrontTls {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
            client_ca: self.tls_client_ca.clone(),
        })
    }

    /// The default request deadline.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// The longest request deadline.
    pub fn max_request_timeout(&self) -> Duration {
        Duration::from_millis(self.max_request_timeout_ms.max(self.request_timeout_ms))
    }
}

/// A node's certificate name and QUIC address.
#[derive(Debug, Clone)]
pub struct NodeAddress {
    /// The name in the node's certificate.
    pub name: String,
    /// Its QUIC address.
    pub addr: SocketAddr,
}

impl std::str::FromStr for NodeAddress {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (name, addr) = text.split_once('=').ok_or_else(|| format!("'{text}' is not NAME=HOST:PORT"))?;
        let addr = addr.parse().map_err(|e| format!("'{addr}' is not a socket address: {e}"))?;
        if name.is_empty() {
            return Err(format!("'{text}' has an empty node name"));
        }
        Ok(NodeAddress { name: name.to_string(), addr })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_shows_no_token() {
        let config = CoordinatorConfig::parse_from([
            "maas-coordinator",
            "--cert-dir",
            "certs",
            "--admin-token",
            "admin-secret-0123456789",
            "--inference-token",
            "inference-secret-0123456789",
        ]);
        let shown = format!("{config:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert_eq!(config.admin_token.as_ref().map(Secret::expose), Some("admin-secret-0123456789"));
    }
}
