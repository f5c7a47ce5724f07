//! TLS to external engines. An `https://` engine URL is verified against
//! the system's trusted roots and, when the coordinator names one
//! (`--engine-ca`), the operator's own CA, so an engine behind a private
//! certificate needs no change to the machine's trust store. The
//! connection refuses any certificate neither vouches for.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// The client configuration for engine connections.
pub fn engine_tls(extra_ca: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::warn!(%error, "a system trust root could not be read for engine connections");
    }
    let (_added, ignored) = roots.add_parsable_certificates(native.certs);
    if ignored > 0 {
        tracing::warn!(ignored, "system trust roots that could not be parsed were left out for engine connections");
    }
    if let Some(path) = extra_ca {
        let pem = std::fs::read(path).map_err(|e| format!("reading the engine CA {}: {e}", path.display()))?;
        let mut count = 0;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| format!("parsing the engine CA {}: {e}", path.display()))?;
            roots.add(cert).map_err(|e| format!("the engine CA {} cannot be a trust anchor: {e}", path.display()))?;
            count += 1;
        }
        if count == 0 {
            return Err(format!("the engine CA {} holds no certificate", path.display()));
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up for engines: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_without_certificates_is_refused_by_name() {
        let dir = std::env::temp_dir().join(format!("maas-engine-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, b"not a certificate\n").unwrap();
        let error = engine_tls(Some(&empty)).unwrap_err();
        assert!(error.contains("holds no certificate") && error.contains("empty.pem"), "{error}");
        let missing = engine_tls(Some(&dir.join("missing.pem"))).unwrap_err();
        assert!(missing.contains("reading the engine CA"), "{missing}");
        assert!(engine_tls(None).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
