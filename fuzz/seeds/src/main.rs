//! Writes valid inputs for each fuzz target into `<corpus>/<target>/seed-*`:
//! inference requests for the fuzzed model (`fuzz/model.json`)
//! in JSON, in JSON with binary tensors and as protobuf, data-plane frames
//! of batches and answers, and model configurations. Valid seeds let the
//! fuzzer start past the parsers' first refusals.

mod frames;
mod requests;

use std::path::{Path, PathBuf};

fn main() -> std::io::Result<()> {
    let corpus = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "fuzz/corpus".into()));
    let mut written = 0;
    let mut write = |target: &str, name: &str, bytes: &[u8]| -> std::io::Result<()> {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("seed-{name}")), bytes)?;
        written += 1;
        Ok(())
    };
    for (name, body) in requests::json_bodies() {
        write("http_infer_json", name, body.as_bytes())?;
    }
    for (name, body) in requests::binary_bodies() {
        write("http_infer_binary", name, &body)?;
    }
    for (name, message) in requests::grpc_messages() {
        write("grpc_outline", name, &message)?;
        write("grpc_tensor", name, &message)?;
    }
    for (name, frame) in frames::frames() {
        write("frame_decode", name, &frame)?;
    }
    for (name, config) in configs() {
        write("model_config", name, config.as_bytes())?;
    }
    println!("{written} seeds written under {}", Path::new(&corpus).display());
    Ok(())
}

/// Model configurations: the fuzzed model's, a minimal one, and one with
/// every optional field.
fn configs() -> Vec<(&'static str, String)> {
    let full = serde_json::json!({
        "name": "every-field", "max_batch_size": 16, "max_queue_delay_us": 250,
        "inputs": [{"name": "INPUT__0", "datatype": "FP32", "shape": [-1, 3, -1]},
                   {"name": "INPUT__1", "datatype": "BF16", "shape": [-1, 4]}],
        "outputs": [{"name": "OUTPUT__0", "datatype": "FP64", "shape": [-1, 10]}],
        "instance_count": 2, "warmup_batch_sizes": [1, 4, 16], "device": "cuda:0",
        "memory_bytes": 1_000_000, "max_request_bytes": 65_536,
        "version_policy": {"specific": {"versions": [1, 3]}},
        "labels": {"team": "search", "stage": "canary"}, "replicas": {"min": 1, "max": 3}
    });
    let latest = serde_json::json!({
        "name": "latest", "max_batch_size": 1,
        "inputs": [{"name": "tokens", "datatype": "INT64", "shape": [-1, -1]}],
        "outputs": [{"name": "logits", "datatype": "FP16", "shape": [-1, -1, 8]}],
        "version_policy": {"latest": {"num_versions": 2}}
    });
    let all = serde_json::json!({
        "name": "mlp", "max_batch_size": 64,
        "inputs": [{"name": "INPUT__0", "datatype": "UINT8", "shape": [-1, 256]}],
        "outputs": [{"name": "OUTPUT__0", "datatype": "BOOL", "shape": [-1, 10]}],
        "version_policy": {"all": {}}
    });
    vec![
        ("fuzzed-model.json", requests::MODEL_CONFIG_JSON.to_string()),
        ("every-field.json", serde_json::to_string_pretty(&full).expect("json")),
        ("latest.json", latest.to_string()),
        ("all.json", all.to_string()),
    ]
}
