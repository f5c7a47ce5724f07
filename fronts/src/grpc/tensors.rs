//! Tensors between the gRPC messages and the inference path.
//!
//! Inputs come as raw little-endian bytes (`raw_input_contents`, one entry
//! per input in order) or in the typed `contents` fields; either becomes a
//! [`TensorBytes`] whose length the inference path checks against the
//! shape. Outputs always go back as raw bytes (`raw_output_contents`).

use bytes::{BufMut, Bytes, BytesMut};
use maas_grpc::inference::infer_parameter::ParameterChoice;
use maas_grpc::inference::model_infer_request::InferInputTensor;
use maas_grpc::inference::model_infer_response::InferOutputTensor;
use maas_grpc::inference::{InferTensorContents, ModelInferRequest, ModelInferResponse};
use maas_protocol::validate::element_count;
use maas_protocol::DataType;

use maas_protocol::TensorBytes;
use maas_serving::error::{ServeError, ServeResult};
use maas_serving::infer::{InferRequest, InferResponse};
use maas_serving::input_check::InputCheck;

fn invalid(message: String) -> ServeError {
    ServeError::InvalidRequest(message)
}

/// Turns a request's inputs and parameters into an [`InferRequest`],
/// checking each input's header with `check` before converting its data.
pub fn to_infer_request(request: &mut ModelInferRequest, check: &InputCheck) -> ServeResult<InferRequest> {
    let raw = std::mem::take(&mut request.raw_input_contents);
    if !raw.is_empty() && raw.len() != request.inputs.len() {
        return Err(invalid(format!(
            "raw_input_contents has {} entries for {} inputs; give one per input, in order",
            raw.len(),
            request.inputs.len()
        )));
    }
    let mut raw = raw.into_iter();
    let mut inputs = Vec::with_capacity(request.inputs.len());
    for input in &request.inputs {
        let datatype = DataType::parse(&input.datatype)
            .ok_or_else(|| invalid(format!("invalid datatype '{}' for input '{}'", input.datatype, input.name)))?;
        if input.shape.iter().any(|d| *d < 0) {
            return Err(invalid(format!("invalid shape {:?} for input '{}'", input.shape, input.name)));
        }
        check.header(&input.name, datatype, &input.shape)?;
        let data = match (raw.next(), &input.contents) {
            (Some(_), Some(contents)) if !is_empty(contents) => {
                return Err(invalid(format!("input '{}' has both raw and typed contents", input.name)))
            }
            (Some(bytes), _) => bytes,
            (None, Some(contents)) => typed_bytes(input, datatype, contents)?,
            (None, None) => return Err(invalid(format!("input '{}' has no data", input.name))),
        };
        inputs.push(TensorBytes { name: input.name.clone(), datatype, shape: input.shape.clone(), data });
    }
    let timeout = match request.parameters.get("timeout").and_then(|p| p.parameter_choice.as_ref()) {
        None => None,
        Some(ParameterChoice::Int64Param(us)) if *us >= 0 => Some(std::time::Duration::from_micros(*us as u64)),
        Some(ParameterChoice::Uint64Param(us)) => Some(std::time::Duration::from_micros(*us)),
        Some(other) => return Err(invalid(format!("timeout parameter {other:?} is not microseconds"))),
    };
    let priority = match request.parameters.get("priority").and_then(|p| p.parameter_choice.as_ref()) {
        None => None,
        Some(ParameterChoice::Int64Param(level)) if *level >= 0 => Some(*level as u64),
        Some(ParameterChoice::Uint64Param(level)) => Some(*level),
        Some(other) => return Err(invalid(format!("priority parameter {other:?} is not a whole number"))),
    };
    let id = (!request.id.is_empty()).then(|| request.id.clone());
    Ok(InferRequest { inputs, timeout, id, priority })
}

fn is_empty(contents: &InferTensorContents) -> bool {
    elements(contents) == 0
}

/// Elements over every typed field, as the precheck's outline counts them.
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

