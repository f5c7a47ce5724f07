//! Reads a Triton-style model repository folder.
//!
//! ```text
//! <repo>/<model>/config.json            maas_protocol::ModelConfig
//! <repo>/<model>/<version>/model.pt     TorchScript, version a positive integer
//! <repo>/<model>/<version>/model.pt2    or an AOTInductor package (platform torch_aoti)
//! <repo>/<model>/<version>/model.onnx   or ONNX (platform onnxruntime_onnx)
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use maas_protocol::ModelConfig;

/// One model version found in the repository.
#[derive(Debug, Clone)]
pub struct ModelSource {
    /// The model's configuration.
    pub config: ModelConfig,
    /// Version number.
    pub version: u64,
    /// Path of the artifact, in the format the config's platform names.
    pub path: PathBuf,
    /// sha256 of the file when it came from the artifact store.
    pub sha256: Option<String>,
}

/// Lists the model versions in `repo` that each model's `version_policy`
/// selects (by default the newest one), or only those of the models in
/// `only` when it is not empty.
pub fn scan(repo: &Path, only: &[String]) -> Result<Vec<ModelSource>> {
    let mut sources = Vec::new();
    let entries = fs::read_dir(repo).with_context(|| format!("reading model repository {}", repo.display()))?;
    for entry in entries {
        let model_dir = entry?.path();
        let config_path = model_dir.join("config.json");
        if !config_path.is_file() {
            continue;
        }
        let config = read_config(&config_path)?;
        if !only.is_empty() && !only.contains(&config.name) {
            continue;
        }
        for version_entry in fs::read_dir(&model_dir)? {
            let version_dir = version_entry?.path();
            let Some(version) = version_number(&version_dir) else { continue };
            let path = version_dir.join(config.platform.model_filename());
            if path.is_file() {
                sources.push(ModelSource { config: config.clone(), version, path, sha256: None });
            }
        }
    }
    for name in only {
        if !sources.iter().any(|s| &s.config.name == name) {
            bail!("model '{name}' is not in the repository {}", repo.display());
        }
    }
    sources.sort_by(|a, b| (&a.config.name, a.version).cmp(&(&b.config.name, b.version)));
    let available =
        |name: &str| -> Vec<u64> { sources.iter().filter(|s| s.config.name == name).map(|s| s.version).collect() };
    let selected: Vec<(String, u64)> = sources
        .iter()
        .filter(|s| s.config.version_policy.select(&available(&s.config.name)).contains(&s.version))
        .map(|s| (s.config.name.clone(), s.version))
        .collect();
    sources.retain(|s| selected.contains(&(s.config.name.clone(), s.version)));
    Ok(sources)
}

fn read_config(path: &Path) -> Result<ModelConfig> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let config: ModelConfig = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    config.check().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(config)
}

fn version_number(dir: &Path) -> Option<u64> {
    if !dir.is_dir() {
        return None;
    }
    dir.file_name()?.to_str()?.parse().ok().filter(|&v| v > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repository(policy: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("maas-repo-{}-{}", std::process::id(), policy.len()));
        let _ = fs::remove_dir_all(&dir);
        for version in [1, 2, 3] {
            fs::create_dir_all(dir.join("m").join(version.to_string())).unwrap();
            fs::write(dir.join("m").join(version.to_string()).join("model.pt"), b"not read here").unwrap();
        }
        let config = format!(
            r#"{{"name": "m", "max_batch_size": 1, {policy}
                "inputs": [{{"name": "x", "datatype": "FP32", "shape": [-1, 1]}}],
                "outputs": [{{"name": "y", "datatype": "FP32", "shape": [-1, 1]}}]}}"#
        );
        fs::write(dir.join("m").join("config.json"), config).unwrap();
        dir
    }

    fn versions(policy: &str) -> Vec<u64> {
        let dir = repository(policy);
        let found = scan(&dir, &[]).unwrap().iter().map(|s| s.version).collect();
        fs::remove_dir_all(dir).unwrap();
        found
    }

    /// The policy the configuration reports is the one the node applies.
    #[test]
    fn only_the_versions_the_policy_selects_are_loaded() {
        assert_eq!(versions(""), vec![3], "the default policy is the newest version");
        assert_eq!(versions(r#""version_policy": {"latest": {"num_versions": 2}},"#), vec![2, 3]);
        assert_eq!(versions(r#""version_policy": {"all": {}},"#), vec![1, 2, 3]);
        assert_eq!(versions(r#""version_policy": {"specific": {"versions": [1, 3]}},"#), vec![1, 3]);
    }
}
