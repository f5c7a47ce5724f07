//! A pipeline version's processors, loaded once: tokenizers built and
//! labels read from the artifact store at the version's first request,
//! then shared by every request.

use maas_protocol::pipeline::{ImageStep, PipelineSpec, PostStep, StepAction};
use maas_protocol::TensorBytes;
use maas_registry::ArtifactStore;

use crate::tensors::StepError;
use crate::tokenize::TextTokenizer;

/// Largest tokenizer or labels artifact a pipeline reads.
pub const MAX_PROCESSOR_ARTIFACT_BYTES: u64 = 64 << 20;

/// One step, ready to run.
enum Ready {
    /// A deployed model: nothing to load here.
    Model,
    Tokenizer(Box<TextTokenizer>),
    Image(ImageStep),
    Post(PostStep, Vec<String>),
}

/// A pipeline version's steps, ready to run.
pub struct Prepared {
    steps: Vec<Ready>,
}

impl Prepared {
    /// Loads the artifacts the steps of `spec` read from `store`.
    pub async fn load(spec: &PipelineSpec, store: Option<&ArtifactStore>) -> Result<Prepared, String> {
        let read = |digest: String| async move {
            let store = store.ok_or("this coordinator has no artifact store")?;
            store.read_small(&digest, MAX_PROCESSOR_ARTIFACT_BYTES).await.map_err(|e| e.to_string())
        };
        let mut steps = Vec::with_capacity(spec.steps.len());
        for step in &spec.steps {
            let ready = match &step.action {
                StepAction::Model(_) => Ready::Model,
                StepAction::Tokenizer(tokenizer) => {
                    let json = read(tokenizer.tokenizer.clone()).await?;
                    let tokenizer = tokenizer.clone();
                    let built = tokio::task::spawn_blocking(move || TextTokenizer::new(&json, &tokenizer))
                        .await
                        .map_err(|e| format!("loading the tokenizer panicked: {e}"))?;
                    Ready::Tokenizer(Box::new(built.map_err(|e| format!("step '{}': {e}", step.name))?))
                }
                StepAction::Image(image) => Ready::Image(image.clone()),
                StepAction::Post(post) => {
                    let labels = match &post.labels {
                        Some(digest) => crate::post::parse_labels(&read(digest.clone()).await?)?,
                        None => Vec::new(),
                    };
                    Ready::Post(post.clone(), labels)
                }
            };
            steps.push(ready);
        }
        Ok(Prepared { steps })
    }

    /// Runs processor step `index` on its `inputs` of `rows` rows.
    pub fn process(&self, index: usize, inputs: &[TensorBytes], rows: usize) -> Result<Vec<TensorBytes>, StepError> {
        let input = |name: &str| {
            inputs.iter().find(|t| t.name == name).ok_or_else(|| StepError::Pipeline(format!("no input '{name}'")))
        };
        match self.steps.get(index) {
            Some(Ready::Tokenizer(tokenizer)) => tokenizer.run(input("text")?, rows),
            Some(Ready::Image(step)) => crate::image::run(step, input("image")?, rows),
            Some(Ready::Post(step, labels)) => crate::post::run(step, labels, input("scores")?, rows),
            Some(Ready::Model) | None => Err(StepError::Pipeline(format!("step {index} is not a processor"))),
        }
    }
}
