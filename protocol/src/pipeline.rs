//! Pipelines: a model version made of steps, each a deployed model or a
//! built-in processor, wired by tensor names.
//!
//! The shape is Triton's ensemble scheduling: each step maps its own tensor
//! names to the pipeline's (`input_map`: step input → pipeline tensor,
//! `output_map`: step output → pipeline tensor). Steps run in the order
//! given; a step may read the pipeline's inputs and the outputs of the
//! steps before it. The coordinator runs the pipeline: processors on its
//! CPUs, model steps through their own batchers, on whichever nodes hold
//! them.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{DataType, ModelConfig};

/// Most steps in one pipeline.
pub const MAX_STEPS: usize = 16;
/// Longest token sequence a tokenizer step pads or cuts to.
pub const MAX_TOKENS: u32 = 8192;
/// Largest side of the image a processor resizes or crops to.
pub const MAX_IMAGE_SIDE: u32 = 4096;
/// Most bytes of pixels an image step makes for one request.
pub const MAX_IMAGE_BATCH_BYTES: u64 = 1 << 30;
/// Most classes a post-processing step ranks.
pub const MAX_TOP_K: u32 = 1000;

/// The steps of a `pipeline` version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct PipelineSpec {
    /// Steps, run in this order.
    pub steps: Vec<PipelineStep>,
    /// Rows per micro-batch: a request with more rows is cut into parts
    /// that go through the steps concurrently, so that the steps (on
    /// different nodes) work at once. Whole requests when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub micro_batch_rows: Option<u32>,
}

/// One step: what it runs and how its tensors map to the pipeline's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct PipelineStep {
    /// Its name, in errors and statistics.
    pub name: String,
    /// What it runs.
    #[serde(flatten)]
    pub action: StepAction,
    /// Step input name → pipeline tensor name.
    #[serde(default)]
    pub input_map: BTreeMap<String, String>,
    /// Step output name → pipeline tensor name.
    #[serde(default)]
    pub output_map: BTreeMap<String, String>,
}

/// What a step runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepAction {
    /// A deployed model, through its own batcher.
    Model(ModelStep),
    /// Text to token ids with a Hugging Face `tokenizer.json`.
    Tokenizer(TokenizerStep),
    /// Encoded images to a normalised FP32 tensor.
    Image(ImageStep),
    /// Scores to probabilities, ranks and labels.
    Post(PostStep),
}

/// A deployed model a step calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct ModelStep {
    /// Model name.
    pub model: String,
    /// Version number or alias; the model's default routing when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Strings (`text`, one per row) to `input_ids`, `attention_mask` and
/// `token_type_ids`, INT64 of `max_length` per row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct TokenizerStep {
    /// sha256 of the `tokenizer.json` artifact.
    pub tokenizer: String,
    /// Tokens per row: shorter texts are padded, longer ones cut or refused.
    pub max_length: u32,
    /// Whether a longer text is cut to `max_length` (else refused with 400).
    #[serde(default = "default_true")]
    pub truncation: bool,
}

/// Encoded images (`image`: JPEG or PNG bytes, one per row) to `pixels`,
/// FP32 `[rows, 3, crop, crop]`: the shorter side resized to `resize`
/// (bilinear, antialiased), the centre cropped, scaled to [0, 1] and
/// normalised per channel, as torchvision's `Resize`, `CenterCrop`,
/// `ToTensor` and `Normalize` do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct ImageStep {
    /// The shorter side's length after resizing.
    #[serde(default = "default_resize")]
    pub resize: u32,
    /// The side of the centred square kept.
    #[serde(default = "default_crop")]
    pub crop: u32,
    /// Per-channel mean subtracted (RGB).
    #[serde(default = "default_mean")]
    pub mean: [f32; 3],
    /// Per-channel deviation divided by (RGB).
    #[serde(default = "default_std")]
    pub std: [f32; 3],
    /// Largest encoded image accepted, in pixels (width × height), checked
    /// from its header before it is decoded.
    #[serde(default = "default_max_pixels")]
    pub max_pixels: u64,
}