/// Little-endian bytes of typed contents; the element count must match the shape.
fn typed_bytes(input: &InferInputTensor, datatype: DataType, contents: &InferTensorContents) -> ServeResult<Bytes> {
    let name = &input.name;
    let expected =
        element_count(&input.shape).ok_or_else(|| invalid(format!("shape of input '{name}' is too large")))?;
    let narrow = |what: &str, ok: bool| {
        if ok {
            Ok(())
        } else {
            Err(invalid(format!("input '{name}': a value in {what} is out of range for {}", datatype.as_str())))
        }
    };
    let mut out = BytesMut::new();
    let count = match datatype {
        DataType::Bool => {
            contents.bool_contents.iter().for_each(|v| out.put_u8(u8::from(*v)));
            contents.bool_contents.len()
        }
        DataType::Int8 | DataType::Int16 | DataType::Int32 => {
            for v in &contents.int_contents {
                match datatype {
                    DataType::Int8 => {
                        narrow("int_contents", i8::try_from(*v).is_ok())?;
                        out.put_i8(*v as i8)
                    }
                    DataType::Int16 => {
                        narrow("int_contents", i16::try_from(*v).is_ok())?;
                        out.put_i16_le(*v as i16)
                    }
                    _ => out.put_i32_le(*v),
                }
            }
            contents.int_contents.len()
        }
        DataType::Int64 => {
            contents.int64_contents.iter().for_each(|v| out.put_i64_le(*v));
            contents.int64_contents.len()
        }
        DataType::Uint8 | DataType::Uint16 | DataType::Uint32 => {
            for v in &contents.uint_contents {
                match datatype {
                    DataType::Uint8 => {
                        narrow("uint_contents", u8::try_from(*v).is_ok())?;
                        out.put_u8(*v as u8)
                    }
                    DataType::Uint16 => {
                        narrow("uint_contents", u16::try_from(*v).is_ok())?;
                        out.put_u16_le(*v as u16)
                    }
                    _ => out.put_u32_le(*v),
                }
            }
            contents.uint_contents.len()
        }
        DataType::Uint64 => {
            contents.uint64_contents.iter().for_each(|v| out.put_u64_le(*v));
            contents.uint64_contents.len()
        }
        DataType::Fp32 => {
            contents.fp32_contents.iter().for_each(|v| out.put_f32_le(*v));
            contents.fp32_contents.len()
        }
        DataType::Fp64 => {
            contents.fp64_contents.iter().for_each(|v| out.put_f64_le(*v));
            contents.fp64_contents.len()
        }
        DataType::Bytes => {
            for element in &contents.bytes_contents {
                let len = u32::try_from(element.len())
                    .map_err(|_| invalid(format!("input '{name}': an element is too long")))?;
                out.put_u32_le(len);
                out.put_slice(element);
            }
            contents.bytes_contents.len()
        }
        DataType::Fp16 | DataType::Bf16 => {
            return Err(invalid(format!(
                "input '{name}': {} has no typed contents field; send it in raw_input_contents",
                datatype.as_str()
            )))
        }
    };
    // Elements in the fields of other datatypes were decoded all the same;
    // they are refused, as the precheck refuses them in large messages.
    let elsewhere = elements(contents) - count;
    if elsewhere != 0 {
        return Err(invalid(format!(
            "input '{name}' has {elsewhere} elements in contents fields that do not hold {}",
            datatype.as_str()
        )));
    }
    if count != expected {
        return Err(invalid(format!(
            "input '{name}' has {count} elements in its contents but its shape {:?} needs {expected}",
            input.shape
        )));
    }
    Ok(out.freeze())
}

