//! `maas-certs`: writes a development CA and certificates for a local cluster.

use std::path::PathBuf;

use clap::Parser;
use maas_transport::certs::{default_ca_dir, generate, CertRole};

/// Creates a development CA in CA_DIR (once) and, in DIR, a certificate and
/// key of ROLE for each NAME, valid for that name, localhost, 127.0.0.1 and
/// ::1, with a copy of the CA certificate.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Folder for ca.pem and NAME.pem / NAME.key.
    #[arg(long, env = "MAAS_CERT_DIR")]
    dir: PathBuf,
    /// Folder for the CA's certificate and key (default: `ca` beside DIR).
    #[arg(long, env = "MAAS_CA_DIR")]
    ca_dir: Option<PathBuf>,
    /// coordinator (a TLS client of nodes), node (a TLS server to
    /// coordinators), front (the HTTPS and gRPC fronts), etcd (an etcd
    /// member's client port) or etcd-client (coordinators and nodes
    /// dialling etcd).
    #[arg(long)]
    role: CertRole,
    /// Names to issue certificates for, e.g. node-0 node-1.
    #[arg(required = true)]
    names: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let ca_dir = args.ca_dir.clone().unwrap_or_else(|| default_ca_dir(&args.dir));
    generate(&args.dir, &ca_dir, args.role, &args.names)?;
    println!("{:?} certificates for {} written to {}", args.role, args.names.join(", "), args.dir.display());
    Ok(())
}
