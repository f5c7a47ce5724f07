//! The conversion helper: a PyTorch module becomes a served model whose
//! answers equal the eager module's.

use std::process::Command;

use maas_tests::admin::wait_ready;
use maas_tests::cluster::{workspace_root, TempDir, ADMIN_TOKEN};
use maas_tests::python;
use maas_tests::requests::{assert_matches, json_body, post_json};
use maas_tests::{Cluster, NodeSpec, Reference};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_is_converted_checked_and_deployed() {
    let cluster = Cluster::builder().nodes(vec![NodeSpec::bare("node-0")]).start().await.unwrap();
    let out = TempDir::new("convert");
    let target = out.path().join("tiny");
    let status = Command::new(python::interpreter())
        .current_dir(workspace_root())
        .args(["scripts/convert.py", "--path", "tests/fixtures", "--module", "convert_example:TinyNet"])
        .args(["--init-json", r#"{"width": 24}"#, "--example-shape", "1,8", "--max-batch-size", "16"])
        .arg("--out")
        .arg(&target)
        .args(["--deploy", "--alias", "production", "--maas"])
        .arg(maas_tests::cluster::binary("maas"))
        .env("MAAS_URL", cluster.url(""))
        .env("MAAS_ADMIN_TOKEN", ADMIN_TOKEN)
        .status()
        .unwrap();
    assert!(status.success());
    wait_ready(&cluster, "tiny").await.unwrap();

    let reference = Reference::read(&target.join("reference.json"));
    let answer = post_json(&cluster.client, &cluster.url("/v2/models/tiny/infer"), &json_body(&reference.inputs, None))
        .await
        .unwrap()
        .answer()
        .unwrap();
    assert_matches(&answer.outputs, &reference.outputs);

    // A module whose trace only works at one batch size is refused.
    let refused = Command::new(python::interpreter())
        .current_dir(workspace_root())
        .args(["scripts/convert.py", "--path", "tests/fixtures", "--module", "convert_example:Unbatchable"])
        .args(["--example-shape", "1,2", "--out"])
        .arg(out.path().join("unbatchable"))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("another size") || stderr.contains("Error"), "{stderr}");
}
