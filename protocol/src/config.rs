//! A model's configuration: its tensors, batching limits and instances.
//!
//! Stored beside the model as `config.json`, for example:
//!
//! ```json
//! {"name": "mlp", "max_batch_size": 64, "max_queue_delay_us": 500,
//!  "inputs":  [{"name": "INPUT__0",  "datatype": "FP32", "shape": [-1, 256]}],
//!  "outputs": [{"name": "OUTPUT__0", "datatype": "FP32", "shape": [-1, 10]}]}
//! ```
//!
//! Shapes carry the batch dimension first as `-1`.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::decoder::DecoderSpec;
use crate::pipeline::PipelineSpec;
use crate::{validate, DataType};

/// Which versions of a model are loaded, as Triton's `version_policy`:
/// `{"latest": {"num_versions": 1}}`, `{"all": {}}` or
/// `{"specific": {"versions": [1, 3]}}`. Versions an alias or a traffic
/// split points at are loaded whatever the policy says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionPolicy {
    /// The newest `num_versions` versions.
    Latest {
        /// How many.
        num_versions: u32,
    },
    /// Every version.
    All {},
    /// Exactly these versions.
    Specific {
        /// Version numbers.
        versions: Vec<u64>,
    },
}

impl Default for VersionPolicy {
    fn default() -> Self {
        VersionPolicy::Latest { num_versions: 1 }
    }
}

impl VersionPolicy {
    /// The versions this policy selects among `available` (ascending).
    pub fn select(&self, available: &[u64]) -> Vec<u64> {
        match self {
            VersionPolicy::Latest { num_versions } => {
                let skip = available.len().saturating_sub(*num_versions as usize);
                available[skip..].to_vec()
            }
            VersionPolicy::All {} => available.to_vec(),
            VersionPolicy::Specific { versions } => {
                available.iter().copied().filter(|v| versions.contains(v)).collect()
            }
        }
    }
}

/// The format of a model's artifact, named as Triton names its platforms
/// (`torch_aoti` has no Triton name).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    /// TorchScript (`torch.jit.trace` or `script`, then `save`), run by LibTorch.
    #[default]
    PytorchLibtorch,
    /// An AOTInductor package (`.pt2`: `torch.export`, then
    /// `torch._inductor.aoti_compile_and_package`), run by LibTorch.
    TorchAoti,
    /// ONNX, run by ONNX Runtime.
    OnnxruntimeOnnx,
    /// A generative model served by an external engine with an
    /// OpenAI-compatible API (vLLM, SGLang, TGI, `transformers serve`): no
    /// artifact, no node; the coordinator forwards to its
    /// [`ModelConfig::engine`] endpoints.
    OpenaiEngine,
    /// A decoder-only language model exported as TorchScript with an
    /// explicit key/value cache, run token by token on nodes with
    /// continuous batching; its [`ModelConfig::decoder`] gives its shape.
    PytorchDecoder,
    /// Steps run by the coordinator, each a deployed model or a built-in
    /// processor; its [`ModelConfig::pipeline`] lists them.
    Pipeline,
}

