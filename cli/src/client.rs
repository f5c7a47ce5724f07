//! Calls to a coordinator's management API, with errors that say what to do.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use maas_api::ArtifactStored;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tokio::io::AsyncReadExt;

/// A TLS client configuration that trusts the CA certificates in `path`.
fn tls_trusting(path: &Path) -> Result<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let pem = std::fs::read(path).with_context(|| format!("reading the CA file {}", path.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.with_context(|| format!("parsing {}", path.display()))?)?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A coordinator and the admin token to use with it.
pub struct Client {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl Client {
    /// The coordinator's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The token requests carry, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// A client for `url`, trusting `ca_file` (PEM) for https when given,
    /// that gives up on a connection or an answer silent for `timeout`.
    pub fn new(url: &str, token: Option<String>, ca_file: Option<&Path>, timeout: Duration) -> Result<Client> {
        // Idle connections are dropped before the coordinator's keep-alive
        // (5 s) closes them, so a call after a pause never meets a
        // connection closed under it.
        let mut builder = reqwest::Client::builder()
            .connect_timeout(timeout)
            .read_timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(2));
        if let Some(ca_file) = ca_file {
            builder = builder.use_preconfigured_tls(tls_trusting(ca_file)?);
        }
        let http = builder.build().context("building the HTTP client")?;
        Ok(Client { http, url: url.trim_end_matches('/').to_string(), token })
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        request
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value> {
        let response = request.send().await.map_err(|e| {
            anyhow!("no coordinator answered at {} ({e}); start one with scripts/cluster.sh up or pass --url", self.url)
        })?;
        let status = response.status();
        let text = response.text().await?;
        let body: Value =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        if status.is_success() {
            return Ok(body);
        }
        let message = body["error"].as_str().map(str::to_string).unwrap_or_else(|| body.to_string());
        match status {
            StatusCode::UNAUTHORIZED => bail!(
                "{message}\nthe token was refused: set MAAS_ADMIN_TOKEN, or point --token-file at the coordinator's \
                 admin.token (or a file holding an API key)"
            ),
            StatusCode::CONFLICT => {
                bail!("{message}\nsomeone else changed the model at the same time; run the command again")
            }
            _ => bail!("{message} (HTTP {})", status.as_u16()),
        }
    }

    /// GET a JSON document.
    pub async fn get(&self, path: &str) -> Result<Value> {
        self.send(self.request(Method::GET, path)).await
    }

    /// GET a document of the API's type `T`.
    pub async fn get_as<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        typed(path, self.get(path).await?)
    }

    /// Sends `body` as JSON with `method` and reads an answer of type `T`.
    pub async fn send_as<T: DeserializeOwned>(&self, method: Method, path: &str, body: &impl Serialize) -> Result<T> {
        typed(path, self.send(self.request(method, path).json(body)).await?)
    }

    /// Sends a request without a body and reads an answer of type `T`.
    pub async fn send_empty_as<T: DeserializeOwned>(&self, method: Method, path: &str) -> Result<T> {
        typed(path, self.send_empty(method, path).await?)
    }

    /// Sends a request without a body.
    pub async fn send_empty(&self, method: Method, path: &str) -> Result<Value> {
        self.send(self.request(method, path)).await
    }

    /// Streams a file to `/v1/artifacts` with a progress bar; returns the answer.
    pub async fn upload(&self, file: &Path, show_progress: bool) -> Result<ArtifactStored> {
        let size = tokio::fs::metadata(file).await.with_context(|| format!("reading {}", file.display()))?.len();
        let bar = if show_progress { ProgressBar::new(size) } else { ProgressBar::hidden() };
        bar.set_style(
            ProgressStyle::with_template("uploading {bytes}/{total_bytes} [{bar:30}] {bytes_per_sec}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        let reader = tokio::fs::File::open(file).await?;
        let progress = bar.clone();
        let stream = futures_util::stream::unfold(Some(reader), move |state| {
            let progress = progress.clone();
            async move {
                let mut reader = state?;
                let mut buffer = vec![0u8; 256 << 10];
                match reader.read(&mut buffer).await {
                    Ok(0) => None,
                    Ok(read) => {
                        buffer.truncate(read);
                        progress.inc(read as u64);
                        Some((Ok(buffer), Some(reader)))
                    }
                    Err(error) => Some((Err(error), None)),
                }
            }
        });
        let body = reqwest::Body::wrap_stream(stream);
        let answer =
            self.send(self.request(Method::PUT, "/v1/artifacts").header("content-length", size).body(body)).await;
        bar.finish_and_clear();
        typed("/v1/artifacts", answer?)
    }
}

/// Reads an answer as the API type the route returns.
fn typed<T: DeserializeOwned>(path: &str, body: Value) -> Result<T> {
    serde_json::from_value(body).with_context(|| {
        format!("the coordinator's answer to {path} is not what this maas expects; are both the same version?")
    })
}
