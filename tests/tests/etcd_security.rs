//! A cluster on an etcd that speaks only TLS, wants a client certificate
//! and has authentication on, as production runs it: coordinators and nodes
//! log in and serve; a client without the password, the certificate or TLS
//! is refused, and the maas user cannot touch keys outside its prefix.

use std::process::Command;
use std::time::Duration;

use maas_registry::testsuite::SECURE_PREFIX;
use maas_registry::EtcdAccess;
use maas_tests::admin::{example_artifact, example_config, publish, upload, wait_ready};
use maas_tests::cluster::{binary, free_tcp_port, free_udp_port, make_certs, run_until_exit};
use maas_tests::requests::{assert_matches, json_body, post_json};
use maas_tests::{Cluster, NodeSpec, Reference};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_serves_from_an_etcd_with_tls_and_authentication() {
    let cluster = Cluster::builder().nodes(vec![NodeSpec::bare("node-0")]).with_secure_etcd().start().await.unwrap();
    assert!(cluster.etcd[0].endpoint.starts_with("https://"), "{}", cluster.etcd[0].endpoint);

    // Registry, membership, election and placement all run on that etcd.
    let sha = upload(&cluster, example_artifact("mlp", 1)).await.unwrap();
    publish(&cluster, "guarded", &example_config("mlp", "guarded"), &sha).await.unwrap().ok().unwrap();
    wait_ready(&cluster, "guarded").await.unwrap();
    let rows = Reference::load("mlp", 1).rows(3, 2);
    let url = cluster.url("/v2/models/guarded/infer");
    let answer = post_json(&cluster.client, &url, &json_body(&rows.inputs, None)).await.unwrap().answer().unwrap();
    assert_matches(&answer.outputs, &rows.outputs);

    let access = cluster.etcd[0].access.clone();
    let mut maas_user = access.connect().await.unwrap();
    let record = maas_user.get(format!("{SECURE_PREFIX}models/guarded"), None).await.unwrap();
    assert_eq!(record.kvs().len(), 1, "the registry record is in the secure etcd");
    let outside = maas_user.put("/elsewhere/key", "value", None).await.unwrap_err().to_string();
    assert!(outside.contains("permission denied"), "the maas user wrote outside its prefix: {outside}");

    let refusals = [
        ("no user", EtcdAccess { user: None, password_file: None, ..access.clone() }),
        ("a wrong password", with_password(&access, "not-the-password")),
        ("no client certificate", EtcdAccess { cert_file: None, key_file: None, ..access.clone() }),
        ("plain HTTP", EtcdAccess { endpoints: vec![access.endpoints[0].replace("https", "http")], ..access.clone() }),
        ("no CA", EtcdAccess { ca_file: None, ..access.clone() }),
    ];
    for (what, attempt) in refusals {
        assert!(!can_read_registry(&attempt).await, "a client with {what} read the registry");
    }

    // A node given a wrong password stops at once and says why.
    make_certs(&cluster.certs, &["node-9"]).unwrap();
    let wrong = with_password(&access, "not-the-password");
    let mut args = cluster.etcd_args(access.endpoints[0].clone());
    let position = args.iter().position(|a| a == "--etcd-password-file").unwrap();
    args[position + 1] = wrong.password_file.as_ref().unwrap().display().to_string();
    let output = run_node_until_exit("node-9", &cluster, &args);
    assert!(!output.0, "a node with a wrong etcd password kept running");
    assert!(output.1.contains("connecting to etcd") && output.1.contains("user 'maas'"), "{}", output.1);
}

fn with_password(access: &EtcdAccess, password: &str) -> EtcdAccess {
    let path = std::env::temp_dir().join(format!("maas-etcd-wrong-password-{}", std::process::id()));
    std::fs::write(&path, password).unwrap();
    EtcdAccess { password_file: Some(path), ..access.clone() }
}

async fn can_read_registry(access: &EtcdAccess) -> bool {
    let attempt = async {
        let mut client = access.connect().await?;
        let found = client.get(format!("{SECURE_PREFIX}models/guarded"), None).await?;
        anyhow::Ok(!found.kvs().is_empty())
    };
    matches!(tokio::time::timeout(Duration::from_secs(10), attempt).await, Ok(Ok(true)))
}

/// Runs a node with `etcd_args` until it exits (or 30 s pass): whether it
/// exited successfully, and its output.
fn run_node_until_exit(name: &str, cluster: &Cluster, etcd_args: &[String]) -> (bool, String) {
    let mut command = Command::new(binary("maas-node"));
    command
        .args(["--name", name, "--device", "cpu", "--intra-op-threads", "1"])
        .arg("--quic-addr")
        .arg(format!("127.0.0.1:{}", free_udp_port()))
        .arg("--metrics-addr")
        .arg(format!("127.0.0.1:{}", free_tcp_port()))
        .arg("--cert-dir")
        .arg(&cluster.certs)
        .arg("--data-dir")
        .arg(cluster.node_data_dir(name))
        .args(etcd_args);
    let (exited, output) = run_until_exit(&mut command, Duration::from_secs(30));
    // Still running after 30 s counts as success: the node accepted the login.
    (exited.is_none_or(|status| status.success()), output)
}
