//! The node's command line; every flag also reads a `MAAS_NODE_*` variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// A maas worker node: loads TorchScript models with LibTorch and runs the
/// batches coordinators send it over QUIC.
#[derive(Debug, Clone, Parser)]
#[command(version)]
pub struct NodeConfig {
    /// This node's name; its certificate is `<cert-dir>/<name>.pem`.
    #[arg(long, env = "MAAS_NODE_NAME", default_value = "node-0")]
    pub name: String,

    /// UDP address the QUIC server binds.
    #[arg(long, env = "MAAS_NODE_QUIC_ADDR", default_value = "127.0.0.1:7100")]
    pub quic_addr: SocketAddr,

    /// TCP address of the Prometheus `/metrics` endpoint. Beyond loopback
    /// it needs `--metrics-token`.
    #[arg(long, env = "MAAS_NODE_METRICS_ADDR", default_value = "127.0.0.1:9100")]
    pub metrics_addr: SocketAddr,

    /// Ask scrapers of `/metrics` for this bearer token; required when the
    /// endpoint listens beyond loopback.
    #[arg(long, env = "MAAS_NODE_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<maas_process::Secret>,

    /// Folder with the cluster CA (`ca.pem`) and this node's certificate and key.
    #[arg(long, env = "MAAS_CERT_DIR")]
    pub cert_dir: PathBuf,

    /// A model repository to load at start: `<repo>/<model>/config.json` and
    /// `<repo>/<model>/<version>/model.pt`. Coordinators load further
    /// versions from the artifact store.
    #[arg(long, env = "MAAS_NODE_MODEL_REPOSITORY")]
    pub model_repository: Option<PathBuf>,

    /// Artifact store to fetch model versions from: a directory, a `file://`
    /// URL or object storage (`s3://bucket/prefix`, `gs://…`, `az://…`, with
    /// credentials from the environment), the store the coordinators upload to.
    #[arg(long, env = "MAAS_ARTIFACT_STORE")]
    pub artifact_store: Option<String>,

    /// etcd to register in; coordinators then find this node and the
    /// leader places replicas on it.
    #[command(flatten)]
    pub etcd: maas_registry::EtcdAccess,

    /// Seconds the membership lease lives without keep-alives.
    #[arg(long, env = "MAAS_NODE_LEASE_TTL_SECONDS", default_value_t = 3)]
    pub lease_ttl_seconds: u64,

    /// QUIC address coordinators should dial (default: the bound address).
    #[arg(long, env = "MAAS_NODE_ADVERTISE_ADDR")]
    pub advertise_addr: Option<SocketAddr>,

    /// Memory offered to models, in bytes; placement never exceeds it.
    #[arg(long, env = "MAAS_NODE_MEMORY_BYTES", default_value_t = 8 << 30)]
    pub memory_bytes: u64,

    /// Loads that may run side by side (a version never measured before
    /// loads alone, so that it is measured alone).
    #[arg(long, env = "MAAS_NODE_PARALLEL_LOADS", default_value_t = 4)]
    pub parallel_loads: usize,

    /// On SIGTERM, the longest wait for batches in flight to finish after
    /// leaving the cluster.
    #[arg(long, env = "MAAS_NODE_DRAIN_SECONDS", default_value_t = 15)]
    pub drain_seconds: u64,

    /// Folder for fetched artifacts (default: `.maas/node-<name>`; not the
    /// system's temporary folder, which other users can write to).
    #[arg(long, env = "MAAS_NODE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Load only these models from the repository (all when empty).
    #[arg(long, env = "MAAS_NODE_MODELS", value_delimiter = ',')]
    pub models: Vec<String>,

    /// Device for the models: `auto` (CUDA when available), `cpu`, `cuda` or `cuda:N`.
    #[arg(long, env = "MAAS_NODE_DEVICE", default_value = "auto")]
    pub device: String,

    /// Instances per model, each on its own thread; overrides each model's `instance_count`.
    #[arg(long, env = "MAAS_NODE_INSTANCES")]
    pub instances: Option<u32>,

    /// LibTorch intra-op threads (0: LibTorch's default, one per core).
    #[arg(long, env = "MAAS_NODE_INTRA_OP_THREADS", default_value_t = 0)]
    pub intra_op_threads: i32,

    /// LibTorch inter-op threads.
    #[arg(long, env = "MAAS_NODE_INTER_OP_THREADS", default_value_t = 1)]
    pub inter_op_threads: i32,

    /// ONNX Runtime's shared library (`libonnxruntime.so.*`), loaded at the
    /// first ONNX model; by default the one of the `onnxruntime` package the
    /// build found beside LibTorch.
    #[arg(long, env = "MAAS_ONNXRUNTIME_LIB")]
    pub onnxruntime_lib: Option<std::path::PathBuf>,

    /// Threads for QUIC and metrics IO.
    #[arg(long, env = "MAAS_NODE_IO_THREADS", default_value_t = 1)]
    pub io_threads: usize,

    /// Load-testing only: run no model and answer every batch with zeros
    /// after this many microseconds, so one machine can host many nodes to
    /// measure the coordinator. The answers mean nothing.
    #[arg(long, env = "MAAS_NODE_SIMULATE_COMPUTE_US")]
    pub simulate_compute_us: Option<u64>,

    /// Batches that may wait per model before the node answers `Overloaded`.
    #[arg(long, env = "MAAS_NODE_QUEUE_CAPACITY", default_value_t = 64)]
    pub queue_capacity: usize,

    /// Largest frame accepted on a QUIC stream, in bytes.
    #[arg(long, env = "MAAS_NODE_MAX_FRAME_BYTES", default_value_t = maas_protocol::frame::DEFAULT_MAX_FRAME_BYTES)]
    pub max_frame_bytes: usize,
}

impl NodeConfig {
    /// The node's data folder.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| PathBuf::from(".maas").join(format!("node-{}", self.name)))
    }
}