// Checks refuse non-finite means and deviations, so equality is reflexive.
impl Eq for ImageStep {}

/// Scores (`scores`, FP32 `[rows, classes]`) to `probabilities` (softmax,
/// when asked), the `top_k` best as `top_scores`, `top_indices` and, with a
/// labels artifact, `top_labels` (BYTES), and `above` (BOOL: each score
/// over `threshold`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct PostStep {
    /// Whether scores go through softmax first.
    #[serde(default)]
    pub softmax: bool,
    /// How many of the best classes to name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    /// sha256 of a labels artifact: one class name per line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<String>,
    /// The score `above` compares with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f32>,
}

// Checks refuse a non-finite threshold, so equality is reflexive.
impl Eq for PostStep {}

fn default_true() -> bool {
    true
}
fn default_resize() -> u32 {
    256
}
fn default_crop() -> u32 {
    224
}
fn default_mean() -> [f32; 3] {
    [0.485, 0.456, 0.406]
}
fn default_std() -> [f32; 3] {
    [0.229, 0.224, 0.225]
}
fn default_max_pixels() -> u64 {
    40_000_000
}

impl StepAction {
    /// The step inputs a processor reads (every one required); `None` for a
    /// model step, whose inputs its own config names.
    pub fn processor_inputs(&self) -> Option<&'static [&'static str]> {
        match self {
            StepAction::Model(_) => None,
            StepAction::Tokenizer(_) => Some(&["text"]),
            StepAction::Image(_) => Some(&["image"]),
            StepAction::Post(_) => Some(&["scores"]),
        }
    }

    /// The outputs a processor can give, with their datatypes.
    pub fn processor_outputs(&self) -> Option<Vec<(&'static str, DataType)>> {
        match self {
            StepAction::Model(_) => None,
            StepAction::Tokenizer(_) => Some(vec![
                ("input_ids", DataType::Int64),
                ("attention_mask", DataType::Int64),
                ("token_type_ids", DataType::Int64),
            ]),
            StepAction::Image(_) => Some(vec![("pixels", DataType::Fp32)]),
            StepAction::Post(post) => {
                let mut outputs = vec![("probabilities", DataType::Fp32)];
                if post.top_k.is_some() {
                    outputs.extend([("top_scores", DataType::Fp32), ("top_indices", DataType::Int64)]);
                }
                if post.labels.is_some() {
                    outputs.push(("top_labels", DataType::Bytes));
                }
                if post.threshold.is_some() {
                    outputs.push(("above", DataType::Bool));
                }
                Some(outputs)
            }
        }
    }

    /// The artifacts the step reads (sha256).
    pub fn artifacts(&self) -> Vec<&str> {
        match self {
            StepAction::Tokenizer(t) => vec![t.tokenizer.as_str()],
            StepAction::Post(p) => p.labels.iter().map(String::as_str).collect(),
            StepAction::Model(_) | StepAction::Image(_) => Vec::new(),
        }
    }

    fn check(&self, step: &str) -> Result<(), String> {
        let sha = |what: &str, digest: &str| {
            if digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(())
            } else {
                Err(format!("step '{step}': {what} must be an artifact's sha256 (64 hex digits)"))
            }
        };
        match self {
            StepAction::Model(model) => {
                if model.model.is_empty() || model.version.as_ref().is_some_and(|v| v.is_empty()) {
                    return Err(format!("step '{step}': a model step needs a model name (and a non-empty version)"));
                }
            }
            StepAction::Tokenizer(t) => {
                sha("tokenizer", &t.tokenizer)?;
                if t.max_length == 0 || t.max_length > MAX_TOKENS {
                    return Err(format!("step '{step}': max_length must be between 1 and {MAX_TOKENS}"));
                }
            }
            StepAction::Image(image) => {
                let sides = 1..=MAX_IMAGE_SIDE;
                if !sides.contains(&image.resize) || !sides.contains(&image.crop) || image.crop > image.resize {
                    return Err(format!(
                        "step '{step}': resize and crop must be between 1 and {MAX_IMAGE_SIDE}, crop at most resize"
                    ));
                }
                let finite = image.mean.iter().all(|m| m.is_finite());
                if !finite || !image.std.iter().all(|s| s.is_finite() && *s > 0.0) {
                    return Err(format!("step '{step}': mean must be finite and std finite and positive"));
                }
                if image.max_pixels == 0 || image.max_pixels > 100_000_000 {
                    return Err(format!("step '{step}': max_pixels must be between 1 and 100000000"));
                }
            }
            StepAction::Post(post) => {
                if post.top_k.is_some_and(|k| k == 0 || k > MAX_TOP_K) {
                    return Err(format!("step '{step}': top_k must be between 1 and {MAX_TOP_K}"));
                }
                if let Some(labels) = &post.labels {
                    sha("labels", labels)?;
                    if post.top_k.is_none() {
                        return Err(format!("step '{step}': labels name the top_k classes; set top_k"));
                    }
                }
                if post.threshold.is_some_and(|t| !t.is_finite()) {
                    return Err(format!("step '{step}': threshold must be finite"));
                }
            }
        }
        Ok(())
    }
}

