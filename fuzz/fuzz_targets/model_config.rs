//! A model's `config.json`, as a node's model repository, the management
//! API and the registry read it: parsed, then checked. A configuration the
//! check accepts must survive what follows: Triton's views of it (JSON and
//! gRPC), its rkyv form on the control plane, a JSON round trip, version
//! selection, and a node's warm-up, whose input tensors must have a byte
//! size LibTorch can hold, and which a request of the same shape may send.
#![no_main]

use libfuzzer_sys::fuzz_target;
use maas_fronts::fuzzing::grpc_model_config;
use maas_fronts::triton::ConfigView;
use maas_protocol::validate::byte_len;
use maas_protocol::ModelConfig;
use maas_serving::input_check::InputCheck;

fuzz_target!(|data: &[u8]| {
    let Ok(config) = serde_json::from_slice::<ModelConfig>(data) else { return };
    if config.check().is_err() {
        return;
    }
    let view = ConfigView::of(&config);
    serde_json::to_vec(&view).expect("a config view serializes");
    let _ = grpc_model_config(&view);

    let json = serde_json::to_vec(&config).expect("a config serializes");
    assert_eq!(serde_json::from_slice::<ModelConfig>(&json).expect("a serialized config parses"), config);
    let archived = rkyv::to_bytes::<rkyv::rancor::Error>(&config).expect("a config archives");
    assert_eq!(rkyv::from_bytes::<ModelConfig, rkyv::rancor::Error>(&archived).expect("an archive reads"), config);

    let versions: Vec<u64> = (1..=8).collect();
    assert!(config.version_policy.select(&versions).iter().all(|v| versions.contains(v)));

    if !config.platform.runs_on_nodes() {
        // No node warms it up: an engine or a pipeline of other models.
        return;
    }
    let check = InputCheck::new(config.clone().into());
    for rows in config.warmup_sizes() {
        assert!(rows >= 1 && rows <= config.max_batch_size, "warm-up at {rows} rows");
        for spec in &config.inputs {
            // The node's warm-up input: `rows` rows, variable dimensions at 1.
            let shape: Vec<i64> =
                std::iter::once(i64::from(rows)).chain(spec.shape[1..].iter().map(|&d| d.max(1))).collect();
            let bytes = byte_len(spec.datatype, &shape);
            assert!(
                bytes.is_some_and(|b| i64::try_from(b).is_ok()),
                "input '{}' of shape {shape:?} has no byte size LibTorch can hold",
                spec.name
            );
            if let Err(error) = check.header(&spec.name, spec.datatype, &shape) {
                panic!("a request shaped as the warm-up input '{}' is refused: {error}", spec.name);
            }
        }
    }
});