impl Platform {
    /// Its name in configurations.
    pub fn name(self) -> &'static str {
        match self {
            Platform::PytorchLibtorch => "pytorch_libtorch",
            Platform::TorchAoti => "torch_aoti",
            Platform::OnnxruntimeOnnx => "onnxruntime_onnx",
            Platform::OpenaiEngine => "openai_engine",
            Platform::PytorchDecoder => "pytorch_decoder",
            Platform::Pipeline => "pipeline",
        }
    }

    /// Triton's name for the backend that runs it.
    pub fn backend(self) -> &'static str {
        match self {
            Platform::PytorchLibtorch => "pytorch",
            Platform::TorchAoti => "torch_aoti",
            Platform::OnnxruntimeOnnx => "onnxruntime",
            Platform::OpenaiEngine => "openai",
            Platform::PytorchDecoder => "pytorch_decoder",
            Platform::Pipeline => "ensemble",
        }
    }

    /// The artifact's file name in a model repository's version folder.
    pub fn model_filename(self) -> &'static str {
        match self {
            Platform::PytorchLibtorch => "model.pt",
            Platform::TorchAoti => "model.pt2",
            Platform::OnnxruntimeOnnx => "model.onnx",
            Platform::OpenaiEngine => "engine.json",
            Platform::PytorchDecoder => "model.pt",
            Platform::Pipeline => "pipeline.json",
        }
    }

    /// Whether versions generate text rather than answer tensors.
    pub fn is_generative(self) -> bool {
        matches!(self, Platform::OpenaiEngine | Platform::PytorchDecoder)
    }

    /// Whether versions run on nodes (else an external engine serves
    /// them, or the coordinator runs their steps).
    pub fn runs_on_nodes(self) -> bool {
        !matches!(self, Platform::OpenaiEngine | Platform::Pipeline)
    }

    /// Whether its tensors may be BYTES: pipelines carry them between
    /// steps, ONNX models take and return them as string tensors (LibTorch
    /// has no strings).
    pub fn takes_bytes(self) -> bool {
        matches!(self, Platform::Pipeline | Platform::OnnxruntimeOnnx)
    }

    /// Whether its BYTES elements must be text (UTF-8 without NUL bytes):
    /// ONNX Runtime copies each element of a string tensor as a C string.
    pub fn bytes_are_text(self) -> bool {
        self == Platform::OnnxruntimeOnnx
    }
}

/// Where an external engine answers: one or more base URLs of an
/// OpenAI-compatible server (`http://host:port` or `https://host:port`,
/// with or without `/v1`),
/// and the model name it knows the model by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct EngineEndpoint {
    /// Base URLs; requests are spread over those that answer.
    pub urls: Vec<String>,
    /// The engine's name for the model (`model` in the requests sent to
    /// it); the maas model name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// Most URLs of one engine version.
pub const MAX_ENGINE_URLS: usize = 64;

impl EngineEndpoint {
    /// Refuses an endpoint without URLs or with one that is not plain
    /// `http(s)://host[:port][/path]`.
    pub fn check(&self, model: &str) -> Result<(), String> {
        if self.urls.is_empty() || self.urls.len() > MAX_ENGINE_URLS {
            return Err(format!("model '{model}': an engine needs between 1 and {MAX_ENGINE_URLS} urls"));
        }
        for url in &self.urls {
            let Some(rest) = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://")) else {
                return Err(format!("model '{model}': engine url '{url}' must start with http:// or https://"));
            };
            let host = rest.split('/').next().unwrap_or_default();
            // No user, query or fragment: the request path is appended to
            // the URL, and must land on the engine's own API.
            let odd = |c: char| c.is_whitespace() || c.is_control() || matches!(c, '@' | '?' | '#' | '\\');
            if host.is_empty() || url.len() > 2048 || url.chars().any(odd) {
                return Err(format!(
                    "model '{model}': engine url '{url}' is not a plain http(s)://host[:port][/path] url"
                ));
            }
        }
        // One scheme for all: the engine's key goes to every URL, and must
        // not travel in clear text to some of them.
        if self.urls.iter().any(|u| u.starts_with("https://")) && self.urls.iter().any(|u| u.starts_with("http://")) {
            return Err(format!("model '{model}': the engine's urls mix http:// and https://; use one scheme"));
        }
        if self.model.as_ref().is_some_and(|m| m.is_empty() || m.len() > 1024) {
            return Err(format!("model '{model}': the engine's model name must be 1 to 1024 bytes"));
        }
        Ok(())
    }
}

/// One input or output of a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct TensorSpec {
    /// The tensor's name, as requests and responses use it.
    pub name: String,
    /// Element type.
    pub datatype: DataType,
    /// Dimensions, `-1` for the batch dimension (first) and any variable one.
    pub shape: Vec<i64>,
}

impl TensorSpec {
    /// Its shape for `rows` rows, with every variable dimension at 1 (as a
    /// node's warm-up fills it).
    pub fn shape_at(&self, rows: i64) -> Vec<i64> {
        std::iter::once(rows).chain(self.shape[1..].iter().map(|&d| d.max(1))).collect()
    }
}