impl PipelineSpec {
    /// Checks the steps and their wiring against the pipeline's own
    /// inputs and outputs: every tensor a step reads exists by then, no
    /// tensor is written twice, and every output of the pipeline is written.
    pub fn check(&self, config: &ModelConfig) -> Result<(), String> {
        let model = &config.name;
        if self.steps.is_empty() || self.steps.len() > MAX_STEPS {
            return Err(format!("pipeline '{model}': needs between 1 and {MAX_STEPS} steps"));
        }
        if self.micro_batch_rows.is_some_and(|rows| rows == 0 || rows > config.max_batch_size) {
            return Err(format!("pipeline '{model}': micro_batch_rows must be between 1 and max_batch_size"));
        }
        for step in &self.steps {
            if let StepAction::Image(image) = &step.action {
                let row_bytes = 3 * u64::from(image.crop).pow(2) * 4;
                if row_bytes.saturating_mul(u64::from(config.max_batch_size)) > MAX_IMAGE_BATCH_BYTES {
                    return Err(format!(
                        "pipeline '{model}': step '{}' makes {row_bytes} bytes of pixels per row; {} rows \
                         (max_batch_size) would pass {MAX_IMAGE_BATCH_BYTES}",
                        step.name, config.max_batch_size
                    ));
                }
            }
        }
        let mut known: BTreeSet<&str> = config.inputs.iter().map(|s| s.name.as_str()).collect();
        let mut step_names = BTreeSet::new();
        for step in &self.steps {
            let name = &step.name;
            if name.is_empty() || name.len() > 128 || !step_names.insert(name.as_str()) {
                return Err(format!("pipeline '{model}': step names must be unique and 1 to 128 bytes ('{name}')"));
            }
            step.action.check(name).map_err(|e| format!("pipeline '{model}': {e}"))?;
            if step.input_map.is_empty() || step.output_map.is_empty() {
                return Err(format!("pipeline '{model}': step '{name}' needs an input_map and an output_map"));
            }
            if let Some(inputs) = step.action.processor_inputs() {
                let given: BTreeSet<&str> = step.input_map.keys().map(String::as_str).collect();
                if given != inputs.iter().copied().collect() {
                    return Err(format!("pipeline '{model}': step '{name}' takes exactly the inputs {inputs:?}"));
                }
            }
            if let Some(outputs) = step.action.processor_outputs() {
                if let Some(unknown) = step.output_map.keys().find(|k| !outputs.iter().any(|(o, _)| o == k)) {
                    let names: Vec<&str> = outputs.iter().map(|(o, _)| *o).collect();
                    return Err(format!(
                        "pipeline '{model}': step '{name}' has no output '{unknown}' (it gives {names:?})"
                    ));
                }
            }
            if let Some(missing) = step.input_map.values().find(|t| !known.contains(t.as_str())) {
                return Err(format!(
                    "pipeline '{model}': step '{name}' reads '{missing}', which no input or earlier step gives"
                ));
            }
            for tensor in step.output_map.values() {
                if !known.insert(tensor.as_str()) {
                    return Err(format!("pipeline '{model}': step '{name}' writes '{tensor}', which exists already"));
                }
            }
        }
        if let Some(output) = config.outputs.iter().find(|o| !known.contains(o.name.as_str())) {
            return Err(format!("pipeline '{model}': no step gives its output '{}'", output.name));
        }
        Ok(())
    }

