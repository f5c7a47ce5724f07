//! `maas-certs`: writes a development CA and certificates for a local cluster.

use std::path::PathBuf;

use clap::Parser;

/// Creates a development CA in DIR (once) and a certificate and key for each
/// NAME, valid for that name, localhost, 127.0.0.1 and ::1.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Folder for ca.pem, ca.key and NAME.pem / NAME.key.
    #[arg(long, env = "MAAS_CERT_DIR")]
    dir: PathBuf,
    /// Names to issue certificates for, e.g. coordinator node-0 node-1.
    #[arg(required = true)]
    names: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    maas_transport::certs::generate(&args.dir, &args.names)?;
    println!("certificates for {} written to {}", args.names.join(", "), args.dir.display());
    Ok(())
}
