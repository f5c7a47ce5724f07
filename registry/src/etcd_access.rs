//! How a process reaches etcd: its endpoints and key prefix, TLS (a CA to
//! trust, optionally a client certificate) and a user name and password.
//!
//! The same flags serve coordinators and nodes. The password never appears
//! on a command line, where other users could read it in the process list:
//! it comes from `MAAS_ETCD_PASSWORD` or from `--etcd-password-file`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};

/// The environment variable holding the etcd password.
pub const PASSWORD_ENV: &str = "MAAS_ETCD_PASSWORD";

/// Where etcd is and how to authenticate to it.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct EtcdAccess {
    /// etcd endpoints (e.g. `http://127.0.0.1:2379`, or `https://…` with
    /// TLS). Without them a coordinator keeps its registry in a file in its
    /// data folder and a node serves only the coordinators named to it.
    #[arg(long = "etcd-endpoints", env = "MAAS_ETCD_ENDPOINTS", value_delimiter = ',')]
    pub endpoints: Vec<String>,

    /// Key prefix of everything maas keeps in etcd.
    #[arg(long = "etcd-prefix", env = "MAAS_ETCD_PREFIX", default_value = "/maas/v1/")]
    pub prefix: String,

    /// CA certificate that signed etcd's server certificate; turns on TLS
    /// to etcd.
    #[arg(long = "etcd-ca-file", env = "MAAS_ETCD_CA_FILE")]
    pub ca_file: Option<PathBuf>,

    /// Client certificate for etcd's `--client-cert-auth` (with `--etcd-key-file`).
    #[arg(long = "etcd-cert-file", env = "MAAS_ETCD_CERT_FILE", requires = "key_file")]
    pub cert_file: Option<PathBuf>,

    /// Key of the client certificate.
    #[arg(long = "etcd-key-file", env = "MAAS_ETCD_KEY_FILE", requires = "cert_file")]
    pub key_file: Option<PathBuf>,

    /// etcd user, when etcd has authentication on; the password comes from
    /// `MAAS_ETCD_PASSWORD` or `--etcd-password-file`.
    #[arg(long = "etcd-user", env = "MAAS_ETCD_USER")]
    pub user: Option<String>,

    /// File holding the etcd user's password.
    #[arg(long = "etcd-password-file", env = "MAAS_ETCD_PASSWORD_FILE", requires = "user")]
    pub password_file: Option<PathBuf>,
}

impl EtcdAccess {
    /// Plain access to `endpoints` under `prefix`: no TLS, no user.
    pub fn plain(endpoints: &[String], prefix: &str) -> EtcdAccess {
        EtcdAccess { endpoints: endpoints.to_vec(), prefix: prefix.to_string(), ..EtcdAccess::default() }
    }

    /// Whether etcd is configured at all.
    pub fn is_configured(&self) -> bool {
        !self.endpoints.is_empty()
    }

    /// Connects, authenticating with the configured user (the client then
    /// renews its token when etcd lets it expire).
    pub async fn connect(&self) -> anyhow::Result<Client> {
        let options = self.options()?;
        Client::connect(&self.endpoints, Some(options)).await.with_context(|| {
            let user = self.user.as_deref().map(|u| format!(" as user '{u}'")).unwrap_or_default();
            format!("connecting to etcd at {}{user}", self.endpoints.join(","))
        })
    }

    fn options(&self) -> anyhow::Result<ConnectOptions> {
        let mut options =
            ConnectOptions::new().with_connect_timeout(std::time::Duration::from_secs(5)).with_auto_token_refresh(true);
        if let Some(user) = &self.user {
            options = options.with_user(user.clone(), self.password()?);
        }
        if let Some(tls) = self.tls()? {
            options = options.with_tls(tls);
        }
        Ok(options)
    }

    fn password(&self) -> anyhow::Result<String> {
        if let Some(path) = &self.password_file {
            let text = read(path)?;
            return Ok(text.trim_end_matches(['\r', '\n']).to_string());
        }
        std::env::var(PASSWORD_ENV)
            .with_context(|| format!("--etcd-user needs a password: set {PASSWORD_ENV} or --etcd-password-file"))
    }

    fn tls(&self) -> anyhow::Result<Option<TlsOptions>> {
        let https = self.endpoints.iter().any(|e| e.starts_with("https://"));
        if self.ca_file.is_none() && self.cert_file.is_none() && !https {
            return Ok(None);
        }
        let mut tls = TlsOptions::new();
        if let Some(ca) = &self.ca_file {
            tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
        }
        if let (Some(cert), Some(key)) = (&self.cert_file, &self.key_file) {
            tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        Ok(Some(tls))
    }
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}
