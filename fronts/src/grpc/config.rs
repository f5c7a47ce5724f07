//! Triton's view of a version ([`crate::triton`]) as gRPC messages.

use maas_grpc::inference::model_config::SchedulingChoice;
use maas_grpc::inference::model_input::Format;
use maas_grpc::inference::model_instance_group::Kind;
use maas_grpc::inference::model_version_policy::{All, Latest, PolicyChoice, Specific};
use maas_grpc::inference::{
    self as pb, InferBatchStatistics, InferStatistics, ModelDynamicBatching, ModelInput, ModelInstanceGroup,
    ModelOutput, ModelStatistics, ModelVersionPolicy, StatisticDuration,
};
use maas_protocol::VersionPolicy;

use crate::triton::{ConfigView, DurationView, StatisticsView, TensorView};

fn data_type(name: &str) -> i32 {
    pb::DataType::from_str_name(name).unwrap_or(pb::DataType::TypeInvalid).into()
}

fn version_policy(policy: &VersionPolicy) -> ModelVersionPolicy {
    let choice = match policy {
        VersionPolicy::Latest { num_versions } => PolicyChoice::Latest(Latest { num_versions: *num_versions }),
        VersionPolicy::All {} => PolicyChoice::All(All {}),
        VersionPolicy::Specific { versions } => PolicyChoice::Specific(Specific {
            versions: versions.iter().map(|v| i64::try_from(*v).unwrap_or(i64::MAX)).collect(),
        }),
    };
    ModelVersionPolicy { policy_choice: Some(choice) }
}

fn to_i32(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// The configuration view as Triton's `ModelConfig`.
pub fn model_config(view: &ConfigView) -> pb::ModelConfig {
    let input = |t: &TensorView| ModelInput {
        name: t.name.clone(),
        data_type: data_type(t.data_type),
        format: Format::None.into(),
        dims: t.dims.clone(),
    };
    let output =
        |t: &TensorView| ModelOutput { name: t.name.clone(), data_type: data_type(t.data_type), dims: t.dims.clone() };
    pb::ModelConfig {
        name: view.name.clone(),
        platform: view.platform.into(),
        backend: view.backend.into(),
        version_policy: Some(version_policy(&view.version_policy)),
        max_batch_size: to_i32(view.max_batch_size),
        input: view.input.iter().map(input).collect(),
        output: view.output.iter().map(output).collect(),
        instance_group: view
            .instance_group
            .iter()
            .map(|group| ModelInstanceGroup {
                name: group.name.clone(),
                count: to_i32(group.count),
                gpus: vec![],
                kind: Kind::from_str_name(group.kind).unwrap_or(Kind::Auto).into(),
            })
            .collect(),
        default_model_filename: view.default_model_filename.into(),
        metric_tags: Default::default(),
        scheduling_choice: Some(SchedulingChoice::DynamicBatching(ModelDynamicBatching {
            preferred_batch_size: view.dynamic_batching.preferred_batch_size.iter().copied().map(to_i32).collect(),
            max_queue_delay_microseconds: view.dynamic_batching.max_queue_delay_microseconds,
        })),
    }
}

fn duration(view: DurationView) -> Option<StatisticDuration> {
    Some(StatisticDuration { count: view.count, ns: view.ns })
}

/// The statistics view as Triton's `ModelStatistics`.
pub fn model_statistics(view: &StatisticsView) -> ModelStatistics {
    let stats = &view.inference_stats;
    ModelStatistics {
        name: view.name.clone(),
        version: view.version.clone(),
        last_inference: view.last_inference,
        inference_count: view.inference_count,
        execution_count: view.execution_count,
        inference_stats: Some(InferStatistics {
            success: duration(stats.success),
            fail: duration(stats.fail),
            queue: duration(stats.queue),
            compute_input: duration(stats.compute_input),
            compute_infer: duration(stats.compute_infer),
            compute_output: duration(stats.compute_output),
            cache_hit: duration(stats.cache_hit),
            cache_miss: duration(stats.cache_miss),
        }),
        batch_stats: view
            .batch_stats
            .iter()
            .map(|batch| InferBatchStatistics {
                batch_size: batch.batch_size,
                compute_input: duration(batch.compute_input),
                compute_infer: duration(batch.compute_infer),
                compute_output: duration(batch.compute_output),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use maas_protocol::ModelConfig;
    use serde_json::json;

    use super::*;

    /// The gRPC message says what the HTTP JSON says, policy included.
    #[test]
    fn the_grpc_config_matches_the_view() {
        let config: ModelConfig = serde_json::from_value(json!({
            "name": "clf", "max_batch_size": 8, "version_policy": {"specific": {"versions": [2, 5]}},
            "inputs": [{"name": "x", "datatype": "BF16", "shape": [-1, 3]}],
            "outputs": [{"name": "y", "datatype": "BYTES", "shape": [-1]}]
        }))
        .unwrap();
        let message = model_config(&ConfigView::of(&config));
        assert_eq!(
            message.version_policy.unwrap().policy_choice,
            Some(PolicyChoice::Specific(Specific { versions: vec![2, 5] }))
        );
        assert_eq!(message.input[0].data_type, i32::from(pb::DataType::TypeBf16));
        assert_eq!(message.input[0].dims, vec![3]);
        assert_eq!(message.output[0].data_type, i32::from(pb::DataType::TypeString));
        assert_eq!(message.instance_group[0].kind, i32::from(Kind::Auto));
        assert_eq!(message.platform, "pytorch_libtorch");
    }
}
