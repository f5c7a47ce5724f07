//! Triton's view of a model version, shared by both fronts: its
//! configuration and its statistics in Triton's shape, built once from
//! maas's own types. The HTTP front serializes these structs as they are
//! (Triton's JSON field names); the gRPC front converts them into the
//! protobuf messages of the same names (`grpc::config`).

use maas_protocol::{ModelConfig, TensorSpec, VersionPolicy};
use serde::Serialize;

use maas_monitor::stats::{GenerationTallies, StatsSnapshot, Tally};
use maas_serving::error::ServeResult;
use maas_serving::models::ModelTable;
use maas_tenancy::Caller;

/// Extensions of the protocol this server implements, as both fronts'
/// server metadata lists them.
pub const EXTENSIONS: &[&str] = &["binary_tensor_data", "model_configuration", "parameters"];

/// A version's configuration as Triton's `ModelConfig`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigView {
    /// Model name.
    pub name: String,
    /// Its artifact's format, as Triton names platforms.
    pub platform: &'static str,
    /// The backend that runs it, as Triton names backends.
    pub backend: &'static str,
    /// Which versions are loaded, as the model's configuration says.
    pub version_policy: VersionPolicy,
    /// Largest batch in rows.
    pub max_batch_size: u32,
    /// Inputs; dims without the batch dimension.
    pub input: Vec<TensorView>,
    /// Outputs; dims without the batch dimension.
    pub output: Vec<TensorView>,
    /// The batcher's settings.
    pub dynamic_batching: DynamicBatchingView,
    /// Instances per node.
    pub instance_group: Vec<InstanceGroupView>,
    /// The artifact's file name on a node.
    pub default_model_filename: &'static str,
}

/// An input or output in a [`ConfigView`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TensorView {
    /// Name.
    pub name: String,
    /// Triton's `TYPE_*` name.
    pub data_type: &'static str,
    /// Always `FORMAT_NONE`.
    pub format: &'static str,
    /// Dimensions after the batch dimension, `-1` where variable.
    pub dims: Vec<i64>,
}

/// Triton's `dynamic_batching`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DynamicBatchingView {
    /// The batch size the batcher aims for.
    pub preferred_batch_size: Vec<u32>,
    /// How long a partial batch may wait.
    pub max_queue_delay_microseconds: u64,
}

/// Triton's `instance_group`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceGroupView {
    /// `<model>_0`.
    pub name: String,
    /// Always `KIND_AUTO`: the node picks CPU or GPU.
    pub kind: &'static str,
    /// Instances per node.
    pub count: u32,
}

impl ConfigView {
    /// The view of `config`. Dims leave out the batch dimension, as
    /// Triton's do when `max_batch_size > 0`.
    pub fn of(config: &ModelConfig) -> ConfigView {
        let tensor = |spec: &TensorSpec| TensorView {
            name: spec.name.clone(),
            data_type: spec.datatype.config_name(),
            format: "FORMAT_NONE",
            dims: spec.shape[1..].to_vec(),
        };
        ConfigView {
            name: config.name.clone(),
            platform: config.platform.name(),
            backend: config.platform.backend(),
            version_policy: config.version_policy.clone(),
            max_batch_size: config.max_batch_size,
            input: config.inputs.iter().map(tensor).collect(),
            output: config.outputs.iter().map(tensor).collect(),
            dynamic_batching: DynamicBatchingView {
                preferred_batch_size: vec![config.max_batch_size],
                max_queue_delay_microseconds: config.max_queue_delay_us,
            },
            instance_group: vec![InstanceGroupView {
                name: format!("{}_0", config.name),
                kind: "KIND_AUTO",
                count: config.instance_count,
            }],
            default_model_filename: config.platform.model_filename(),
        }
    }
}

/// A count and a total duration, as Triton's `StatisticDuration`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct DurationView {
    /// How many.
    pub count: u64,
    /// Their total in nanoseconds.
    pub ns: u64,
}

impl From<Tally> for DurationView {
    fn from(tally: Tally) -> DurationView {
        DurationView { count: tally.count, ns: tally.ns }
    }
}

/// Triton's `InferStatistics`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InferStatsView {
    /// Successful requests, end to end.
    pub success: DurationView,
    /// Failed requests.
    pub fail: DurationView,
    /// Time in the batcher queue.
    pub queue: DurationView,
    /// Input preparation on the node.
    pub compute_input: DurationView,
    /// `forward`.
    pub compute_infer: DurationView,
    /// Output copying on the node.
    pub compute_output: DurationView,
    /// Always zero: maas has no response cache.
    pub cache_hit: DurationView,
    /// Always zero.
    pub cache_miss: DurationView,
}

/// Triton's `InferBatchStatistics`: one batch size's compute times.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchStatsView {
    /// Rows in the batch.
    pub batch_size: u64,
    /// Input preparation.
    pub compute_input: DurationView,
    /// `forward`.
    pub compute_infer: DurationView,
    /// Output copying.
    pub compute_output: DurationView,
}

/// One version's statistics as Triton's `ModelStatistics`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatisticsView {
    /// Model name.
    pub name: String,
    /// Version, as a string (Triton's type).
    pub version: String,
    /// Milliseconds since the Unix epoch of the last batch.
    pub last_inference: u64,
    /// Rows inferred.
    pub inference_count: u64,
    /// Batches run.
    pub execution_count: u64,
    /// Per-request tallies.
    pub inference_stats: InferStatsView,
    /// Per batch size.
    pub batch_stats: Vec<BatchStatsView>,
    /// Tokens and token times of generative requests (absent for tensor
    /// models): maas's addition to Triton's shape.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation_stats: Option<GenerationStatsView>,
}

