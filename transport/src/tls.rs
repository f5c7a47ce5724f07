//! quinn endpoints with mutual TLS 1.3 against the cluster CA.
//!
//! A node's server endpoint refuses any client whose certificate is not
//! signed by the cluster CA for the coordinator role (TLS client usage, see
//! `certs`); a coordinator's client endpoint presents its own certificate
//! and checks the node's against the same CA, the node role (TLS server
//! usage) and the node's name.
//! Note: a client's `connect` can resolve before the server has refused its
//! certificate, so a link counts as up only once a first exchange succeeds.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{IdleTimeout, VarInt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

use crate::ALPN;

/// The PEM files a process needs: the cluster CA and its own certificate and key.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The cluster CA certificate.
    pub ca_cert: PathBuf,
    /// This process's certificate, signed by the CA.
    pub cert: PathBuf,
    /// This process's private key.
    pub key: PathBuf,
}

impl TlsFiles {
    /// The files for `name` in a folder written by `maas-certs`.
    pub fn in_dir(dir: &Path, name: &str) -> TlsFiles {
        let ca_cert = crate::certs::ca_cert_path(dir);
        let (cert, key) = crate::certs::leaf_paths(dir, name);
        TlsFiles { ca_cert, cert, key }
    }
}

/// QUIC settings tuned for a cluster on a LAN. The keep-alive and idle
/// timeout are the failure detector: a peer silent for `idle_timeout` is gone.
#[derive(Debug, Clone)]
pub struct TransportSettings {
    /// How often an idle connection sends a keep-alive.
    pub keep_alive: Duration,
    /// How long a silent connection lives.
    pub idle_timeout: Duration,
    /// Concurrent bidirectional streams a peer may open (batches in flight).
    pub max_streams: u32,
    /// Kernel send and receive buffer asked for the UDP socket (Linux caps
    /// it at `net.core.{r,w}mem_max`). A batch of image rows arrives as a
    /// burst of datagrams; the default buffer of ~200 KiB overflows, and
    /// every dropped datagram costs a retransmission and a smaller
    /// congestion window.
    pub socket_buffer_bytes: usize,
}

impl Default for TransportSettings {
    fn default() -> Self {
        TransportSettings {
            keep_alive: Duration::from_millis(250),
            idle_timeout: Duration::from_millis(1500),
            max_streams: 1024,
            socket_buffer_bytes: 8 << 20,
        }
    }
}

impl TransportSettings {
    fn transport_config(&self) -> Result<quinn::TransportConfig> {
        let mut config = quinn::TransportConfig::default();
        config
            .keep_alive_interval(Some(self.keep_alive))
            .max_idle_timeout(Some(IdleTimeout::try_from(self.idle_timeout).context("idle timeout")?))
            .max_concurrent_bidi_streams(VarInt::from_u32(self.max_streams))
            .max_concurrent_uni_streams(VarInt::from_u32(0))
            .initial_rtt(Duration::from_millis(5))
            .stream_receive_window(VarInt::from_u32(64 << 20))
            .receive_window(VarInt::from_u32(512 << 20))
            .send_window(512 << 20);
        Ok(config)
    }

    /// Asks for larger socket buffers; a smaller grant is logged, not fatal.
    fn size_socket_buffers(&self, socket: &std::net::UdpSocket) {
        let socket = socket2::SockRef::from(socket);
        let _ = socket.set_recv_buffer_size(self.socket_buffer_bytes);
        let _ = socket.set_send_buffer_size(self.socket_buffer_bytes);
        let granted = (socket.recv_buffer_size().unwrap_or(0), socket.send_buffer_size().unwrap_or(0));
        tracing::debug!(asked = self.socket_buffer_bytes, receive = granted.0, send = granted.1, "UDP socket buffers");
    }

    fn endpoint(&self, addr: SocketAddr, server: Option<quinn::ServerConfig>) -> Result<quinn::Endpoint> {
        let socket = std::net::UdpSocket::bind(addr).with_context(|| format!("binding UDP on {addr}"))?;
        self.size_socket_buffers(&socket);
        let runtime = quinn::default_runtime().context("no async runtime for QUIC")?;
        quinn::Endpoint::new(quinn::EndpointConfig::default(), server, socket, runtime)
            .with_context(|| format!("starting QUIC on {addr}"))
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("opening certificate {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing certificate {}", path.display()))?;
    if certs.is_empty() {
        return Err(anyhow!("no certificate in {}", path.display()));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).with_context(|| format!("reading private key {}", path.display()))
}

fn roots(path: &Path) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert).with_context(|| format!("adding CA {}", path.display()))?;
    }
    Ok(roots)
}

/// A server endpoint bound to `addr` that admits only clients with a
/// certificate from the cluster CA.
pub fn server_endpoint(addr: SocketAddr, files: &TlsFiles, settings: &TransportSettings) -> Result<quinn::Endpoint> {
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots(&files.ca_cert)?), provider())
        .build()
        .context("building the client certificate verifier")?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS 1.3")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(load_certs(&files.cert)?, load_key(&files.key)?)
        .context("server certificate and key")?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.max_early_data_size = 0;
    let crypto = QuicServerConfig::try_from(tls).context("QUIC server crypto")?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(Arc::new(settings.transport_config()?));
    settings.endpoint(addr, Some(config))
}

/// A client endpoint presenting this process's certificate and trusting
/// only the cluster CA.
pub fn client_endpoint(files: &TlsFiles, settings: &TransportSettings) -> Result<quinn::Endpoint> {
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS 1.3")?
        .with_root_certificates(roots(&files.ca_cert)?)
        .with_client_auth_cert(load_certs(&files.cert)?, load_key(&files.key)?)
        .context("client certificate and key")?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = QuicClientConfig::try_from(tls).context("QUIC client crypto")?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(Arc::new(settings.transport_config()?));
    let mut endpoint = settings.endpoint("0.0.0.0:0".parse().expect("valid address"), None)?;
    endpoint.set_default_client_config(config);
    Ok(endpoint)
}
