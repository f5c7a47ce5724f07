//! Parsing an inference request body.
//!
//! A body is JSON, or JSON followed by raw tensors when the
//! `Inference-Header-Content-Length` header says where the JSON ends. Inputs
//! with `"parameters": {"binary_data_size": N}` take the next N raw bytes,
//! in input order, as slices of the body (no copy). Each input's name,
//! datatype and shape are checked against the model before its data is
//! decoded, so a tensor the model would refuse costs no memory.

use std::time::Duration;

use bytes::Bytes;
use maas_protocol::validate::{element_count, shape_string};
use maas_protocol::DataType;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::json_data;
use maas_protocol::TensorBytes;
use maas_serving::error::{ServeError, ServeResult};
use maas_serving::infer::{check_unique_outputs, InferRequest};
use maas_serving::input_check::InputCheck;

/// An output the client asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestedOutput {
    /// Output name.
    pub name: String,
    /// Its `binary_data` parameter, if given.
    pub binary: Option<bool>,
}

/// Which outputs to return and how.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutputSelection {
    /// The `outputs` list, or `None` for every output.
    pub requested: Option<Vec<RequestedOutput>>,
    /// The `binary_data_output` request parameter.
    pub binary_by_default: bool,
}

/// A parsed body.
#[derive(Debug)]
pub struct ParsedRequest {
    /// The request's `id`, echoed in the response.
    pub id: Option<String>,
    /// Inputs and timeout.
    pub request: InferRequest,
    /// Output choices.
    pub outputs: OutputSelection,
}

#[derive(Deserialize)]
struct RequestJson<'a> {
    id: Option<String>,
    #[serde(default)]
    parameters: Map<String, Value>,
    #[serde(borrow)]
    inputs: Vec<InputJson<'a>>,
    outputs: Option<Vec<OutputJson>>,
}

#[derive(Deserialize)]
struct InputJson<'a> {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    parameters: Map<String, Value>,
    /// Kept as text until the datatype and shape are known, then parsed
    /// straight into the tensor's bytes.
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct OutputJson {
    name: String,
    #[serde(default)]
    parameters: Map<String, Value>,
}

fn invalid(message: String) -> ServeError {
    ServeError::InvalidRequest(message)
}