/// What the coordinator and node need to know to batch and run a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct ModelConfig {
    /// Model name, as it appears in request paths.
    pub name: String,
    /// The artifact's format: `pytorch_libtorch` (the default), `torch_aoti`
    /// or `onnxruntime_onnx`.
    #[serde(default)]
    pub platform: Platform,
    /// The largest batch, in rows, that one execution takes.
    #[serde(default)]
    pub max_batch_size: u32,
    /// How long a partial batch may wait for more rows while other batches
    /// of the model are already executing, in microseconds.
    #[serde(default = "default_max_queue_delay_us")]
    pub max_queue_delay_us: u64,
    /// Inputs, in the order `forward` takes them.
    #[serde(default)]
    pub inputs: Vec<TensorSpec>,
    /// Outputs, in the order `forward` returns them.
    #[serde(default)]
    pub outputs: Vec<TensorSpec>,
    /// Model instances a node runs, each on its own thread.
    #[serde(default = "default_instance_count")]
    pub instance_count: u32,
    /// Batch sizes run once at load so the first requests do not pay for
    /// TorchScript's specialisation. Empty means `[1, max_batch_size]`.
    #[serde(default)]
    pub warmup_batch_sizes: Vec<u32>,
    /// Device: `auto`, `cpu`, `cuda` or `cuda:N`; the node's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Memory a replica needs, in bytes: reserved before its first load,
    /// and afterwards if larger than what the load was measured to take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// The largest inference request for this model, in bytes of HTTP body
    /// or gRPC message; the server's and the caller's key's limits apply too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_bytes: Option<u64>,
    /// Which versions are loaded.
    #[serde(default)]
    pub version_policy: VersionPolicy,
    /// Free-form labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// How many nodes hold each loaded version.
    #[serde(default)]
    pub replicas: ReplicaRange,
    /// The external engine of an `openai_engine` version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineEndpoint>,
    /// The shape, tokenizer and cache budget of a `pytorch_decoder` version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoder: Option<DecoderSpec>,
    /// The steps of a `pipeline` version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<PipelineSpec>,
}

/// Replica count of a version: at least `min`, at most `max`. With `min: 0`
/// the version is loaded on demand: its first request waits for a replica
/// to be placed and loaded, and it goes back to none once it has been idle
/// for the coordinators' idle time.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct ReplicaRange {
    /// Replicas placed whenever nodes allow (0: only while requests come).
    pub min: u32,
    /// Upper bound.
    pub max: u32,
    /// Requests in flight per replica above which a replica is added (and
    /// below half of which, over one replica fewer, one is removed);
    /// `instance_count * max_batch_size` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_in_flight: Option<u32>,
}

impl Default for ReplicaRange {
    fn default() -> Self {
        ReplicaRange { min: 1, max: 1, target_in_flight: None }
    }
}

fn default_max_queue_delay_us() -> u64 {
    500
}

fn default_instance_count() -> u32 {
    1
}

/// Most instances of one model on one node: each is a thread holding a copy
/// of the model, and a trial load builds them all.
pub const MAX_INSTANCES: u32 = 64;
/// Most warm-up batch sizes: each is a forward pass at load.
pub const MAX_WARMUP_SIZES: usize = 16;

impl ModelConfig {
    /// Requests in flight per replica that replicas are added above.
    pub fn target_in_flight(&self) -> u32 {
        self.replicas
            .target_in_flight
            .unwrap_or_else(|| self.instance_count.saturating_mul(self.max_batch_size.max(1)))
            .max(1)
    }

    /// Memory a replica is counted as holding, in bytes: what it was
    /// measured to take (or the configured figure, if larger), and before
    /// any measurement the configured figure or three times the artifact.
    pub fn memory_needed(&self, measured: Option<u64>, artifact_bytes: u64) -> u64 {
        let weights = match measured {
            Some(measured) => measured.max(self.memory_bytes.unwrap_or(0)),
            None => self.memory_bytes.unwrap_or(artifact_bytes.saturating_mul(3)),
        };
        // A decoder's caches come on top of its weights.
        weights.saturating_add(self.decoder.as_ref().map_or(0, |d| d.cache_bytes))
    }

