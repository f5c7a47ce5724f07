//! `maas tune` on a live cluster: it measures the CNN's current setting
//! and trials that change one setting at a time (each published as
//! `cnn.tune` on the node, driven by the bench load generator), prints the
//! frontier and the best setting within the p99 target, draws the plot,
//! cleans up its trial versions, and with `--apply` publishes the winner as
//! the model's next version with the same artifact.

use maas_tests::admin::{call, deploy_example};
use maas_tests::cli::{maas, ok};
use maas_tests::cluster::{TempDir, ADMIN_TOKEN};
use maas_tests::{Cluster, NodeSpec};
use reqwest::Method;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tune_finds_the_frontier_and_applies_the_best_setting() {
    // Keys are required for inference: the load generator gets the CLI's.
    let cluster = Cluster::builder()
        .nodes(vec![NodeSpec::bare("node-0")])
        .coordinator_args(&["--require-keys"])
        .start()
        .await
        .unwrap();
    deploy_example(&cluster, "cnn", 1, "cnn").await.unwrap();
    maas_tests::admin::wait_ready(&cluster, "cnn").await.unwrap();
    let dir = TempDir::new("tune");
    let plot = dir.path().join("frontier.svg");
    let args = ["--json", "tune", "cnn", "--p99-ms", "200", "--seconds", "0.5", "--max-concurrency", "4"];
    let run = maas(
        &cluster,
        ADMIN_TOKEN,
        &[&args[..], &["--budget", "90", "--apply", "--plot", plot.to_str().unwrap()]].concat(),
    );
    let said = run.stderr.clone();
    let printed = ok(run);
    let report: Value = serde_json::from_str(&printed).unwrap();
    let trials = report["trials"].as_array().unwrap();
    assert!(trials.len() >= 4, "{printed}");
    for trial in trials {
        let points = trial["points"].as_array().unwrap();
        assert!(!points.is_empty(), "{trial}");
        assert!(points.iter().all(|p| p["requests_per_second"].as_f64().unwrap() > 0.0), "{trial}");
    }
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert_eq!(svg.matches("<polyline").count(), trials.len());

    // The trials are gone; the winner became cnn's next version, same artifact.
    let detail = call(&cluster, Method::GET, "/v1/models/cnn", None, None).await.unwrap().ok().unwrap();
    let versions = detail["versions"].as_array().unwrap();
    let trial_model = call(&cluster, Method::GET, "/v1/models/cnn.tune", None, None).await.unwrap();
    let leftover = trial_model.body["versions"].as_array().map_or(0, Vec::len);
    assert_eq!(leftover, 0, "trial versions left behind: {}\ntune said: {said}", trial_model.body);
    if versions.len() == 2 {
        assert_eq!(versions[1]["artifact"]["sha256"], versions[0]["artifact"]["sha256"]);
        assert_ne!(versions[1]["config"], versions[0]["config"]);
    } else {
        assert_eq!(versions.len(), 1, "{detail}");
    }
}