/// Parses a body for the model `check` knows; `header_length` is the
/// `Inference-Header-Content-Length` value.
pub fn parse(header_length: Option<&str>, body: Bytes, check: &InputCheck) -> ServeResult<ParsedRequest> {
    let json_len = match header_length {
        None => body.len(),
        Some(text) => {
            let len: usize = text
                .trim()
                .parse()
                .map_err(|_| invalid(format!("Inference-Header-Content-Length '{text}' is not a byte count")))?;
            if len > body.len() {
                return Err(invalid(format!(
                    "Inference-Header-Content-Length ({len}) is larger than the request body ({} bytes)",
                    body.len()
                )));
            }
            len
        }
    };
    let header: RequestJson = serde_json::from_slice(&body[..json_len])
        .map_err(|e| invalid(format!("failed to parse the request JSON: {e}")))?;
    let mut binary = body.slice(json_len..);
    let binary_allowed = header_length.is_some();

    let mut inputs = Vec::with_capacity(header.inputs.len());
    for input in header.inputs {
        let datatype = DataType::parse(&input.datatype)
            .ok_or_else(|| invalid(format!("invalid datatype '{}' for input '{}'", input.datatype, input.name)))?;
        let expected = element_count(&input.shape).ok_or_else(|| {
            invalid(format!("invalid shape {} for input '{}'", shape_string(&input.shape), input.name))
        })?;
        check.header(&input.name, datatype, &input.shape)?;
        let data = match (input.parameters.get("binary_data_size"), input.data) {
            (Some(_), Some(_)) => {
                return Err(invalid(format!("input '{}' has both binary_data_size and data", input.name)));
            }
            (Some(size), None) => {
                if !binary_allowed {
                    return Err(invalid(format!(
                        "input '{}' has binary data but the request has no Inference-Header-Content-Length header",
                        input.name
                    )));
                }
                let size = size
                    .as_u64()
                    .ok_or_else(|| invalid(format!("binary_data_size of input '{}' is not a byte count", input.name)))?
                    as usize;
                if size > binary.len() {
                    return Err(invalid(format!(
                        "truncated binary body: input '{}' needs {size} bytes, {} remain",
                        input.name,
                        binary.len()
                    )));
                }
                binary.split_to(size)
            }
            (None, Some(data)) => {
                let (bytes, count) = json_data::to_bytes(&input.name, datatype, data, expected).map_err(invalid)?;
                if count != expected {
                    return Err(invalid(format!(
                        "input '{}' has {count} elements, but its shape {} needs {expected}",
                        input.name,
                        shape_string(&input.shape)
                    )));
                }
                Bytes::from(bytes)
            }
            (None, None) => return Err(invalid(format!("input '{}' has no data", input.name))),
        };
        inputs.push(TensorBytes { name: input.name, datatype, shape: input.shape, data });
    }
    if !binary.is_empty() {
        return Err(invalid(format!("{} bytes of binary data follow the last binary input", binary.len())));
    }

    let binary_by_default = bool_parameter(&header.parameters, "binary_data_output")?.unwrap_or(false);
    let timeout = match header.parameters.get("timeout") {
        None => None,
        Some(value) => Some(Duration::from_micros(
            value.as_u64().ok_or_else(|| invalid(format!("timeout parameter {value} is not microseconds")))?,
        )),
    };
    let priority = match header.parameters.get("priority") {
        None => None,
        Some(value) => {
            Some(value.as_u64().ok_or_else(|| invalid(format!("priority parameter {value} is not a whole number")))?)
        }
    };
    // An empty list asks for nothing in particular: every output, as Triton
    // answers it.
    let requested = match header.outputs.filter(|outputs| !outputs.is_empty()) {
        None => None,
        Some(outputs) => Some(
            outputs
                .into_iter()
                .map(|output| {
                    if output.parameters.contains_key("classification") {
                        return Err(invalid(format!(
                            "output '{}': the classification extension is not supported",
                            output.name
                        )));
                    }
                    let binary = bool_parameter(&output.parameters, "binary_data")?;
                    Ok(RequestedOutput { name: output.name, binary })
                })
                .collect::<ServeResult<Vec<_>>>()?,
        ),
    };
    if let Some(requested) = &requested {
        check_unique_outputs(requested.iter().map(|o| o.name.as_str()))?;
    }
    Ok(ParsedRequest {
        id: header.id.clone(),
        request: InferRequest { inputs, timeout, id: header.id, priority },
        outputs: OutputSelection { requested, binary_by_default },
    })
}

