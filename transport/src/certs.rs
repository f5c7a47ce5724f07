//! A development certificate authority and the certificates it signs, each
//! for one role.
//!
//! `maas-certs --dir DIR --role node node-0 node-1` writes `<name>.pem` and
//! `<name>.key` for each name, and `ca.pem` beside them; the CA's key stays
//! in its own folder (`--ca-dir`, by default `ca` next to DIR), created once
//! and reused after, so a host that only runs a node never holds it.
//!
//! Roles are extended key usages, which rustls checks on every handshake:
//!
//! | role | key usage | used by |
//! |---|---|---|
//! | `coordinator` | TLS client | a coordinator dialling nodes |
//! | `node` | TLS server | a node accepting coordinators |
//! | `front` | TLS server | a coordinator's HTTPS and gRPC fronts |
//! | `etcd` | TLS server | an etcd member's client port |
//! | `etcd-client` | TLS client | a coordinator or node dialling etcd |
//!
//! So a node certificate cannot act as a coordinator (a node refuses it as
//! a client), and a coordinator's cannot pose as a node. Every leaf is valid
//! for its own name, `localhost`, `127.0.0.1` and `::1`. Real deployments
//! use certificates from their own CA with the same usages and layout.

use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// What a certificate may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertRole {
    /// A coordinator: client of nodes.
    Coordinator,
    /// A node: server to coordinators.
    Node,
    /// A coordinator's HTTPS or gRPC front: server to clients.
    Front,
    /// An etcd member: server to coordinators and nodes.
    Etcd,
    /// A coordinator or node: client of etcd.
    EtcdClient,
}

impl CertRole {
    fn as_str(self) -> &'static str {
        match self {
            CertRole::Coordinator => "coordinator",
            CertRole::Node => "node",
            CertRole::Front => "front",
            CertRole::Etcd => "etcd",
            CertRole::EtcdClient => "etcd-client",
        }
    }

    fn usages(self) -> Vec<ExtendedKeyUsagePurpose> {
        match self {
            CertRole::Coordinator | CertRole::EtcdClient => vec![ExtendedKeyUsagePurpose::ClientAuth],
            CertRole::Node | CertRole::Front | CertRole::Etcd => vec![ExtendedKeyUsagePurpose::ServerAuth],
        }
    }
}

impl FromStr for CertRole {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<CertRole> {
        [CertRole::Coordinator, CertRole::Node, CertRole::Front, CertRole::Etcd, CertRole::EtcdClient]
            .into_iter()
            .find(|role| role.as_str() == text)
            .with_context(|| {
                format!("unknown certificate role '{text}': use coordinator, node, front, etcd or etcd-client")
            })
    }
}

/// Path of the CA certificate in a folder of certificates (or the CA's own).
pub fn ca_cert_path(dir: &Path) -> PathBuf {
    dir.join("ca.pem")
}

/// The CA's folder when none is given: `ca` beside the certificates'.
pub fn default_ca_dir(dir: &Path) -> PathBuf {
    dir.parent().unwrap_or(Path::new(".")).join("ca")
}

/// Paths of the certificate and key of `name` in `dir`.
pub fn leaf_paths(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")))
}

/// Creates the CA in `ca_dir` unless it exists, then a certificate of
/// `role` for each name in `dir`, with a copy of the CA certificate.
pub fn generate(dir: &Path, ca_dir: &Path, role: CertRole, names: &[String]) -> Result<()> {
    for path in [dir, ca_dir] {
        fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
    }
    if dir.canonicalize()? == ca_dir.canonicalize()? {
        bail!("the CA folder must not be the certificates' folder: its key would sit beside the leaf keys");
    }
    let (ca_cert, ca_key) = (ca_cert_path(ca_dir), ca_dir.join("ca.key"));
    let (leaf_ca_cert, old_key) = (ca_cert_path(dir), dir.join("ca.key"));
    if !ca_key.exists() && old_key.exists() && leaf_ca_cert.exists() {
        // A folder from before the CA had its own: move its key out.
        fs::copy(&leaf_ca_cert, &ca_cert)?;
        fs::rename(&old_key, &ca_key).with_context(|| format!("moving the CA key to {}", ca_dir.display()))?;
    }
    if !ca_cert.exists() || !ca_key.exists() {
        write_new_ca(&ca_cert, &ca_key)?;
    }
    fs::copy(&ca_cert, &leaf_ca_cert).with_context(|| format!("copying the CA certificate to {}", dir.display()))?;
    // The issuer is rebuilt from the same parameters the CA was made with,
    // so only its key needs reading back.
    let ca_key = KeyPair::from_pem(&read(&ca_key)?).context("parsing the CA key")?;
    let issuer = Issuer::new(ca_params()?, ca_key);
    for name in names {
        let (cert_path, key_path) = leaf_paths(dir, name);
        let key = KeyPair::generate().context("generating a key")?;
        let mut params = CertificateParams::new(vec![
            name.clone(),
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ])
        .with_context(|| format!("'{name}' is not a valid certificate name"))?;
        params.distinguished_name = distinguished_name(name);
        params.distinguished_name.push(DnType::OrganizationalUnitName, role.as_str());
        params.extended_key_usages = role.usages();
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = params.signed_by(&key, &issuer).context("signing a certificate")?;
        write_private(&key_path, &key.serialize_pem())?;
        fs::write(&cert_path, cert.pem()).with_context(|| format!("writing {}", cert_path.display()))?;
    }
    Ok(())
}

fn write_new_ca(cert_path: &Path, key_path: &Path) -> Result<()> {
    let key = KeyPair::generate().context("generating the CA key")?;
    let cert = ca_params()?.self_signed(&key).context("self-signing the CA")?;
    write_private(key_path, &key.serialize_pem())?;
    fs::write(cert_path, cert.pem()).with_context(|| format!("writing {}", cert_path.display()))
}

fn ca_params() -> Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = distinguished_name("maas development CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params)
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "maas");
    dn
}

fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_key_stays_in_its_own_folder_and_leaves_carry_their_role() {
        let root = std::env::temp_dir().join(format!("maas-certs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let (certs, ca) = (root.join("certs"), root.join("ca"));
        assert_eq!(default_ca_dir(&certs), ca);
        generate(&certs, &ca, CertRole::Node, &["node-0".into()]).unwrap();
        generate(&certs, &ca, CertRole::Coordinator, &["coordinator".into()]).unwrap();
        assert!(ca.join("ca.key").exists() && !certs.join("ca.key").exists());
        assert_eq!(fs::read(ca.join("ca.pem")).unwrap(), fs::read(certs.join("ca.pem")).unwrap());
        assert!(generate(&certs, &certs, CertRole::Node, &["x".into()]).is_err(), "the CA may not share the folder");
        // The role's name in the subject and its usage's OID (id-kp 1 is
        // serverAuth, 2 clientAuth) in the DER of each certificate.
        let id_kp = [0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03];
        for (name, role, usage, other) in [("node-0", "node", 1u8, 2u8), ("coordinator", "coordinator", 2, 1)] {
            use rustls::pki_types::pem::PemObject;
            let der = rustls::pki_types::CertificateDer::from_pem_file(certs.join(format!("{name}.pem"))).unwrap();
            let contains = |needle: &[u8]| der.windows(needle.len()).any(|w| w == needle);
            assert!(contains(role.as_bytes()), "{name} names its role");
            assert!(contains(&[&id_kp[..], &[usage]].concat()), "{name} has its usage");
            assert!(!contains(&[&id_kp[..], &[other]].concat()), "{name} has only its usage");
        }
        fs::remove_dir_all(&root).unwrap();
    }
}