/// A generative version's tokens and token times.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GenerationStatsView {
    /// Streamed requests' time to their first token.
    pub time_to_first_token: DurationView,
    /// Time between two streamed tokens.
    pub inter_token: DurationView,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Generated tokens.
    pub completion_tokens: u64,
}

impl StatisticsView {
    /// The view of `stats` of version `version` of `name`.
    pub fn of(name: &str, version: u64, stats: &StatsSnapshot) -> StatisticsView {
        StatisticsView {
            name: name.to_string(),
            version: version.to_string(),
            last_inference: stats.last_inference_ms,
            inference_count: stats.inference_count,
            execution_count: stats.execution_count,
            inference_stats: InferStatsView {
                success: stats.success.into(),
                fail: stats.fail.into(),
                queue: stats.queue.into(),
                compute_input: stats.compute_input.into(),
                compute_infer: stats.compute_infer.into(),
                compute_output: stats.compute_output.into(),
                cache_hit: DurationView::default(),
                cache_miss: DurationView::default(),
            },
            batch_stats: stats
                .batches
                .iter()
                .map(|(size, [input, infer, output])| BatchStatsView {
                    batch_size: *size,
                    compute_input: (*input).into(),
                    compute_infer: (*infer).into(),
                    compute_output: (*output).into(),
                })
                .collect(),
            generation_stats: (stats.generation != GenerationTallies::default()).then(|| GenerationStatsView {
                time_to_first_token: stats.generation.time_to_first_token.into(),
                inter_token: stats.generation.inter_token.into(),
                prompt_tokens: stats.generation.prompt_tokens,
                completion_tokens: stats.generation.completion_tokens,
            }),
        }
    }
}

/// The statistics of every version (`model` `None`), of a model's versions,
/// or of one version; a named model or version must exist.
pub fn statistics(
    table: &ModelTable,
    caller: &Caller,
    model: Option<&str>,
    version: Option<&str>,
) -> ServeResult<Vec<StatisticsView>> {
    let named = model.map(|model| table.resolve(model, version)).transpose()?;
    let selected = table
        .monitor()
        .versions()
        .iter()
        .filter(|m| caller.sees(&m.model))
        .filter(|m| match &named {
            None => true,
            Some(v) => m.model == v.shared.name && (version.is_none() || m.version == v.shared.version),
        })
        .map(|m| StatisticsView::of(&m.model, m.version, &m.stats.snapshot()))
        .collect();
    Ok(selected)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn statistics_have_tritons_json_shape() {
        let mut stats = StatsSnapshot { inference_count: 7, execution_count: 3, ..StatsSnapshot::default() };
        stats.success = Tally { count: 2, ns: 400 };
        stats.batches.insert(3, [Tally { count: 2, ns: 2 }, Tally { count: 2, ns: 30 }, Tally { count: 2, ns: 4 }]);
        let json = serde_json::to_value(StatisticsView::of("m", 2, &stats)).unwrap();
        assert_eq!(json["version"], "2");
        assert_eq!((json["inference_count"].clone(), json["execution_count"].clone()), (json!(7), json!(3)));
        assert_eq!(json["inference_stats"]["success"], json!({"count": 2, "ns": 400}));
        assert_eq!(json["inference_stats"]["cache_miss"], json!({"count": 0, "ns": 0}));
        assert_eq!(
            json["batch_stats"],
            json!([{"batch_size": 3, "compute_input": {"count": 2, "ns": 2},
                    "compute_infer": {"count": 2, "ns": 30}, "compute_output": {"count": 2, "ns": 4}}])
        );
    }

    #[test]
    fn the_config_view_keeps_the_models_version_policy() {
        let config: ModelConfig = serde_json::from_value(json!({
            "name": "clf", "max_batch_size": 8, "max_queue_delay_us": 250, "instance_count": 2,
            "version_policy": {"specific": {"versions": [1, 3]}},
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
            "outputs": [{"name": "y", "datatype": "INT64", "shape": [-1]}]
        }))
        .unwrap();
        let view = serde_json::to_value(ConfigView::of(&config)).unwrap();
        assert_eq!(view["version_policy"], json!({"specific": {"versions": [1, 3]}}));
        assert_eq!(
            view["input"],
            json!([{"name": "x", "data_type": "TYPE_FP32", "format": "FORMAT_NONE", "dims": [4]}])
        );
        assert_eq!(view["output"][0]["dims"], json!([]));
        assert_eq!(view["dynamic_batching"], json!({"preferred_batch_size": [8], "max_queue_delay_microseconds": 250}));
        assert_eq!(view["instance_group"], json!([{"name": "clf_0", "kind": "KIND_AUTO", "count": 2}]));
        let all: ModelConfig = serde_json::from_value(json!({
            "name": "m", "max_batch_size": 1, "version_policy": {"all": {}},
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1]}], "outputs": []
        }))
        .unwrap();
        assert_eq!(serde_json::to_value(ConfigView::of(&all)).unwrap()["version_policy"], json!({"all": {}}));
    }
}