fn bool_parameter(parameters: &Map<String, Value>, name: &str) -> ServeResult<Option<bool>> {
    match parameters.get(name) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(invalid(format!("parameter '{name}' must be true or false, got {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model whose inputs take what these tests send: `x` FP32 of any
    /// width, `a` INT32 and `b` UINT8 vectors.
    fn check() -> InputCheck {
        InputCheck::new(std::sync::Arc::new(
            serde_json::from_value(serde_json::json!({
                "name": "m", "max_batch_size": 8,
                "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, -1]},
                           {"name": "a", "datatype": "INT32", "shape": [-1]},
                           {"name": "b", "datatype": "UINT8", "shape": [-1]}],
                "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 1]}]
            }))
            .unwrap(),
        ))
    }

    fn parse(header_length: Option<&str>, body: Bytes) -> ServeResult<ParsedRequest> {
        super::parse(header_length, body, &check())
    }

    fn body(json: &str, binary: &[u8]) -> (String, Bytes) {
        let mut bytes = json.as_bytes().to_vec();
        bytes.extend_from_slice(binary);
        (json.len().to_string(), Bytes::from(bytes))
    }

    #[test]
    fn json_inputs() {
        let parsed = parse(
            None,
            Bytes::from_static(br#"{"id":"r1","inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[1,2]}]}"#),
        )
        .unwrap();
        assert_eq!(parsed.id.as_deref(), Some("r1"));
        assert_eq!(parsed.request.inputs[0].data.len(), 8);
        assert_eq!(parsed.outputs, OutputSelection::default());
        let every = parse(
            None,
            Bytes::from_static(br#"{"inputs":[{"name":"x","shape":[1,1],"datatype":"FP32","data":[1]}],"outputs":[]}"#),
        )
        .unwrap();
        assert_eq!(every.outputs, OutputSelection::default(), "an empty outputs list selects every output");
    }

    #[test]
    fn binary_inputs_are_slices_in_order() {
        let json = r#"{"inputs":[{"name":"a","shape":[1],"datatype":"INT32","parameters":{"binary_data_size":4}},
                      {"name":"b","shape":[2],"datatype":"UINT8","parameters":{"binary_data_size":2}}],
                      "parameters":{"binary_data_output":true,"timeout":1500},
                      "outputs":[{"name":"y","parameters":{"binary_data":false}}]}"#;
        let (len, bytes) = body(json, &[1, 0, 0, 0, 7, 8]);
        let parsed = parse(Some(&len), bytes).unwrap();
        assert_eq!(&parsed.request.inputs[0].data[..], &[1, 0, 0, 0]);
        assert_eq!(&parsed.request.inputs[1].data[..], &[7, 8]);
        assert_eq!(parsed.request.timeout, Some(Duration::from_micros(1500)));
        assert!(parsed.outputs.binary_by_default);
        assert_eq!(parsed.outputs.requested.unwrap()[0].binary, Some(false));
    }

    #[test]
    fn malformed_bodies_name_the_problem() {
        let cases: Vec<(Option<&str>, &[u8], &str)> = vec![
            (None, b"{not json", "failed to parse the request JSON"),
            (Some("500"), b"{}", "larger than the request body"),
            (Some("abc"), b"{}", "is not a byte count"),
            (None, br#"{"inputs":[{"name":"x","shape":[1],"datatype":"FLOAT","data":[1]}]}"#, "invalid datatype 'FLOAT'"),
            (None, br#"{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1]}]}"#, "has 1 elements, but its shape [1,3] needs 3"),
            (None, br#"{"inputs":[{"name":"x","shape":[1,1],"datatype":"FP32"}]}"#, "input 'x' has no data"),
            (None, br#"{"inputs":[{"name":"x","shape":[1,1],"datatype":"FP32","parameters":{"binary_data_size":4}}]}"#, "no Inference-Header-Content-Length"),
            (None, br#"{"inputs":[{"name":"x","shape":[1,1],"datatype":"FP32","data":[1]}],"outputs":[{"name":"y"},{"name":"z"},{"name":"y"}]}"#, "output 'y' is requested more than once"),
            (None, br#"{"inputs":[{"name":"x","shape":[1,1],"datatype":"FP64","data":[1]}]}"#, "unexpected datatype FP64 for input 'x'"),
            (None, br#"{"inputs":[{"name":"w","shape":[1,1],"datatype":"FP32","data":[1]}]}"#, "unexpected inference input 'w'"),
            (None, br#"{"inputs":[{"name":"x","shape":[9,1],"datatype":"FP32","data":[1]}]}"#, "exceeds the maximum batch size 8"),
        ];
        for (header, body, expected) in cases {
            let err = parse(header, Bytes::from(body.to_vec())).unwrap_err().to_string();
            assert!(err.contains(expected), "{err:?} should contain {expected:?}");
        }
    }

    #[test]
    fn truncated_and_extra_binary_data_are_refused() {
        let json = r#"{"inputs":[{"name":"a","shape":[2],"datatype":"INT32","parameters":{"binary_data_size":8}}]}"#;
        let (len, bytes) = body(json, &[0; 5]);
        let err = parse(Some(&len), bytes).unwrap_err().to_string();
        assert!(err.contains("truncated binary body: input 'a' needs 8 bytes, 5 remain"), "{err}");
        let (len, bytes) = body(json, &[0; 9]);
        let err = parse(Some(&len), bytes).unwrap_err().to_string();
        assert!(err.contains("1 bytes of binary data follow"), "{err}");
    }
}
