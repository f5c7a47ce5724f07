//! Model configuration and statistics as gRPC messages.

use maas_grpc::inference::model_config::SchedulingChoice;
use maas_grpc::inference::model_instance_group::Kind;
use maas_grpc::inference::model_input::Format;
use maas_grpc::inference::model_version_policy::{Latest, PolicyChoice};
use maas_grpc::inference::{
    self as pb, InferBatchStatistics, InferStatistics, ModelDynamicBatching, ModelInput, ModelInstanceGroup,
    ModelOutput, ModelStatistics, ModelVersionPolicy, StatisticDuration,
};
use maas_protocol::{DataType, ModelConfig};

use crate::monitor::stats::{StatsSnapshot, Tally};

fn data_type(datatype: DataType) -> pb::DataType {
    match datatype {
        DataType::Bool => pb::DataType::TypeBool,
        DataType::Uint8 => pb::DataType::TypeUint8,
        DataType::Uint16 => pb::DataType::TypeUint16,
        DataType::Uint32 => pb::DataType::TypeUint32,
        DataType::Uint64 => pb::DataType::TypeUint64,
        DataType::Int8 => pb::DataType::TypeInt8,
        DataType::Int16 => pb::DataType::TypeInt16,
        DataType::Int32 => pb::DataType::TypeInt32,
        DataType::Int64 => pb::DataType::TypeInt64,
        DataType::Fp16 => pb::DataType::TypeFp16,
        DataType::Bf16 => pb::DataType::TypeBf16,
        DataType::Fp32 => pb::DataType::TypeFp32,
        DataType::Fp64 => pb::DataType::TypeFp64,
        DataType::Bytes => pb::DataType::TypeString,
    }
}

/// The configuration as Triton's `ModelConfig`: dims leave out the batch
/// dimension, as Triton's do when `max_batch_size > 0` (the same content as
/// the HTTP `/config` route).
pub fn model_config(config: &ModelConfig) -> pb::ModelConfig {
    pb::ModelConfig {
        name: config.name.clone(),
        platform: "pytorch_libtorch".into(),
        backend: "pytorch".into(),
        version_policy: Some(ModelVersionPolicy { policy_choice: Some(PolicyChoice::Latest(Latest { num_versions: 1 })) }),
        max_batch_size: i32::try_from(config.max_batch_size).unwrap_or(i32::MAX),
        input: config
            .inputs
            .iter()
            .map(|spec| ModelInput {
                name: spec.name.clone(),
                data_type: data_type(spec.datatype).into(),
                format: Format::None.into(),
                dims: spec.shape[1..].to_vec(),
            })
            .collect(),
        output: config
            .outputs
            .iter()
            .map(|spec| ModelOutput { name: spec.name.clone(), data_type: data_type(spec.datatype).into(), dims: spec.shape[1..].to_vec() })
            .collect(),
        instance_group: vec![ModelInstanceGroup {
            name: format!("{}_0", config.name),
            count: i32::try_from(config.instance_count).unwrap_or(1),
            gpus: vec![],
            kind: Kind::Auto.into(),
        }],
        default_model_filename: "model.pt".into(),
        metric_tags: Default::default(),
        scheduling_choice: Some(SchedulingChoice::DynamicBatching(ModelDynamicBatching {
            preferred_batch_size: vec![i32::try_from(config.max_batch_size).unwrap_or(i32::MAX)],
            max_queue_delay_microseconds: config.max_queue_delay_us,
        })),
    }
}

fn duration(tally: Tally) -> Option<StatisticDuration> {
    Some(StatisticDuration { count: tally.count, ns: tally.ns })
}

/// One version's statistics as Triton's `ModelStatistics`.
pub fn model_statistics(name: &str, version: u64, stats: &StatsSnapshot) -> ModelStatistics {
    ModelStatistics {
        name: name.to_string(),
        version: version.to_string(),
        last_inference: stats.last_inference_ms,
        inference_count: stats.inference_count,
        execution_count: stats.execution_count,
        inference_stats: Some(InferStatistics {
            success: duration(stats.success),
            fail: duration(stats.fail),
            queue: duration(stats.queue),
            compute_input: duration(stats.compute_input),
            compute_infer: duration(stats.compute_infer),
            compute_output: duration(stats.compute_output),
            cache_hit: duration(Tally::default()),
            cache_miss: duration(Tally::default()),
        }),
        batch_stats: stats
            .batches
            .iter()
            .map(|(size, [input, infer, output])| InferBatchStatistics {
                batch_size: *size,
                compute_input: duration(*input),
                compute_infer: duration(*infer),
                compute_output: duration(*output),
            })
            .collect(),
    }
}
