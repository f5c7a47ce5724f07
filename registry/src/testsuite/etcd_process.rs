//! Real etcd servers for tests: plain, a three-member cluster, or one with
//! TLS, client certificates and authentication on, as production runs it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::EtcdAccess;

/// A real etcd server on loopback ports with its own data folder, for
/// tests; killed and cleaned up when dropped.
pub struct EtcdProcess {
    child: std::process::Child,
    data_dir: PathBuf,
    /// Its client URL.
    pub endpoint: String,
    /// How maas processes reach it (TLS files, user and password file when
    /// it is secure).
    pub access: EtcdAccess,
}

/// Certificates for a secure etcd: its server pair, the CA that signed
/// every certificate, and a client pair for maas processes.
#[derive(Debug, Clone)]
pub struct EtcdTlsFiles {
    /// The CA certificate.
    pub ca: PathBuf,
    /// The server certificate (valid for 127.0.0.1) and its key.
    pub server: (PathBuf, PathBuf),
    /// A client certificate and its key.
    pub client: (PathBuf, PathBuf),
}

/// The etcd user maas processes log in as on a secure test etcd; its role
/// may read and write the maas prefix and nothing else.
pub const SECURE_USER: &str = "maas";
/// The key prefix that user may use.
pub const SECURE_PREFIX: &str = "/maas/v1/";

impl EtcdProcess {
    /// Starts a 3-member etcd cluster; the first member's `endpoint` is one
    /// of [`EtcdProcess::endpoints`] of each.
    pub async fn start_three() -> anyhow::Result<Vec<EtcdProcess>> {
        let listeners: Vec<(std::net::TcpListener, std::net::TcpListener)> = (0..3)
            .map(|_| Ok((std::net::TcpListener::bind("127.0.0.1:0")?, std::net::TcpListener::bind("127.0.0.1:0")?)))
            .collect::<std::io::Result<_>>()?;
        let ports: Vec<(u16, u16)> =
            listeners.iter().map(|(c, p)| (c.local_addr().unwrap().port(), p.local_addr().unwrap().port())).collect();
        drop(listeners);
        let initial: Vec<String> =
            ports.iter().enumerate().map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}")).collect();
        let mut members = Vec::new();
        for (i, (client, peer)) in ports.iter().enumerate() {
            members.push(Self::spawn(&format!("m{i}"), *client, *peer, &initial.join(","), None)?);
        }
        for member in &members {
            member.wait_ready().await?;
        }
        Ok(members)
    }

    /// Starts `etcd` (from PATH, or `MAAS_ETCD_BIN`) and waits until it answers.
    pub async fn start() -> anyhow::Result<EtcdProcess> {
        let (client_port, peer_port) = two_free_ports()?;
        let etcd = Self::spawn("test", client_port, peer_port, &format!("test=http://127.0.0.1:{peer_port}"), None)?;
        etcd.wait_ready().await?;
        Ok(etcd)
    }

    /// Starts an etcd that speaks only TLS, requires a client certificate
    /// signed by the CA, and has authentication on: a root user, and
    /// [`SECURE_USER`] whose role reads and writes [`SECURE_PREFIX`] only.
    /// `access` carries the client certificate, the user and a file with
    /// its password.
    pub async fn start_secure(files: &EtcdTlsFiles) -> anyhow::Result<EtcdProcess> {
        let (client_port, peer_port) = two_free_ports()?;
        let initial = format!("secure=http://127.0.0.1:{peer_port}");
        let mut etcd = Self::spawn("secure", client_port, peer_port, &initial, Some(files))?;
        etcd.wait_ready().await?;
        let password = random_password();
        let password_file = etcd.data_dir.with_extension("password");
        std::fs::write(&password_file, format!("{password}\n"))?;
        enable_auth(&etcd.access, &password).await.context("turning on etcd authentication")?;
        etcd.access.user = Some(SECURE_USER.into());
        etcd.access.password_file = Some(password_file);
        Ok(etcd)
    }

    fn spawn(
        name: &str,
        client_port: u16,
        peer_port: u16,
        initial_cluster: &str,
        tls: Option<&EtcdTlsFiles>,
    ) -> anyhow::Result<EtcdProcess> {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let data_dir = std::env::temp_dir().join(format!(
            "maas-etcd-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&data_dir);
        let scheme = if tls.is_some() { "https" } else { "http" };
        let endpoint = format!("{scheme}://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let binary = std::env::var("MAAS_ETCD_BIN").unwrap_or_else(|_| "etcd".into());
        let log = std::fs::File::create(data_dir.with_extension("log"))?;
        let mut command = std::process::Command::new(&binary);
        command
            .arg(format!("--name={name}"))
            .arg(format!("--data-dir={}", data_dir.display()))
            .arg(format!("--listen-client-urls={endpoint}"))
            .arg(format!("--advertise-client-urls={endpoint}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster={initial_cluster}"));
        let mut access = EtcdAccess::plain(std::slice::from_ref(&endpoint), SECURE_PREFIX);
        if let Some(files) = tls {
            command
                .arg(format!("--cert-file={}", files.server.0.display()))
                .arg(format!("--key-file={}", files.server.1.display()))
                .arg(format!("--trusted-ca-file={}", files.ca.display()))
                .arg("--client-cert-auth");
            access.ca_file = Some(files.ca.clone());
            access.cert_file = Some(files.client.0.clone());
            access.key_file = Some(files.client.1.clone());
        }
        let child = command
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {binary}; scripts/setup.sh installs etcd"))?;
        Ok(EtcdProcess { child, data_dir, endpoint, access })
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        loop {
            let probe = async {
                let mut client = self.access.connect().await?;
                anyhow::Ok(client.status().await?)
            };
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(1), probe).await {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(20) {
                let log = std::fs::read_to_string(self.data_dir.with_extension("log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(10).collect();
                anyhow::bail!(
                    "etcd did not start in 20 s; its log ends:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the member with SIGKILL.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
        for extension in ["log", "password"] {
            let _ = std::fs::remove_file(self.data_dir.with_extension(extension));
        }
    }
}

fn two_free_ports() -> anyhow::Result<(u16, u16)> {
    // Both listeners stay open until both ports are known, so the two differ.
    let client = std::net::TcpListener::bind("127.0.0.1:0")?;
    let peer = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok((client.local_addr()?.port(), peer.local_addr()?.port()))
}

fn random_password() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).expect("reading /dev/urandom");
    hex::encode(bytes)
}

/// Creates root (with a password nobody keeps) and the maas user with a
/// role limited to the maas prefix, then turns authentication on.
async fn enable_auth(access: &EtcdAccess, password: &str) -> anyhow::Result<()> {
    use etcd_client::Permission;
    let mut client = access.connect().await?;
    client.user_add("root", random_password(), None).await?;
    client.user_grant_role("root", "root").await?;
    client.role_add("maas").await?;
    client.role_grant_permission("maas", Permission::read_write(SECURE_PREFIX).with_prefix()).await?;
    client.user_add(SECURE_USER, password, None).await?;
    client.user_grant_role(SECURE_USER, "maas").await?;
    client.auth_enable().await?;
    Ok(())
}