    /// Checks the configuration for what would make the model unservable,
    /// or its load cost more than a node should spend on one config.
    pub fn check(&self) -> Result<(), String> {
        if self.name.is_empty() {
            return Err("model name is empty".into());
        }
        match (&self.engine, self.platform) {
            (Some(engine), Platform::OpenaiEngine) => return engine.check(&self.name),
            (None, Platform::OpenaiEngine) => {
                return Err(format!("model '{}': an openai_engine version needs an 'engine' with its urls", self.name))
            }
            (Some(_), platform) => {
                return Err(format!(
                    "model '{}': 'engine' is for openai_engine versions, not {}",
                    self.name,
                    platform.name()
                ))
            }
            (None, _) => {}
        }
        if self.max_batch_size == 0 {
            return Err(format!("model '{}': max_batch_size must be at least 1", self.name));
        }
        if self.replicas.max == 0 || self.replicas.max < self.replicas.min {
            return Err(format!(
                "model '{}': replicas must have min <= max and max >= 1, got {:?}",
                self.name, self.replicas
            ));
        }
        if self.instance_count == 0 || self.instance_count > MAX_INSTANCES {
            return Err(format!(
                "model '{}': instance_count must be between 1 and {MAX_INSTANCES}, not {}",
                self.name, self.instance_count
            ));
        }
        match (&self.decoder, self.platform) {
            (Some(decoder), Platform::PytorchDecoder) => {
                if !self.inputs.is_empty() || !self.outputs.is_empty() {
                    return Err(format!("model '{}': a decoder takes text, not configured tensors", self.name));
                }
                if self.max_batch_size > crate::decoder::MAX_RUNNING {
                    return Err(format!(
                        "model '{}': a decoder steps at most {} sequences together (max_batch_size)",
                        self.name,
                        crate::decoder::MAX_RUNNING
                    ));
                }
                return decoder.check(&self.name);
            }
            (None, Platform::PytorchDecoder) => {
                return Err(format!("model '{}': a pytorch_decoder version needs a 'decoder' spec", self.name))
            }
            (Some(_), platform) => {
                return Err(format!(
                    "model '{}': 'decoder' is for pytorch_decoder versions, not {}",
                    self.name,
                    platform.name()
                ))
            }
            (None, _) => {}
        }
        match (&self.pipeline, self.platform) {
            (Some(_), Platform::Pipeline) => {}
            (None, Platform::Pipeline) => {
                return Err(format!("model '{}': a pipeline version needs a 'pipeline' with its steps", self.name))
            }
            (Some(_), platform) => {
                return Err(format!(
                    "model '{}': 'pipeline' is for pipeline versions, not {}",
                    self.name,
                    platform.name()
                ))
            }
            (None, _) => {}
        }
        if self.warmup_batch_sizes.len() > MAX_WARMUP_SIZES {
            return Err(format!(
                "model '{}': at most {MAX_WARMUP_SIZES} warm-up batch sizes, not {}",
                self.name,
                self.warmup_batch_sizes.len()
            ));
        }
        if let Some(size) = self.warmup_batch_sizes.iter().find(|&&s| s == 0 || s > self.max_batch_size) {
            return Err(format!(
                "model '{}': warm-up batch size {size} is not between 1 and max_batch_size {}",
                self.name, self.max_batch_size
            ));
        }
        if self.inputs.is_empty() || self.outputs.is_empty() {
            return Err(format!("model '{}': needs at least one input and one output", self.name));
        }
        for (kind, specs) in [("inputs", &self.inputs), ("outputs", &self.outputs)] {
            let mut names = HashSet::new();
            if let Some(twice) = specs.iter().find(|spec| !names.insert(spec.name.as_str())) {
                return Err(format!("model '{}': two {kind} are named '{}'", self.name, twice.name));
            }
        }
        for spec in self.inputs.iter().chain(&self.outputs) {
            if spec.shape.first() != Some(&-1) {
                return Err(format!(
                    "model '{}': tensor '{}' must have -1 (the batch dimension) first, got {:?}",
                    self.name, spec.name, spec.shape
                ));
            }
            if spec.datatype == DataType::Bytes && !self.platform.takes_bytes() {
                return Err(format!(
                    "model '{}': tensor '{}' is BYTES, which {} models cannot take",
                    self.name,
                    spec.name,
                    self.platform.name()
                ));
            }
            if spec.shape.iter().any(|&d| d < -1 || d == 0) {
                return Err(format!(
                    "model '{}': tensor '{}' has an invalid dimension in {:?}",
                    self.name, spec.name, spec.shape
                ));
            }
            if spec.datatype != DataType::Bytes && !self.full_batch_fits(spec) {
                return Err(format!(
                    "model '{}': tensor '{}' of shape {:?} is too large at {} rows",
                    self.name, spec.name, spec.shape, self.max_batch_size
                ));
            }
        }
        match &self.pipeline {
            Some(pipeline) => pipeline.check(self),
            None => Ok(()),
        }
    }

