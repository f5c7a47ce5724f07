//! Real processes on loopback: certificates, nodes and a coordinator.

use std::fs;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use maas_registry::testsuite::{EtcdProcess, EtcdTlsFiles};

use crate::wait::{wait_for, wait_until};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// Path of a workspace binary built in the test's own profile.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let profile_dir = exe.parent().and_then(Path::parent).expect("test runs from target/<profile>/deps");
    let path = profile_dir.join(name);
    assert!(path.exists(), "{} is missing: build the binaries first (cargo build --release --bins)", path.display());
    path
}

/// The example model repository.
pub fn models_dir() -> PathBuf {
    let dir = std::env::var_os("MAAS_TEST_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".maas/models"));
    assert!(
        dir.join("mlp/config.json").exists(),
        "example models are missing in {}: run scripts/export_models.py",
        dir.display()
    );
    dir
}

/// A free TCP port on 127.0.0.1.
pub fn free_tcp_port() -> u16 {
    unclaimed_port(|port| TcpListener::bind(("127.0.0.1", port)).is_ok())
}

/// A free UDP port on 127.0.0.1.
pub fn free_udp_port() -> u16 {
    unclaimed_port(|port| UdpSocket::bind(("127.0.0.1", port)).is_ok())
}

/// Ports handed to processes are taken below Linux's ephemeral range
/// (32768 and up). A port picked there, as binding port 0 picks, can be
/// taken by any outgoing connection before the process binds it; below it,
/// only another pick could take it, and picks go round the range in turn.
fn unclaimed_port(free: impl Fn(u16) -> bool) -> u16 {
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    static NEXT: std::sync::OnceLock<std::sync::atomic::AtomicU32> = std::sync::OnceLock::new();
    let next = NEXT.get_or_init(|| std::sync::atomic::AtomicU32::new(rand::random::<u32>() % COUNT));
    for _ in 0..COUNT {
        let port = (FIRST + next.fetch_add(1, Ordering::Relaxed) % COUNT) as u16;
        if free(port) {
            return port;
        }
    }
    panic!("no free port between {FIRST} and {}", FIRST + COUNT)
}

/// A folder removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new empty folder under the system temp dir.
    pub fn new(prefix: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "maas-{prefix}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("creating a temp dir");
        TempDir(path)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("MAAS_TEST_KEEP").is_none() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// A TLS client configuration that trusts the CA certificate in `path`.
pub fn tls_trusting(path: &Path) -> Result<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(path)? {
        roots.add(cert?)?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Writes a CA (in `dir/ca`, so that every test folder has its own) and
/// certificates for `names` into `dir` with `maas-certs`: a coordinator's
/// for names starting with `coordinator`, a node's for the others.
pub fn make_certs(dir: &Path, names: &[&str]) -> Result<()> {
    let (coordinators, nodes): (Vec<&str>, Vec<&str>) = names.iter().partition(|n| n.starts_with("coordinator"));
    for (role, names) in [("coordinator", coordinators), ("node", nodes)] {
        if !names.is_empty() {
            make_role_certs(dir, role, &names)?;
        }
    }
    Ok(())
}

/// Writes certificates of `role` (coordinator, node or front) for `names`.
pub fn make_role_certs(dir: &Path, role: &str, names: &[&str]) -> Result<()> {
    let status = Command::new(binary("maas-certs"))
        .arg("--dir")
        .arg(dir)
        .arg("--ca-dir")
        .arg(dir.join("ca"))
        .arg("--role")
        .arg(role)
        .args(names)
        .stdout(Stdio::null())
        .status()
        .context("running maas-certs")?;
    if !status.success() {
        bail!("maas-certs failed: {status}");
    }
    Ok(())
}

/// Certificates for a secure etcd in `dir`: an `etcd` server pair and an
/// `etcd-client` pair for the cluster's processes, from the cluster CA.
pub fn etcd_certs(dir: &Path) -> Result<EtcdTlsFiles> {
    make_role_certs(dir, "etcd", &["etcd"])?;
    make_role_certs(dir, "etcd-client", &["etcd-client"])?;
    Ok(EtcdTlsFiles {
        ca: dir.join("ca.pem"),
        server: (dir.join("etcd.pem"), dir.join("etcd.key")),
        client: (dir.join("etcd-client.pem"), dir.join("etcd-client.key")),
    })
}

/// Runs `command` until it exits or `timeout` passes (then kills it):
/// its exit status if it exited in time, and what it wrote to stderr.
pub fn run_until_exit(command: &mut Command, timeout: Duration) -> (Option<std::process::ExitStatus>, String) {
    let scratch = TempDir::new("run");
    let log = scratch.path().join("stderr");
    let mut child = command
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).expect("creating a log file"))
        .spawn()
        .expect("starting the process");
    let started = Instant::now();
    let exited = loop {
        match child.try_wait().expect("polling the process") {
            Some(status) => break Some(status),
            None if started.elapsed() > timeout => break None,
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    (exited, fs::read_to_string(&log).unwrap_or_default())
}

/// A child process killed when dropped.
pub struct Process {
    child: Option<Child>,
    /// Its log file (stdout and stderr).
    pub log: PathBuf,
}

impl Process {
    /// Starts `command` with its output appended to `log`.
    pub fn spawn(command: &mut Command, log: PathBuf) -> Result<Process> {
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("opening {}", log.display()))?;
        let child = command
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {:?}", command.get_program()))?;
        Ok(Process { child: Some(child), log })
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits up to `limit` for the process to exit.
    pub fn terminate(&mut self, limit: Duration) -> Result<()> {
        let Some(child) = self.child.as_mut() else { return Ok(()) };
        // SAFETY: kill(2) with a pid we own and a valid signal number.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let started = Instant::now();
        while child.try_wait()?.is_none() {
            anyhow::ensure!(started.elapsed() < limit, "the process did not exit within {limit:?} of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = None;
        Ok(())
    }

    /// Whether it has exited.
    pub fn has_exited(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().map(|s| s.is_some()).unwrap_or(true),
            None => true,
        }
    }

    /// The end of its log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines.len().saturating_sub(30);
        // A panic's message comes before its backtrace, which can fill the
        // tail: keep the message and the errors logged before the tail.
        let earlier = lines[..tail]
            .iter()
            .enumerate()
            .filter(|(_, line)| line.contains("panicked at") || line.contains(" ERROR "))
            .flat_map(|(at, _)| lines[at..(at + 3).min(tail)].iter())
            .take(30)
            .copied()
            .collect::<Vec<_>>();
        match earlier.is_empty() {
            true => lines[tail..].join("\n"),
            false => format!("{}\n  ...\n{}", earlier.join("\n"), lines[tail..].join("\n")),
        }
    }

    /// Resident memory in KiB, from /proc.
    pub fn rss_kib(&self) -> Option<u64> {
        self.status_kib("VmRSS:")
    }

    /// The most resident memory it has held, in KiB, from /proc.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        self.status_kib("VmHWM:")
    }

    fn status_kib(&self, field: &str) -> Option<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        status.lines().find(|l| l.starts_with(field))?.split_whitespace().nth(1)?.parse().ok()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One node to start.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// Node name (its certificate's).
    pub name: String,
    /// Models to load; all when empty.
    pub models: Vec<String>,
    /// Extra command-line arguments.
    pub args: Vec<String>,
    /// Whether it preloads the example model repository.
    pub repository: bool,
    /// A certificate folder of its own instead of the cluster's (to test
    /// nodes that must not be admitted); such nodes are not waited for.
    pub cert_dir: Option<PathBuf>,
    /// etcd endpoints to use instead of the cluster's (e.g. through a proxy).
    pub etcd_endpoints: Option<String>,
    /// The UDP port to bind QUIC on, instead of a free one.
    pub quic_port: Option<u16>,
    /// Its log filter (`MAAS_LOG`), instead of `info`.
    pub log: Option<String>,
}

impl NodeSpec {
    /// A node named `name` preloading `models` from the example repository (all when empty).
    pub fn new(name: &str, models: &[&str]) -> NodeSpec {
        NodeSpec {
            name: name.into(),
            models: models.iter().map(|m| m.to_string()).collect(),
            args: vec![],
            repository: true,
            cert_dir: None,
            etcd_endpoints: None,
            quic_port: None,
            log: None,
        }
    }

    /// A node with no preloaded models: it serves what the registry places on it.
    pub fn bare(name: &str) -> NodeSpec {
        NodeSpec {
            name: name.into(),
            models: vec![],
            args: vec![],
            repository: false,
            cert_dir: None,
            etcd_endpoints: None,
            quic_port: None,
            log: None,
        }
    }

    /// A bare node using the certificates in `cert_dir`.
    pub fn with_certs(name: &str, cert_dir: PathBuf) -> NodeSpec {
        NodeSpec { cert_dir: Some(cert_dir), ..NodeSpec::bare(name) }
    }
}

/// A running node.
pub struct Node {
    /// Its specification.
    pub spec: NodeSpec,
    /// QUIC address.
    pub quic_addr: SocketAddr,
    /// Metrics address.
    pub metrics_addr: SocketAddr,
    /// The process.
    pub process: Process,
}

/// The admin token test clusters use.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";
/// The inference token test clusters use when inference tokens are on.
pub const INFERENCE_TOKEN: &str = "test-inference-token-0123456789";

/// Configures a [`Cluster`].
pub struct ClusterBuilder {
    nodes: Vec<NodeSpec>,
    coordinator_args: Vec<String>,
    etcd: usize,
    membership: bool,
    artifact_store: Option<ArtifactLocation>,
    front_tls: bool,
    secure_etcd: bool,
}

/// Where the cluster's processes keep artifacts, when not in a folder of the
/// cluster's own.
#[derive(Debug, Clone)]
pub struct ArtifactLocation {
    /// The store's URL (`s3://bucket/prefix`, ...).
    pub url: String,
    /// Environment the processes need to reach it (endpoint, credentials).
    pub env: Vec<(String, String)>,
}

impl Default for ClusterBuilder {
    fn default() -> Self {
        ClusterBuilder {
            nodes: vec![NodeSpec::new("node-0", &[])],
            coordinator_args: vec![],
            etcd: 0,
            membership: false,
            artifact_store: None,
            front_tls: false,
            secure_etcd: false,
        }
    }
}

impl ClusterBuilder {
    /// Replaces the nodes to start.
    pub fn nodes(mut self, nodes: Vec<NodeSpec>) -> Self {
        self.nodes = nodes;
        self
    }

    /// Adds coordinator arguments.
    pub fn coordinator_args(mut self, args: &[&str]) -> Self {
        self.coordinator_args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Keeps the registry in a real etcd started for the cluster.
    pub fn with_etcd(mut self) -> Self {
        self.etcd = self.etcd.max(1);
        self
    }

    /// Uses a 3-member etcd cluster.
    pub fn with_three_etcd_members(mut self) -> Self {
        self.etcd = 3;
        self
    }

    /// Cluster mode: etcd, nodes that register there, coordinators that find
    /// them there and place replicas (no `--node` list).
    pub fn with_membership(mut self) -> Self {
        self.etcd = self.etcd.max(1);
        self.membership = true;
        self
    }

    /// Cluster mode on an etcd that speaks only TLS, wants a client
    /// certificate and has authentication on; every process logs in as
    /// the user [`maas_registry::testsuite::SECURE_USER`].
    pub fn with_secure_etcd(mut self) -> Self {
        self.secure_etcd = true;
        self.with_membership()
    }

    /// Serves the coordinator's HTTP and gRPC fronts over TLS with a
    /// `front` certificate of the cluster CA; the test client trusts it.
    pub fn with_front_tls(mut self) -> Self {
        self.front_tls = true;
        self
    }

    /// Keeps artifacts in `location` instead of a folder of the cluster's.
    pub fn artifact_store(mut self, location: ArtifactLocation) -> Self {
        self.artifact_store = Some(location);
        self
    }

    /// Starts the nodes and the coordinator and waits until every node's
    /// models are ready through the coordinator.
    pub async fn start(self) -> Result<Cluster> {
        let dir = TempDir::new("cluster");
        let certs = dir.path().join("certs");
        let etcd = match (self.etcd, self.secure_etcd) {
            (0, _) => vec![],
            (1, true) => vec![EtcdProcess::start_secure(&etcd_certs(&certs)?).await?],
            (1, false) => vec![EtcdProcess::start().await?],
            _ => EtcdProcess::start_three().await?,
        };
        let mut names: Vec<&str> = vec!["coordinator"];
        names.extend(self.nodes.iter().map(|n| n.name.as_str()));
        make_certs(&certs, &names)?;
        let mut coordinator_args = self.coordinator_args;
        let mut client = reqwest::Client::builder().pool_max_idle_per_host(256);
        if self.front_tls {
            make_role_certs(&certs, "front", &["front"])?;
            for (flag, file) in [("--tls-cert", "front.pem"), ("--tls-key", "front.key")] {
                coordinator_args.extend([flag.to_string(), certs.join(file).display().to_string()]);
            }
            client = client.use_preconfigured_tls(tls_trusting(&certs.join("ca.pem"))?);
        }
        let artifact_store = self.artifact_store.unwrap_or_else(|| ArtifactLocation {
            url: dir.path().join("artifacts").display().to_string(),
            env: vec![],
        });
        let mut cluster = Cluster {
            artifact_store,
            nodes: Vec::new(),
            coordinator: None,
            http_addr: SocketAddr::from(([127, 0, 0, 1], free_tcp_port())),
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], free_tcp_port())),
            certs,
            client: client.build()?,
            scheme: if self.front_tls { "https" } else { "http" },
            coordinator_args,
            etcd,
            membership: self.membership,
            dir,
        };
        for spec in self.nodes {
            let quic_addr = SocketAddr::from(([127, 0, 0, 1], free_udp_port()));
            let metrics_addr = SocketAddr::from(([127, 0, 0, 1], free_tcp_port()));
            let process = cluster.spawn_node(&spec, quic_addr, metrics_addr)?;
            cluster.nodes.push(Node { spec, quic_addr, metrics_addr, process });
        }
        for index in 0..cluster.nodes.len() {
            cluster.wait_node_metrics(index).await?;
        }
        cluster.start_coordinator()?;
        cluster.wait_links_up().await?;
        for index in 0..cluster.nodes.len() {
            cluster.wait_node_serving(index).await?;
        }
        Ok(cluster)
    }
}

