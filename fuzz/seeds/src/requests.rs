//! Inference requests for the fuzzed model (`fuzz/model.json`): two rows
//! of every input, as HTTP JSON, HTTP JSON with binary tensors, and gRPC
//! (without the FP16 input, as the gRPC targets' model).

use std::collections::HashMap;

use maas_grpc::inference::infer_parameter::ParameterChoice;
use maas_grpc::inference::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use maas_grpc::inference::{InferParameter, InferTensorContents, ModelInferRequest};
use prost::Message;
use serde_json::{json, Value};

/// The fuzzed model's configuration.
pub const MODEL_CONFIG_JSON: &str = include_str!("../../model.json");

/// Each input's name, datatype, shape and two rows of elements as JSON.
fn inputs() -> Vec<(&'static str, &'static str, Vec<i64>, Value)> {
    vec![
        ("x", "FP32", vec![2, 3], json!([[1.5, -2.0, 0.25], [3.0, 1e-3, -7.5]])),
        ("ids", "INT64", vec![2, 2], json!([[1, -9_007_199_254_740_993i64], [42, 0]])),
        ("mask", "BOOL", vec![2, 2], json!([[true, false], [false, true]])),
        ("small", "INT8", vec![2, 2], json!([[-128, 127], [0, 5]])),
        ("u", "UINT16", vec![2, 2], json!([[65535, 0], [1, 300]])),
        ("h", "FP16", vec![2, 2], json!([[0.5, -1.0], [65504.0, 0.0]])),
    ]
}

/// Little-endian bytes of a tensor's JSON elements.
fn raw(datatype: &str, elements: &Value) -> Vec<u8> {
    let flat: Vec<&Value> =
        elements.as_array().expect("rows").iter().flat_map(|row| row.as_array().expect("row")).collect();
    let mut bytes = Vec::new();
    for value in flat {
        match datatype {
            "FP32" => bytes.extend((value.as_f64().expect("float") as f32).to_le_bytes()),
            "INT64" => bytes.extend(value.as_i64().expect("int").to_le_bytes()),
            "BOOL" => bytes.push(u8::from(value.as_bool().expect("bool"))),
            "INT8" => bytes.extend((value.as_i64().expect("int") as i8).to_le_bytes()),
            "UINT16" => bytes.extend((value.as_u64().expect("uint") as u16).to_le_bytes()),
            "FP16" => bytes.extend(f16_bits(value.as_f64().expect("float")).to_le_bytes()),
            other => unreachable!("no input of {other}"),
        }
    }
    bytes
}

/// The FP16 bits of the few values the seeds use.
fn f16_bits(value: f64) -> u16 {
    match value {
        0.5 => 0x3800,
        -1.0 => 0xbc00,
        65504.0 => 0x7bff,
        0.0 => 0,
        other => unreachable!("no FP16 seed value {other}"),
    }
}

/// JSON bodies: every input with data, with and without parameters and outputs.
pub fn json_bodies() -> Vec<(&'static str, String)> {
    let with_data: Vec<Value> = inputs()
        .into_iter()
        .map(|(name, datatype, shape, data)| json!({"name": name, "datatype": datatype, "shape": shape, "data": data}))
        .collect();
    let flat: Vec<Value> = inputs()
        .into_iter()
        .map(|(name, datatype, shape, data)| {
            let flat: Vec<Value> =
                data.as_array().expect("rows").iter().flat_map(|r| r.as_array().expect("row").clone()).collect();
            json!({"name": name, "datatype": datatype, "shape": shape, "data": flat})
        })
        .collect();
    let full = json!({
        "id": "request-1",
        "parameters": {"timeout": 1500, "priority": 2, "binary_data_output": false},
        "inputs": with_data,
        "outputs": [{"name": "y", "parameters": {"binary_data": true}}, {"name": "z"}]
    });
    vec![
        ("full.json", full.to_string()),
        ("flat.json", json!({"inputs": flat, "outputs": []}).to_string()),
        (
            "one-input.json",
            json!({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1]}]}).to_string(),
        ),
    ]
}