    /// Whether the bytes of `max_batch_size` rows of `spec`, its variable
    /// dimensions at 1 (as a node warms it up), fit the `i64` sizes
    /// LibTorch counts in.
    fn full_batch_fits(&self, spec: &TensorSpec) -> bool {
        let shape = spec.shape_at(i64::from(self.max_batch_size));
        validate::byte_len(spec.datatype, &shape).is_some_and(|bytes| i64::try_from(bytes).is_ok())
    }

    /// The batch sizes to warm up on.
    pub fn warmup_sizes(&self) -> Vec<u32> {
        if self.warmup_batch_sizes.is_empty() {
            let mut sizes = vec![1, self.max_batch_size];
            sizes.dedup();
            sizes
        } else {
            self.warmup_batch_sizes.clone()
        }
    }

    /// The input with this name, if the model has one.
    pub fn input(&self, name: &str) -> Option<&TensorSpec> {
        self.inputs.iter().find(|s| s.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mlp() -> ModelConfig {
        serde_json::from_str(
            r#"{"name":"mlp","max_batch_size":64,
                "inputs":[{"name":"INPUT__0","datatype":"FP32","shape":[-1,256]}],
                "outputs":[{"name":"OUTPUT__0","datatype":"FP32","shape":[-1,10]}]}"#,
        )
        .unwrap()
    }

    #[test]
    fn an_engine_version_needs_plain_http_or_https_urls_and_nothing_else() {
        let engine = |urls: serde_json::Value| -> ModelConfig {
            serde_json::from_value(serde_json::json!({
                "name": "chat", "platform": "openai_engine", "engine": {"urls": urls}
            }))
            .unwrap()
        };
        assert_eq!(engine(serde_json::json!(["http://10.0.0.5:8001/v1"])).check(), Ok(()));
        assert_eq!(engine(serde_json::json!(["https://engine.example:8443/v1"])).check(), Ok(()));
        for bad in [
            serde_json::json!([]),
            serde_json::json!(["ftp://x"]),
            serde_json::json!(["https://a", "http://b"]),
            serde_json::json!(["https://"]),
            serde_json::json!(["http://"]),
            serde_json::json!(["http://a b"]),
            serde_json::json!(["http://user:pw@internal"]),
            serde_json::json!(["http://internal/admin?x="]),
            serde_json::json!(["http://internal/#"]),
        ] {
            assert!(engine(bad.clone()).check().is_err(), "{bad}");
        }
        let mut tensor = mlp();
        tensor.engine = engine(serde_json::json!(["http://x"])).engine;
        assert!(tensor.check().unwrap_err().contains("is for openai_engine versions"));
        let without: ModelConfig =
            serde_json::from_value(serde_json::json!({"name": "chat", "platform": "openai_engine"})).unwrap();
        assert!(without.check().unwrap_err().contains("needs an 'engine'"));
        assert!(!Platform::OpenaiEngine.runs_on_nodes());
    }

    #[test]
    fn version_policies_select() {
        let available = [1, 2, 3, 5];
        assert_eq!(VersionPolicy::default().select(&available), vec![5]);
        assert_eq!(VersionPolicy::Latest { num_versions: 2 }.select(&available), vec![3, 5]);
        assert_eq!(VersionPolicy::All {}.select(&available), vec![1, 2, 3, 5]);
        assert_eq!(VersionPolicy::Specific { versions: vec![2, 4] }.select(&available), vec![2]);
        let json: VersionPolicy = serde_json::from_str(r#"{"latest":{"num_versions":1}}"#).unwrap();
        assert_eq!(json, VersionPolicy::default());
        assert_eq!(serde_json::to_string(&VersionPolicy::All {}).unwrap(), r#"{"all":{}}"#);
    }

    #[test]
    fn defaults_apply() {
        let config = mlp();
        assert_eq!(config.max_queue_delay_us, 500);
        assert_eq!(config.instance_count, 1);
        assert_eq!(config.warmup_sizes(), vec![1, 64]);
        assert!(config.check().is_ok());
    }

    #[test]
    fn load_costs_are_bounded() {
        let mut config = mlp();
        config.instance_count = MAX_INSTANCES + 1;
        assert!(config.check().unwrap_err().contains("instance_count"));
        config.instance_count = MAX_INSTANCES;
        assert!(config.check().is_ok());
        config.warmup_batch_sizes = vec![1; MAX_WARMUP_SIZES + 1];
        assert!(config.check().unwrap_err().contains("warm-up"));
        config.warmup_batch_sizes = vec![65];
        assert!(config.check().unwrap_err().contains("warm-up batch size 65"), "past max_batch_size");
        config.warmup_batch_sizes = vec![0];
        assert!(config.check().is_err());
        config.warmup_batch_sizes = vec![1, 8, 64];
        assert!(config.check().is_ok());
    }

    #[test]
    fn rejects_tensors_named_twice() {
        // Found by the model_config fuzz target: a second input of the same
        // name could never be given (requests match inputs by name), so
        // every request was refused, as "missing input".
        let config: ModelConfig = serde_json::from_str(
            r#"{"name":"m","max_batch_size":16,
                "inputs":[{"name":"INPUT__1","datatype":"FP32","shape":[-1,3,-1]},
                          {"name":"INPUT__1","datatype":"BF16","shape":[-1,4]}],
                "outputs":[{"name":"OUTPUT__0","datatype":"FP64","shape":[-1,10]}]}"#,
        )
        .unwrap();
        assert_eq!(config.check().unwrap_err(), "model 'm': two inputs are named 'INPUT__1'");
        let mut outputs = mlp();
        outputs.outputs.push(outputs.outputs[0].clone());
        assert_eq!(outputs.check().unwrap_err(), "model 'mlp': two outputs are named 'OUTPUT__0'");
    }

    #[test]
    fn rejects_tensors_without_a_byte_size() {
        // Written with the model_config fuzz target, whose check of the
        // node's warm-up inputs failed on it: every request for this input
        // was refused as too large, and a node's warm-up asked LibTorch for
        // a tensor of more than i64::MAX bytes.
        let mut config = mlp();
        config.inputs[0].shape = vec![-1, 1 << 62, 4];
        assert_eq!(
            config.check().unwrap_err(),
            "model 'mlp': tensor 'INPUT__0' of shape [-1, 4611686018427387904, 4] is too large at 64 rows"
        );
        config.inputs[0].shape = vec![-1, 1 << 20, -1];
        assert!(config.check().is_ok(), "variable dimensions count as 1");
        config.max_batch_size = u32::MAX;
        config.inputs[0].shape = vec![-1, 1 << 31];
        assert!(config.check().unwrap_err().contains("too large at 4294967295 rows"));
    }

    #[test]
    fn rejects_missing_batch_dimension() {
        let mut config = mlp();
        config.inputs[0].shape = vec![256];
        assert!(config.check().unwrap_err().contains("batch dimension"));
    }

    #[test]
    fn rejects_unknown_datatype() {
        let err = serde_json::from_str::<ModelConfig>(
            r#"{"name":"m","max_batch_size":1,
                "inputs":[{"name":"x","datatype":"FLOAT","shape":[-1]}],"outputs":[]}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("FLOAT"));
    }
}