/// Nodes and a coordinator on loopback, stopped when dropped.
pub struct Cluster {
    /// The nodes, in start order.
    pub nodes: Vec<Node>,
    /// The coordinator.
    pub coordinator: Option<Process>,
    /// The coordinator's HTTP address.
    pub http_addr: SocketAddr,
    /// The coordinator's gRPC address.
    pub grpc_addr: SocketAddr,
    /// Folder of the cluster's certificates.
    pub certs: PathBuf,
    /// An HTTP client for the tests.
    pub client: reqwest::Client,
    /// `http`, or `https` when the fronts serve TLS.
    pub scheme: &'static str,
    coordinator_args: Vec<String>,
    /// The etcd members holding the registry, when the cluster has them.
    pub etcd: Vec<EtcdProcess>,
    membership: bool,
    artifact_store: ArtifactLocation,
    dir: TempDir,
}

impl Cluster {
    /// A builder with one node serving every example model.
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder::default()
    }

    /// `http://<coordinator>` (or https) + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{}", self.scheme, self.http_addr, path)
    }

    fn spawn_node(&self, spec: &NodeSpec, quic_addr: SocketAddr, metrics_addr: SocketAddr) -> Result<Process> {
        let mut command = Command::new(binary("maas-node"));
        command
            .arg("--name")
            .arg(&spec.name)
            .arg("--quic-addr")
            .arg(quic_addr.to_string())
            .arg("--metrics-addr")
            .arg(metrics_addr.to_string())
            .arg("--cert-dir")
            .arg(spec.cert_dir.as_ref().unwrap_or(&self.certs))
            .arg("--device")
            .arg(std::env::var("MAAS_TEST_DEVICE").unwrap_or_else(|_| "cpu".into()))
            .arg("--intra-op-threads")
            .arg("1")
            .arg("--artifact-store")
            .arg(self.artifact_store())
            .arg("--data-dir")
            .arg(self.node_data_dir(&spec.name))
            .args(&spec.args)
            .envs(self.artifact_store.env.iter().cloned())
            .env("MAAS_LOG", spec.log.as_deref().unwrap_or("info"));
        if self.membership && !self.etcd.is_empty() {
            let endpoints = spec.etcd_endpoints.clone().unwrap_or_else(|| self.etcd_endpoints());
            command.args(self.etcd_args(endpoints)).arg("--lease-ttl-seconds").arg("2");
        }
        if spec.repository {
            command.arg("--model-repository").arg(models_dir());
        }
        if !spec.models.is_empty() {
            command.arg("--models").arg(spec.models.join(","));
        }
        Process::spawn(&mut command, self.dir.path().join(format!("{}.log", spec.name)))
    }

    /// The etcd client URLs, comma-separated.
    pub fn etcd_endpoints(&self) -> String {
        self.etcd.iter().map(|e| e.endpoint.clone()).collect::<Vec<_>>().join(",")
    }

    /// The flags that reach the cluster's etcd through `endpoints`: with its
    /// CA, client certificate, user and password file when it is secure.
    pub fn etcd_args(&self, endpoints: String) -> Vec<String> {
        let mut args = vec!["--etcd-endpoints".to_string(), endpoints];
        let access = &self.etcd[0].access;
        let files = [
            ("--etcd-ca-file", &access.ca_file),
            ("--etcd-cert-file", &access.cert_file),
            ("--etcd-key-file", &access.key_file),
            ("--etcd-password-file", &access.password_file),
        ];
        for (flag, path) in files {
            if let Some(path) = path {
                args.extend([flag.to_string(), path.display().to_string()]);
            }
        }
        if let Some(user) = &access.user {
            args.extend(["--etcd-user".to_string(), user.clone()]);
        }
        args
    }

    /// The data folder of node `name` (its artifact cache is `artifacts/` in it).
    pub fn node_data_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The artifact store shared by the coordinator and the nodes.
    pub fn artifact_store(&self) -> &str {
        &self.artifact_store.url
    }

    fn coordinator_command(&self, http_addr: SocketAddr, grpc_addr: Option<SocketAddr>, data_dir: &Path) -> Command {
        let nodes: Vec<String> = self.nodes.iter().map(|n| format!("{}={}", n.spec.name, n.quic_addr)).collect();
        let mut command = Command::new(binary("maas-coordinator"));
        command.arg("--http-addr").arg(http_addr.to_string()).arg("--cert-dir").arg(&self.certs);
        command.arg("--grpc-addr").arg(grpc_addr.map_or_else(|| "off".to_string(), |a| a.to_string()));
        if !self.membership && !nodes.is_empty() {
            command.arg("--node").arg(nodes.join(","));
        }
        command
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--artifact-store")
            .arg(self.artifact_store())
            .arg("--admin-token")
            .arg(ADMIN_TOKEN)
            .args(&self.coordinator_args)
            .envs(self.artifact_store.env.iter().cloned())
            .env("MAAS_LOG", "info");
        if !self.etcd.is_empty() {
            command.args(self.etcd_args(self.etcd_endpoints()));
        }
        command
    }

    fn start_coordinator(&mut self) -> Result<()> {
        let data_dir = self.dir.path().join("coordinator");
        let mut command = self.coordinator_command(self.http_addr, Some(self.grpc_addr), &data_dir);
        self.coordinator = Some(Process::spawn(&mut command, self.dir.path().join("coordinator.log"))?);
        Ok(())
    }

    /// Starts another coordinator over the same nodes, registry and artifact
    /// store, and returns it with its base URL once it answers.
    pub async fn start_another_coordinator(&self, name: &str) -> Result<(Process, String)> {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_tcp_port()));
        make_certs(&self.certs, &[name])?;
        let mut command = self.coordinator_command(addr, None, &self.dir.path().join(name));
        command.arg("--name").arg(name);
        let process = Process::spawn(&mut command, self.dir.path().join(format!("{name}.log")))?;
        let url = format!("{}://{addr}", self.scheme);
        let live = format!("{url}/v2/health/live");
        let answered = wait_until(&format!("{name} to answer"), Duration::from_secs(30), async || {
            self.client.get(&live).send().await.is_ok()
        })
        .await;
        if let Err(error) = answered {
            bail!("{name} did not start ({error}):\n{}", process.log_tail());
        }
        Ok((process, url))
    }

    /// Kills the coordinator and starts it again with the same data.
    pub async fn restart_coordinator(&mut self) -> Result<()> {
        if let Some(mut old) = self.coordinator.take() {
            old.kill();
        }
        self.start_coordinator()?;
        self.wait_links_up().await
    }

    /// Waits until the coordinator answers and its link to every node is up.
    pub async fn wait_links_up(&self) -> Result<()> {
        let up = wait_until("the node links to come up", Duration::from_secs(60), async || {
            let Ok(metrics) = self.coordinator_metrics().await else { return false };
            self.nodes
                .iter()
                .filter(|n| n.spec.cert_dir.is_none())
                .all(|n| metric_sum(&metrics, "maas_node_link_up", &[("node", n.spec.name.as_str())]) == 1.0)
        })
        .await;
        if up.is_err() {
            bail!("node links never came up\n{}", self.logs_for_failure());
        }
        Ok(())
    }

    /// Kills every node and starts them again.
    pub async fn restart_nodes(&mut self) -> Result<()> {
        for index in 0..self.nodes.len() {
            self.kill_node(index);
        }
        for index in 0..self.nodes.len() {
            self.restart_node(index).await?;
        }
        Ok(())
    }

    async fn wait_node_metrics(&mut self, index: usize) -> Result<()> {
        let url = format!("http://{}/metrics", self.nodes[index].metrics_addr);
        let (client, node) = (&self.client, &mut self.nodes[index]);
        // Some(true) once it answers, Some(false) if it exits first.
        let started = wait_for("the node's metrics endpoint", Duration::from_secs(60), async || {
            // A node that asks for a metrics token answers 401: it is up.
            if client.get(&url).send().await.is_ok_and(|r| r.status().is_success() || r.status() == 401) {
                Some(true)
            } else {
                node.process.has_exited().then_some(false)
            }
        })
        .await;
        if !matches!(started, Ok(true)) {
            bail!("node {} did not start:\n{}", node.spec.name, node.process.log_tail());
        }
        Ok(())
    }

    /// Waits until every model of node `index` is ready through the coordinator.
    pub async fn wait_node_serving(&mut self, index: usize) -> Result<()> {
        let models = if !self.nodes[index].spec.repository {
            vec![]
        } else if self.nodes[index].spec.models.is_empty() {
            vec!["mlp".to_string(), "cnn".into(), "ranker".into(), "faulty".into(), "dtypes".into(), "sleepy".into()]
        } else {
            self.nodes[index].spec.models.clone()
        };
        // One 60-second budget for all of them.
        let deadline = Instant::now() + Duration::from_secs(60);
        for model in models {
            let url = self.url(&format!("/v2/models/{model}/ready"));
            let timeout = deadline.saturating_duration_since(Instant::now());
            let ready = wait_until(&format!("model {model} to become ready"), timeout, async || {
                self.client.get(&url).bearer_auth(ADMIN_TOKEN).send().await.is_ok_and(|r| r.status().is_success())
            })
            .await;
            if ready.is_err() {
                bail!(
                    "model {model} never became ready; coordinator log:\n{}",
                    self.coordinator.as_ref().map(|c| c.log_tail()).unwrap_or_default()
                );
            }
        }
        Ok(())
    }

    /// Starts one more node after the cluster is up.
    pub async fn add_node(&mut self, spec: NodeSpec) -> Result<()> {
        if spec.cert_dir.is_none() {
            make_certs(&self.certs, &[spec.name.as_str()])?;
        }
        let quic_addr = SocketAddr::from(([127, 0, 0, 1], spec.quic_port.unwrap_or_else(free_udp_port)));
        let metrics_addr = SocketAddr::from(([127, 0, 0, 1], free_tcp_port()));
        let process = self.spawn_node(&spec, quic_addr, metrics_addr)?;
        self.nodes.push(Node { spec, quic_addr, metrics_addr, process });
        self.wait_node_metrics(self.nodes.len() - 1).await
    }

    /// Kills node `index` with SIGKILL.
    pub fn kill_node(&mut self, index: usize) {
        self.nodes[index].process.kill();
    }

    /// Starts node `index` again on its old addresses and waits for its metrics endpoint.
    pub async fn restart_node(&mut self, index: usize) -> Result<()> {
        let node = &self.nodes[index];
        let process = self.spawn_node(&node.spec.clone(), node.quic_addr, node.metrics_addr)?;
        self.nodes[index].process = process;
        self.wait_node_metrics(index).await
    }

    /// The coordinator's `/metrics` text.
    pub async fn coordinator_metrics(&self) -> Result<String> {
        Ok(self.client.get(self.url("/metrics")).bearer_auth(ADMIN_TOKEN).send().await?.text().await?)
    }

    /// The coordinator process.
    pub fn coordinator(&self) -> &Process {
        self.coordinator.as_ref().expect("the coordinator was started")
    }

    /// Each process's log tail, and whether it is still running, for a
    /// failure message.
    fn logs_for_failure(&self) -> String {
        // A child that exited but was not reaped yet is a zombie ('Z').
        let state = |process: &Process| {
            let stat = process.pid().and_then(|pid| fs::read_to_string(format!("/proc/{pid}/stat")).ok());
            match stat.as_deref().and_then(|s| s.rsplit(") ").next()).and_then(|rest| rest.chars().next()) {
                Some('Z') | None => "exited",
                Some(_) => "running",
            }
        };
        let mut out = format!("coordinator ({}):\n{}\n", state(self.coordinator()), self.coordinator().log_tail());
        for node in &self.nodes {
            out += &format!("node {} ({}):\n{}\n", node.spec.name, state(&node.process), node.process.log_tail());
        }
        out
    }
}