/// The answer with the outputs `requested` asks for (all when empty), as
/// raw bytes.
pub fn to_infer_response(answer: InferResponse, id: String, requested: &[String]) -> ServeResult<ModelInferResponse> {
    let InferResponse { model_name, model_version, outputs } = answer;
    let chosen: Vec<TensorBytes> = if requested.is_empty() {
        outputs
    } else {
        let mut by_name: Vec<Option<TensorBytes>> = outputs.into_iter().map(Some).collect();
        requested
            .iter()
            .map(|name| {
                by_name
                    .iter_mut()
                    .find(|o| o.as_ref().is_some_and(|o| &o.name == name))
                    .and_then(Option::take)
                    .ok_or_else(|| invalid(format!("unexpected inference output '{name}' for model '{model_name}'")))
            })
            .collect::<ServeResult<_>>()?
    };
    let mut response =
        ModelInferResponse { model_name, model_version: model_version.to_string(), id, ..Default::default() };
    for output in chosen {
        response.outputs.push(InferOutputTensor {
            name: output.name,
            datatype: output.datatype.as_str().to_string(),
            shape: output.shape,
            parameters: Default::default(),
            contents: None,
        });
        response.raw_output_contents.push(output.data);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model taking one vector of each datatype these tests send.
    fn check() -> InputCheck {
        let inputs: Vec<serde_json::Value> =
            [("a", "INT16"), ("b", "FP32"), ("c", "BOOL"), ("i8", "INT8"), ("h", "FP16")]
                .iter()
                .map(|(name, datatype)| serde_json::json!({"name": name, "datatype": datatype, "shape": [-1]}))
                .collect();
        let config = serde_json::json!({"name": "m", "max_batch_size": 8, "inputs": inputs,
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}]});
        InputCheck::new(std::sync::Arc::new(serde_json::from_value(config).unwrap()))
    }

    fn typed(name: &str, datatype: &str, shape: Vec<i64>, contents: InferTensorContents) -> InferInputTensor {
        InferInputTensor {
            name: name.into(),
            datatype: datatype.into(),
            shape,
            contents: Some(contents),
            ..Default::default()
        }
    }

    #[test]
    fn typed_contents_become_little_endian_bytes() {
        let mut request = ModelInferRequest {
            id: "r".into(),
            inputs: vec![
                typed("a", "INT16", vec![2], InferTensorContents { int_contents: vec![-2, 300], ..Default::default() }),
                typed("b", "FP32", vec![1], InferTensorContents { fp32_contents: vec![1.5], ..Default::default() }),
                typed(
                    "c",
                    "BOOL",
                    vec![2],
                    InferTensorContents { bool_contents: vec![true, false], ..Default::default() },
                ),
            ],
            ..Default::default()
        };
        let parsed = to_infer_request(&mut request, &check()).unwrap();
        let bytes: Vec<&[u8]> = parsed.inputs.iter().map(|t| &t.data[..]).collect();
        assert_eq!(bytes[0], &[0xfe, 0xff, 0x2c, 0x01]);
        assert_eq!(bytes[1], &1.5f32.to_le_bytes());
        assert_eq!(bytes[2], &[1, 0]);
        assert_eq!(parsed.id.as_deref(), Some("r"));
    }

    #[test]
    fn contents_that_do_not_fit_are_refused() {
        let cases = [
            (
                typed("i8", "INT8", vec![1], InferTensorContents { int_contents: vec![200], ..Default::default() }),
                "out of range for INT8",
            ),
            (
                typed("b", "FP32", vec![3], InferTensorContents { fp32_contents: vec![1.0], ..Default::default() }),
                "has 1 elements in its contents but its shape [3] needs 3",
            ),
            (typed("h", "FP16", vec![1], InferTensorContents::default()), "send it in raw_input_contents"),
            (typed("b", "UINT64", vec![1], InferTensorContents::default()), "unexpected datatype UINT64"),
            (typed("a", "FLOAT", vec![1], InferTensorContents::default()), "invalid datatype 'FLOAT'"),
            (typed("a", "FP32", vec![-1], InferTensorContents::default()), "invalid shape"),
        ];
        for (input, expected) in cases {
            let mut request = ModelInferRequest { inputs: vec![input], ..Default::default() };
            let error = to_infer_request(&mut request, &check()).unwrap_err().to_string();
            assert!(error.contains(expected), "{error:?} should contain {expected:?}");
        }
        let mut both = ModelInferRequest {
            inputs: vec![typed(
                "b",
                "FP32",
                vec![1],
                InferTensorContents { fp32_contents: vec![1.0], ..Default::default() },
            )],
            raw_input_contents: vec![vec![0u8; 4].into()],
            ..Default::default()
        };
        assert!(to_infer_request(&mut both, &check()).unwrap_err().to_string().contains("both raw and typed contents"));
    }

    #[test]
    fn contents_in_the_fields_of_other_datatypes_are_refused() {
        // Found with the grpc_tensor fuzz target: an FP32 input with a stray
        // int_contents value was converted (the value ignored), while the
        // precheck of large messages counts it and refuses the request.
        let contents =
            InferTensorContents { fp32_contents: vec![1.0, 2.0], int_contents: vec![5], ..Default::default() };
        let mut request =
            ModelInferRequest { inputs: vec![typed("b", "FP32", vec![2], contents)], ..Default::default() };
        let error = to_infer_request(&mut request, &check()).unwrap_err().to_string();
        assert!(error.contains("input 'b' has 1 elements in contents fields that do not hold FP32"), "{error}");
    }

    #[test]
    fn the_response_holds_the_requested_outputs_in_order() {
        let tensor = |name: &str, data: &'static [u8]| TensorBytes {
            name: name.into(),
            datatype: DataType::Uint8,
            shape: vec![data.len() as i64],
            data: Bytes::from_static(data),
        };
        let answer = || InferResponse {
            model_name: "m".into(),
            model_version: 3,
            outputs: vec![tensor("x", &[1]), tensor("y", &[2, 2])],
        };
        let all = to_infer_response(answer(), "id".into(), &[]).unwrap();
        assert_eq!((all.model_version.as_str(), all.id.as_str()), ("3", "id"));
        assert_eq!(all.raw_output_contents, vec![Bytes::from_static(&[1]), Bytes::from_static(&[2, 2])]);
        let chosen = to_infer_response(answer(), String::new(), &["y".to_string()]).unwrap();
        assert_eq!(chosen.outputs.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(), vec!["y"]);
        assert_eq!(chosen.outputs[0].datatype, "UINT8");
        let unknown = to_infer_response(answer(), String::new(), &["z".to_string()]).unwrap_err();
        assert!(unknown.to_string().contains("unexpected inference output 'z'"));
    }
}