    /// The models its steps call, with the version each names.
    pub fn models(&self) -> impl Iterator<Item = &ModelStep> {
        self.steps.iter().filter_map(|step| match &step.action {
            StepAction::Model(model) => Some(model),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn text_pipeline(steps: serde_json::Value) -> ModelConfig {
        serde_json::from_value(json!({
            "name": "sentiment", "platform": "pipeline", "max_batch_size": 8,
            "inputs": [{"name": "TEXT", "datatype": "BYTES", "shape": [-1, 1]}],
            "outputs": [{"name": "LABEL", "datatype": "BYTES", "shape": [-1, 1]}],
            "pipeline": {"steps": steps}
        }))
        .unwrap()
    }

    fn sha() -> String {
        "ab".repeat(32)
    }

    fn good_steps() -> serde_json::Value {
        json!([
            {"name": "tokenize", "tokenizer": {"tokenizer": sha(), "max_length": 16},
             "input_map": {"text": "TEXT"}, "output_map": {"input_ids": "ids", "attention_mask": "mask"}},
            {"name": "classify", "model": {"model": "bert", "version": "production"},
             "input_map": {"input_ids": "ids", "attention_mask": "mask"}, "output_map": {"logits": "logits"}},
            {"name": "label", "post": {"softmax": true, "top_k": 1, "labels": sha()},
             "input_map": {"scores": "logits"}, "output_map": {"top_labels": "LABEL"}}
        ])
    }

    #[test]
    fn a_wired_pipeline_passes_and_names_its_models() {
        let config = text_pipeline(good_steps());
        assert_eq!(config.check(), Ok(()));
        let spec = config.pipeline.as_ref().unwrap();
        let models: Vec<&str> = spec.models().map(|m| m.model.as_str()).collect();
        assert_eq!(models, ["bert"]);
        assert_eq!(spec.steps[0].action.artifacts(), [sha().as_str()]);
    }

    #[test]
    fn miswired_steps_are_refused_with_the_reason() {
        let mut cases = Vec::new();
        let mut steps = good_steps();
        steps[1]["input_map"]["input_ids"] = json!("nowhere");
        cases.push((steps, "reads 'nowhere'"));
        let mut steps = good_steps();
        steps[2]["output_map"] = json!({"top_labels": "ids"});
        cases.push((steps, "writes 'ids', which exists already"));
        let mut steps = good_steps();
        steps[2]["output_map"] = json!({"top_scores": "S"});
        cases.push((steps, "no step gives its output 'LABEL'"));
        let mut steps = good_steps();
        steps[0]["output_map"]["words"] = json!("w");
        cases.push((steps, "has no output 'words'"));
        let mut steps = good_steps();
        steps[0]["tokenizer"]["max_length"] = json!(0);
        cases.push((steps, "max_length must be between"));
        let mut steps = good_steps();
        steps[2]["post"] = json!({"labels": sha()});
        cases.push((steps, "set top_k"));
        let mut steps = good_steps();
        steps[1]["name"] = json!("tokenize");
        cases.push((steps, "step names must be unique"));
        for (steps, expected) in cases {
            let error = text_pipeline(steps).check().unwrap_err();
            assert!(error.contains(expected), "{error:?} should contain {expected:?}");
        }
    }

    #[test]
    fn bytes_tensors_are_for_pipelines_only() {
        let mut config = text_pipeline(good_steps());
        config.platform = crate::Platform::PytorchLibtorch;
        config.pipeline = None;
        assert!(config.check().unwrap_err().contains("is BYTES"));
    }
}