/// Binary bodies, each after its two-byte header length: every input as
/// raw bytes, and raw bytes mixed with JSON data.
pub fn binary_bodies() -> Vec<(&'static str, Vec<u8>)> {
    let mut all_raw = Vec::new();
    let mut mixed_raw = Vec::new();
    let mut all_inputs = Vec::new();
    let mut mixed_inputs = Vec::new();
    for (index, (name, datatype, shape, data)) in inputs().into_iter().enumerate() {
        let bytes = raw(datatype, &data);
        all_inputs.push(json!({"name": name, "datatype": datatype, "shape": shape,
                               "parameters": {"binary_data_size": bytes.len()}}));
        if index % 2 == 0 {
            mixed_inputs.push(json!({"name": name, "datatype": datatype, "shape": shape,
                                     "parameters": {"binary_data_size": bytes.len()}}));
            mixed_raw.extend_from_slice(&bytes);
        } else {
            mixed_inputs.push(json!({"name": name, "datatype": datatype, "shape": shape, "data": data}));
        }
        all_raw.extend(bytes);
    }
    let all = json!({"id": "binary-1", "inputs": all_inputs,
                     "parameters": {"binary_data_output": true},
                     "outputs": [{"name": "z", "parameters": {"binary_data": false}}]});
    let mixed = json!({"inputs": mixed_inputs});
    vec![("all-binary", with_length(&all, &all_raw)), ("mixed", with_length(&mixed, &mixed_raw))]
}

fn with_length(header: &Value, binary: &[u8]) -> Vec<u8> {
    let json = header.to_string();
    let mut body = u16::try_from(json.len()).expect("a seed's JSON is short").to_le_bytes().to_vec();
    body.extend_from_slice(json.as_bytes());
    body.extend_from_slice(binary);
    body
}

/// gRPC messages for the model without its FP16 input, which gRPC has no
/// typed field for: every input as raw contents, and in typed contents.
pub fn grpc_messages() -> Vec<(&'static str, Vec<u8>)> {
    let tensor = |name: &str, datatype: &str, shape: Vec<i64>, contents| InferInputTensor {
        name: name.into(),
        datatype: datatype.into(),
        shape,
        contents,
        ..Default::default()
    };
    let outputs = vec![
        InferRequestedOutputTensor { name: "y".into(), ..Default::default() },
        InferRequestedOutputTensor { name: "z".into(), ..Default::default() },
    ];
    let parameters = HashMap::from([
        ("timeout".to_string(), InferParameter { parameter_choice: Some(ParameterChoice::Int64Param(2000)) }),
        ("priority".to_string(), InferParameter { parameter_choice: Some(ParameterChoice::Uint64Param(1)) }),
    ]);
    let grpc_inputs: Vec<_> = inputs().into_iter().filter(|(_, datatype, ..)| *datatype != "FP16").collect();
    let raw_request = ModelInferRequest {
        model_name: "fuzzed".into(),
        model_version: "1".into(),
        id: "grpc-1".into(),
        parameters: parameters.clone(),
        inputs: grpc_inputs
            .iter()
            .map(|(name, datatype, shape, _)| tensor(name, datatype, shape.clone(), None))
            .collect(),
        outputs: outputs.clone(),
        raw_input_contents: grpc_inputs.iter().map(|(_, datatype, _, data)| raw(datatype, data).into()).collect(),
    };
    let typed_inputs = grpc_inputs
        .into_iter()
        .filter_map(|(name, datatype, shape, data)| {
            let flat: Vec<Value> =
                data.as_array().expect("rows").iter().flat_map(|r| r.as_array().expect("row").clone()).collect();
            let mut contents = InferTensorContents::default();
            match datatype {
                "FP32" => contents.fp32_contents = flat.iter().map(|v| v.as_f64().expect("float") as f32).collect(),
                "INT64" => contents.int64_contents = flat.iter().map(|v| v.as_i64().expect("int")).collect(),
                "BOOL" => contents.bool_contents = flat.iter().map(|v| v.as_bool().expect("bool")).collect(),
                "INT8" => contents.int_contents = flat.iter().map(|v| v.as_i64().expect("int") as i32).collect(),
                "UINT16" => contents.uint_contents = flat.iter().map(|v| v.as_u64().expect("uint") as u32).collect(),
                _ => return None,
            }
            Some(tensor(name, datatype, shape, Some(contents)))
        })
        .collect();
    let typed_request = ModelInferRequest {
        model_name: "fuzzed".into(),
        inputs: typed_inputs,
        outputs,
        parameters,
        ..Default::default()
    };
    vec![("raw.pb", raw_request.encode_to_vec()), ("typed.pb", typed_request.encode_to_vec())]
}
