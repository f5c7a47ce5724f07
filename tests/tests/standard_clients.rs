//! The clients people already use work unchanged: tritonclient (HTTP and
//! gRPC) and KServe's Python SDK (REST and gRPC) check health and
//! readiness and get PyTorch's answers (the newest `mlp` version) from a real cluster
//! (`tests/python/standard_clients.py`).

use std::process::Command;

use maas_tests::cluster::{models_dir, workspace_root};
use maas_tests::{Cluster, NodeSpec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tritonclient_and_kserve_sdk_work_unchanged() {
    let cluster = Cluster::builder().nodes(vec![NodeSpec::new("node-0", &["mlp"])]).start().await.unwrap();
    for sdk in ["triton", "kserve"] {
        let output = Command::new(workspace_root().join(".venv/bin/python"))
            .arg(workspace_root().join("tests/python/standard_clients.py"))
            .arg(sdk)
            .arg(cluster.http_addr.to_string())
            .arg(cluster.grpc_addr.to_string())
            .arg(models_dir().join("mlp/2/reference.json"))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "the {sdk} client failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
