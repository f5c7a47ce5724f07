//! A TLS acceptor that admits no one, for ractor_cluster's own listener.
//!
//! ractor_cluster's `NodeServer` always opens a TCP listener, and its only
//! guard is the cookie, which every maas process shares. maas carries its
//! sessions over QUIC instead, where mutual TLS against the cluster CA has
//! already decided who the peer is, so this listener must accept nobody.
//! It is handed a TLS acceptor that demands a client certificate signed by
//! a key made at start-up and never stored: no process, inside the cluster
//! or out, can present one, so every TCP connection ends in the TLS
//! handshake, before any byte of the cluster protocol is read.

use std::sync::Arc;

use anyhow::{Context, Result};
use rcgen::{CertificateParams, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use tokio_rustls::TlsAcceptor;

/// An acceptor whose client-certificate check no peer can pass.
pub fn acceptor() -> Result<TlsAcceptor> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    // One throwaway key: it signs the server's certificate, which is also
    // the only root client certificates may chain to. The key is dropped at
    // the end of this function.
    let key = KeyPair::generate().context("generating the sealed listener's key")?;
    let cert = CertificateParams::new(vec!["maas-sealed-listener".to_string()])
        .context("sealed listener certificate parameters")?
        .self_signed(&key)
        .context("signing the sealed listener certificate")?;
    let cert_der: CertificateDer<'static> = cert.der().clone();
    let mut roots = RootCertStore::empty();
    roots.add(cert_der.clone()).context("adding the sealed listener root")?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .context("building the sealed listener's client verifier")?;
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS 1.3")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert_der], key_der)
        .context("sealed listener certificate and key")?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client holding a certificate of its own (here: one from another
    /// throwaway key) is refused in the handshake; so is one with none.
    #[tokio::test]
    async fn no_client_completes_the_handshake() {
        let acceptor = acceptor().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut results = Vec::new();
            for _ in 0..2 {
                let (stream, _) = listener.accept().await.unwrap();
                results.push(acceptor.accept(stream).await.is_ok());
            }
            results
        });
        for with_cert in [false, true] {
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let builder = rustls::ClientConfig::builder_with_provider(provider)
                .with_protocol_versions(&[&rustls::version::TLS13])
                .unwrap()
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyServer));
            let config = if with_cert {
                let key = KeyPair::generate().unwrap();
                let cert = CertificateParams::new(vec!["intruder".to_string()]).unwrap().self_signed(&key).unwrap();
                let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
                builder.with_client_auth_cert(vec![cert.der().clone()], key_der).unwrap()
            } else {
                builder.with_no_client_auth()
            };
            let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let name = rustls::pki_types::ServerName::try_from("maas-sealed-listener").unwrap();
            // TLS 1.3 clients may finish before the server's verdict; the
            // server's side is what counts.
            let _ = connector.connect(name, tcp).await;
        }
        assert_eq!(server.await.unwrap(), vec![false, false], "the listener admitted a client");
    }

    #[derive(Debug)]
    struct AcceptAnyServer;

    impl rustls::client::danger::ServerCertVerifier for AcceptAnyServer {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }

        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms.supported_schemes()
        }
    }
}
