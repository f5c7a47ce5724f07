//! A `ModelInferRequest` in its wire format, as the gRPC front's precheck
//! outlines it before prost decodes it. The outline is checked against the
//! fuzzed model (`Model::Grpc`); where prost decodes the same bytes, the outline must say
//! what prost read (the precheck is only as good as that agreement).
#![no_main]

use libfuzzer_sys::fuzz_target;
use maas_fronts::fuzzing::{check_outline, outline};
use maas_fuzz::Model;
use maas_grpc::inference::{InferTensorContents, ModelInferRequest};
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(outlined) = outline(data) else { return };
    let _ = check_outline(&outlined, &Model::Grpc.input_check());
    let Ok(decoded) = ModelInferRequest::decode(data) else { return };
    assert_eq!(outlined.model, decoded.model_name);
    assert_eq!(outlined.version, decoded.model_version);
    assert_eq!(outlined.outputs, decoded.outputs.len());
    assert!(outlined.parameters >= decoded.parameters.len(), "map entries with one key count once in prost");
    let raw_sizes: Vec<usize> = decoded.raw_input_contents.iter().map(|raw| raw.len()).collect();
    assert_eq!(outlined.raw_sizes, raw_sizes);
    assert_eq!(outlined.inputs.len(), decoded.inputs.len());
    for (outlined, decoded) in outlined.inputs.iter().zip(&decoded.inputs) {
        assert_eq!(outlined.name, decoded.name);
        assert_eq!(outlined.datatype, decoded.datatype);
        assert_eq!(outlined.shape, decoded.shape);
        assert_eq!(outlined.elements, decoded.contents.as_ref().map_or(0, elements), "input '{}'", decoded.name);
    }
});

/// Elements over every typed field of `contents`.
fn elements(contents: &InferTensorContents) -> usize {
    contents.bool_contents.len()
        + contents.int_contents.len()
        + contents.int64_contents.len()
        + contents.uint_contents.len()
        + contents.uint64_contents.len()
        + contents.fp32_contents.len()
        + contents.fp64_contents.len()
        + contents.bytes_contents.len()
}