/// Sums the samples of `metric` whose labels contain every `labels` pair,
/// from Prometheus text.
pub fn metric_sum(text: &str, metric: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (name_and_labels, value) = line.rsplit_once(' ')?;
            let (name, label_text) = match name_and_labels.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (name_and_labels, ""),
            };
            if name != metric {
                return None;
            }
            let all = labels.iter().all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\"")));
            all.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// The TCP ports process `pid` listens on, read from /proc: its socket
/// inodes from `fd/`, matched with the listening sockets of `net/tcp{,6}`.
pub fn listening_tcp_ports(pid: u32) -> Result<Vec<u16>> {
    let mut inodes = std::collections::HashSet::new();
    for entry in fs::read_dir(format!("/proc/{pid}/fd")).with_context(|| format!("listing the fds of {pid}"))? {
        let Ok(target) = fs::read_link(entry?.path()) else { continue };
        let target = target.to_string_lossy().into_owned();
        if let Some(inode) = target.strip_prefix("socket:[").and_then(|t| t.strip_suffix(']')) {
            inodes.insert(inode.to_string());
        }
    }
    let mut ports = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address is field 1 (ADDR:PORT in hex), st is field 3
            // (0A = LISTEN), inode is field 9.
            let (Some(local), Some(state), Some(inode)) = (fields.get(1), fields.get(3), fields.get(9)) else {
                continue;
            };
            if *state != "0A" || !inodes.contains(*inode) {
                continue;
            }
            let port = local.rsplit(':').next().and_then(|hex| u16::from_str_radix(hex, 16).ok());
            ports.extend(port);
        }
    }
    ports.sort_unstable();
    ports.dedup();
    Ok(ports)
}
