//! A development certificate authority and the certificates it signs.
//!
//! `maas-certs --dir DIR coordinator node-0 node-1` writes `ca.pem` and
//! `ca.key` (created once, reused after) and `<name>.pem` / `<name>.key` for
//! each name. Every leaf certificate is valid for its own name, `localhost`,
//! `127.0.0.1` and `::1`, as a server and as a client. Real deployments use
//! certificates from their own CA with the same layout.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Paths of the CA certificate and key in `dir`.
pub fn ca_paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("ca.pem"), dir.join("ca.key"))
}

/// Paths of the certificate and key of `name` in `dir`.
pub fn leaf_paths(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")))
}

/// Creates the CA in `dir` unless it exists, then a certificate for each name.
pub fn generate(dir: &Path, names: &[String]) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (ca_cert_path, ca_key_path) = ca_paths(dir);
    if !ca_cert_path.exists() || !ca_key_path.exists() {
        write_new_ca(&ca_cert_path, &ca_key_path)?;
    }
    // The issuer is rebuilt from the same parameters the CA was made with,
    // so only its key needs reading back.
    let ca_key = KeyPair::from_pem(&read(&ca_key_path)?).context("parsing the CA key")?;
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
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
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
