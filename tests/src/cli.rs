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

/// Runs `maas --url <cluster> <args>` with `token` in `MAAS_ADMIN_TOKEN`.
pub fn maas(cluster: &Cluster, token: &str, args: &[&str]) -> Run {
    let url = cluster.url("");
    let mut all = vec!["--url", url.as_str()];
    all.extend_from_slice(args);
    binary_output("maas", &[("MAAS_ADMIN_TOKEN", token)], &all)
}

/// Runs the workspace binary `name` with `env` and `args`.
pub fn binary_output(name: &str, env: &[(&str, &str)], args: &[&str]) -> Run {
    let output = Command::new(binary(name))
        .envs(env.iter().copied())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {name}: {e}"));
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
