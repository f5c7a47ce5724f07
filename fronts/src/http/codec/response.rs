//! Encoding an inference response as JSON, with binary outputs after it.

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;

use super::json_data::JsonData;
use super::request::OutputSelection;
use maas_protocol::TensorBytes;
use maas_serving::error::{ServeError, ServeResult};
use maas_serving::infer::InferResponse;

/// An encoded response body.
pub struct EncodedResponse {
    /// The whole body.
    pub body: Bytes,
    /// Length of the JSON part when binary outputs follow it.
    pub json_len: Option<usize>,
}

#[derive(Serialize)]
struct ResponseJson<'a> {
    model_name: &'a str,
    model_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    outputs: Vec<OutputJson<'a>>,
}

#[derive(Serialize)]
struct OutputJson<'a> {
    name: &'a str,
    datatype: &'static str,
    shape: &'a [i64],
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<BinaryParameters>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<JsonData<'a>>,
}

#[derive(Serialize)]
struct BinaryParameters {
    binary_data_size: usize,
}

/// Encodes the outputs `selection` asks for, in its order (configuration
/// order when it names none).
pub fn encode(response: &InferResponse, id: Option<&str>, selection: &OutputSelection) -> ServeResult<EncodedResponse> {
    let chosen: Vec<(&TensorBytes, bool)> = match &selection.requested {
        None => response.outputs.iter().map(|o| (o, selection.binary_by_default)).collect(),
        Some(requested) => requested
            .iter()
            .map(|wanted| {
                let output = response.outputs.iter().find(|o| o.name == wanted.name).ok_or_else(|| {
                    ServeError::InvalidRequest(format!(
                        "unexpected inference output '{}' for model '{}'",
                        wanted.name, response.model_name
                    ))
                })?;
                Ok((output, wanted.binary.unwrap_or(selection.binary_by_default)))
            })
            .collect::<ServeResult<_>>()?,
    };
    let header = ResponseJson {
        model_name: &response.model_name,
        model_version: response.model_version.to_string(),
        id,
        outputs: chosen
            .iter()
            .map(|&(output, binary)| OutputJson {
                name: &output.name,
                datatype: output.datatype.as_str(),
                shape: &output.shape,
                parameters: binary.then_some(BinaryParameters { binary_data_size: output.data.len() }),
                data: (!binary).then_some(JsonData { datatype: output.datatype, bytes: &output.data }),
            })
            .collect(),
    };
    let any_binary = chosen.iter().any(|&(_, binary)| binary);
    let binary_len: usize = chosen.iter().filter(|&&(_, binary)| binary).map(|(o, _)| o.data.len()).sum();
    let mut body = BytesMut::with_capacity(256 + binary_len).writer();
    serde_json::to_writer(&mut body, &header).map_err(|e| ServeError::Internal(format!("encoding a response: {e}")))?;
    let mut body = body.into_inner();
    let json_len = body.len();
    for (output, binary) in &chosen {
        if *binary {
            body.extend_from_slice(&output.data);
        }
    }
    Ok(EncodedResponse { body: body.freeze(), json_len: any_binary.then_some(json_len) })
}

#[cfg(test)]
mod tests {
    use maas_protocol::DataType;

    use super::*;
    use crate::http::codec::request::RequestedOutput;

    fn answer() -> InferResponse {
        let tensor = |name: &str, values: &[f32]| TensorBytes {
            name: name.into(),
            datatype: DataType::Fp32,
            shape: vec![1, values.len() as i64],
            data: values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>().into(),
        };
        InferResponse {
            model_name: "m".into(),
            model_version: 2,
            outputs: vec![tensor("a", &[1.5]), tensor("b", &[2.0, 3.0])],
        }
    }

    fn json_part(encoded: &EncodedResponse) -> serde_json::Value {
        let end = encoded.json_len.unwrap_or(encoded.body.len());
        serde_json::from_slice(&encoded.body[..end]).unwrap()
    }

    #[test]
    fn json_by_default_with_every_output() {
        let encoded = encode(&answer(), Some("r1"), &OutputSelection::default()).unwrap();
        assert_eq!(encoded.json_len, None);
        assert_eq!(
            json_part(&encoded),
            serde_json::json!({"model_name": "m", "model_version": "2", "id": "r1", "outputs": [
                {"name": "a", "datatype": "FP32", "shape": [1, 1], "data": [1.5]},
                {"name": "b", "datatype": "FP32", "shape": [1, 2], "data": [2.0, 3.0]}]})
        );
    }

    #[test]
    fn binary_outputs_follow_the_json_in_the_requested_order() {
        let selection = OutputSelection {
            requested: Some(vec![
                RequestedOutput { name: "b".into(), binary: None },
                RequestedOutput { name: "a".into(), binary: Some(false) },
            ]),
            binary_by_default: true,
        };
        let encoded = encode(&answer(), None, &selection).unwrap();
        let json = json_part(&encoded);
        assert_eq!(json["outputs"][0]["parameters"], serde_json::json!({"binary_data_size": 8}));
        assert_eq!(json["outputs"][1]["data"], serde_json::json!([1.5]));
        let tail = &encoded.body[encoded.json_len.unwrap()..];
        assert_eq!(tail, [2.0f32.to_le_bytes(), 3.0f32.to_le_bytes()].concat());
        let unknown = OutputSelection {
            requested: Some(vec![RequestedOutput { name: "z".into(), binary: None }]),
            binary_by_default: false,
        };
        assert!(encode(&answer(), None, &unknown).is_err());
    }
}
