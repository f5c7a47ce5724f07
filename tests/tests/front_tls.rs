//! The HTTP and gRPC fronts over TLS, across real processes: tritonclient
//! over HTTPS and gRPC with TLS gets PyTorch's answers, the `maas` CLI
//! speaks https with a CA file (and refuses an untrusted server without
//! one), and the TLS port answers no plaintext request.

use std::process::Command;

use maas_tests::cli::binary_output;
use maas_tests::cluster::{models_dir, workspace_root, ADMIN_TOKEN};
use maas_tests::{Cluster, NodeSpec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_speak_tls_to_both_fronts() {
    let cluster =
        Cluster::builder().nodes(vec![NodeSpec::new("node-0", &["mlp"])]).with_front_tls().start().await.unwrap();
    let ca = cluster.certs.join("ca.pem");
    assert!(cluster.url("").starts_with("https://"));

    let output = Command::new(workspace_root().join(".venv/bin/python"))
        .arg(workspace_root().join("tests/python/standard_clients.py"))
        .arg("triton-tls")
        .arg(cluster.http_addr.to_string())
        .arg(cluster.grpc_addr.to_string())
        .arg(models_dir().join("mlp/2/reference.json"))
        .arg(&ca)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "tritonclient over TLS failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    let url = cluster.url("");
    let listed = binary_output(
        "maas",
        &[("MAAS_ADMIN_TOKEN", ADMIN_TOKEN)],
        &["--url", &url, "--ca-file", ca.to_str().unwrap(), "models"],
    );
    assert!(listed.ok, "maas over https: {}", listed.stderr);
    assert!(listed.stdout.contains("MODEL"), "{}", listed.stdout);
    let untrusted = binary_output("maas", &[("MAAS_ADMIN_TOKEN", ADMIN_TOKEN)], &["--url", &url, "models"]);
    assert!(!untrusted.ok, "the CLI trusted a certificate of an unknown CA");

    // The port speaks TLS only.
    let plain = reqwest::Client::new().get(format!("http://{}/v2/health/live", cluster.http_addr)).send().await;
    assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true), "a plaintext request was answered");
}
