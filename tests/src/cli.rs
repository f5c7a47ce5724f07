//! Running the `maas` command line against a test cluster.

use std::process::Command;

use crate::cluster::binary;
use crate::Cluster;

/// What a `maas` run printed and whether it succeeded.
pub struct Run {
    /// Exit status was 0.
    pub ok: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `maas --url <cluster> --token <token> <args>`.
pub fn maas(cluster: &Cluster, token: &str, args: &[&str]) -> Run {
    let output = Command::new(binary("maas"))
        .arg("--url")
        .arg(cluster.url(""))
        .arg("--token")
        .arg(token)
        .args(args)
        .output()
        .expect("running maas");
    Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The output of a run that must succeed.
pub fn ok(run: Run) -> String {
    assert!(run.ok, "maas failed: {}", run.stderr);
    run.stdout
}
