//! Building inference bodies and checking answers against references.

use anyhow::{bail, Context, Result};
use half::{bf16, f16};
use serde_json::{json, Value};

use crate::reference::JsonTensor;

/// The header giving the JSON length of a binary body.
pub const HEADER_LENGTH: &str = "Inference-Header-Content-Length";

/// A JSON body for `inputs`.
pub fn json_body(inputs: &[JsonTensor], id: Option<&str>) -> Value {
    let mut body = json!({
        "inputs": inputs.iter().map(|t| json!({
            "name": t.name, "shape": t.shape, "datatype": t.datatype, "data": t.data,
        })).collect::<Vec<_>>(),
    });
    if let Some(id) = id {
        body["id"] = json!(id);
    }
    body
}

/// A binary body for `inputs`, asking for binary outputs when
/// `binary_outputs`; returns the body and its JSON length.
pub fn binary_body(inputs: &[JsonTensor], binary_outputs: bool) -> (Vec<u8>, usize) {
    let raw: Vec<Vec<u8>> = inputs.iter().map(|t| to_le_bytes(&t.datatype, &t.data)).collect();
    let header = json!({
        "inputs": inputs.iter().zip(&raw).map(|(t, bytes)| json!({
            "name": t.name, "shape": t.shape, "datatype": t.datatype,
            "parameters": {"binary_data_size": bytes.len()},
        })).collect::<Vec<_>>(),
        "parameters": {"binary_data_output": binary_outputs},
    });
    let mut body = serde_json::to_vec(&header).expect("JSON");
    let json_len = body.len();
    for bytes in raw {
        body.extend_from_slice(&bytes);
    }
    (body, json_len)
}

/// Encodes JSON elements as raw little-endian bytes of `datatype`.
pub fn to_le_bytes(datatype: &str, data: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in data {
        match datatype {
            "BOOL" => out.push(u8::from(v.as_bool().expect("bool"))),
            "UINT8" => out.push(v.as_u64().expect("u8") as u8),
            "INT8" => out.extend_from_slice(&(v.as_i64().expect("i8") as i8).to_le_bytes()),
            "INT16" => out.extend_from_slice(&(v.as_i64().expect("i16") as i16).to_le_bytes()),
            "INT32" => out.extend_from_slice(&(v.as_i64().expect("i32") as i32).to_le_bytes()),
            "INT64" => out.extend_from_slice(&v.as_i64().expect("i64").to_le_bytes()),
            "FP16" => out.extend_from_slice(&f16::from_f64(v.as_f64().expect("f16")).to_le_bytes()),
            "BF16" => out.extend_from_slice(&bf16::from_f64(v.as_f64().expect("bf16")).to_le_bytes()),
            "FP32" => out.extend_from_slice(&(v.as_f64().expect("f32") as f32).to_le_bytes()),
            "FP64" => out.extend_from_slice(&v.as_f64().expect("f64").to_le_bytes()),
            other => panic!("no test encoding for {other}"),
        }
    }
    out
}

/// Decodes raw little-endian bytes of `datatype` into JSON elements.
pub fn from_le_bytes(datatype: &str, bytes: &[u8]) -> Result<Vec<Value>> {
    let size = match datatype {
        "BOOL" | "UINT8" | "INT8" => 1,
        "INT16" | "FP16" | "BF16" => 2,
        "INT32" | "FP32" => 4,
        "INT64" | "FP64" => 8,
        other => bail!("no test decoding for {other}"),
    };
    if !bytes.len().is_multiple_of(size) {
        bail!("{} bytes is not a whole number of {datatype} elements", bytes.len());
    }
    Ok(bytes
        .chunks_exact(size)
        .map(|c| match datatype {
            "BOOL" => json!(c[0] != 0),
            "UINT8" => json!(c[0]),
            "INT8" => json!(c[0] as i8),
            "INT16" => json!(i16::from_le_bytes([c[0], c[1]])),
            "INT32" => json!(i32::from_le_bytes(c.try_into().unwrap())),
            "INT64" => json!(i64::from_le_bytes(c.try_into().unwrap())),
            "FP16" => json!(f16::from_le_bytes([c[0], c[1]]).to_f64()),
            "BF16" => json!(bf16::from_le_bytes([c[0], c[1]]).to_f64()),
            "FP32" => json!(f32::from_le_bytes(c.try_into().unwrap()) as f64),
            "FP64" => json!(f64::from_le_bytes(c.try_into().unwrap())),
            _ => unreachable!(),
        })
        .collect())
}

/// An inference response: its JSON header and outputs with data decoded,
/// whether they came as JSON or as binary.
#[derive(Debug)]
pub struct Answer {
    /// The JSON part.
    pub header: Value,
    /// Outputs, in response order.
    pub outputs: Vec<JsonTensor>,
}

/// Parses a response body; `json_len` is its `Inference-Header-Content-Length`.
pub fn parse_answer(body: &[u8], json_len: Option<usize>) -> Result<Answer> {
    let json_len = json_len.unwrap_or(body.len());
    let header: Value = serde_json::from_slice(&body[..json_len]).context("response JSON")?;
    let mut binary = &body[json_len..];
    let mut outputs = Vec::new();
    for output in header["outputs"].as_array().context("outputs")? {
        let mut tensor = JsonTensor::from_json(output)?;
        if let Some(size) = output["parameters"]["binary_data_size"].as_u64() {
            let size = size as usize;
            if binary.len() < size {
                bail!("binary output {} truncated", tensor.name);
            }
            tensor.data = from_le_bytes(&tensor.datatype, &binary[..size])?;
            binary = &binary[size..];
        }
        outputs.push(tensor);
    }
    if !binary.is_empty() {
        bail!("{} unexplained bytes after the binary outputs", binary.len());
    }
    Ok(Answer { header, outputs })
}

/// Checks outputs against PyTorch's: names, datatypes and shapes equal,
/// integers and booleans exact, FP32/FP64 within 1e-5 relative (1e-6
/// absolute near zero), FP16/BF16 within their own precision.
pub fn assert_matches(got: &[JsonTensor], want: &[JsonTensor]) {
    assert_eq!(got.len(), want.len(), "output count");
    for (g, w) in got.iter().zip(want) {
        assert_eq!((&g.name, &g.datatype, &g.shape), (&w.name, &w.datatype, &w.shape), "output header");
        assert_eq!(g.data.len(), w.data.len(), "elements of {}", g.name);
        let relative = match w.datatype.as_str() {
            "FP32" | "FP64" => 1e-5,
            "FP16" => 1e-3,
            "BF16" => 8e-3,
            _ => 0.0,
        };
        for (i, (a, b)) in g.data.iter().zip(&w.data).enumerate() {
            if relative == 0.0 {
                assert_eq!(a, b, "{} element {i}", g.name);
            } else {
                let (a, b) = (a.as_f64().expect("number"), b.as_f64().expect("number"));
                let tolerance = relative * b.abs() + 1e-6;
                assert!((a - b).abs() <= tolerance, "{} element {i}: got {a}, PyTorch says {b}", g.name);
            }
        }
    }
}

/// Checks outputs against a reference within `atol + rtol * |reference|`
/// per element: for a model exported to another format, whose answers
/// differ from eager PyTorch's by what the conversion measured.
pub fn assert_close(got: &[JsonTensor], want: &[JsonTensor], atol: f64, rtol: f64) {
    assert_eq!(got.len(), want.len(), "output count");
    for (g, w) in got.iter().zip(want) {
        assert_eq!((&g.name, &g.datatype, &g.shape), (&w.name, &w.datatype, &w.shape), "output header");
        assert_eq!(g.data.len(), w.data.len(), "elements of {}", g.name);
        for (i, (a, b)) in g.data.iter().zip(&w.data).enumerate() {
            let (a, b) = (a.as_f64().expect("number"), b.as_f64().expect("number"));
            assert!((a - b).abs() <= atol + rtol * b.abs(), "{} element {i}: got {a}, PyTorch says {b}", g.name);
        }
    }
}

/// A raw HTTP answer.
#[derive(Debug)]
pub struct HttpAnswer {
    /// Status code.
    pub status: u16,
    /// Body bytes.
    pub body: Vec<u8>,
    /// `Inference-Header-Content-Length`, if present.
    pub json_len: Option<usize>,
    /// `Retry-After`, if present.
    pub retry_after: Option<String>,
}

impl HttpAnswer {
    /// Parses a successful answer; fails with the body otherwise.
    pub fn answer(&self) -> Result<Answer> {
        if self.status != 200 {
            bail!("status {}: {}", self.status, String::from_utf8_lossy(&self.body));
        }
        parse_answer(&self.body, self.json_len)
    }

    /// The `error` message of a failed answer.
    pub fn error(&self) -> String {
        let json: Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("error body is not JSON: {}", String::from_utf8_lossy(&self.body)));
        json["error"].as_str().unwrap_or_else(|| panic!("no error field in {json}")).to_string()
    }
}

/// POSTs `body` to `url` with extra headers.
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    headers: &[(&str, String)],
) -> Result<HttpAnswer> {
    let mut request = client.post(url).body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.with_context(|| format!("POST {url}"))?;
    let status = response.status().as_u16();
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let json_len = header(HEADER_LENGTH).map(|v| v.parse().expect("numeric header length"));
    let retry_after = header("retry-after");
    let body = response.bytes().await?.to_vec();
    Ok(HttpAnswer { status, body, json_len, retry_after })
}

/// POSTs a JSON body.
pub async fn post_json(client: &reqwest::Client, url: &str, body: &Value) -> Result<HttpAnswer> {
    post(client, url, serde_json::to_vec(body)?, &[("content-type", "application/json".into())]).await
}

/// POSTs a binary body.
pub async fn post_binary(client: &reqwest::Client, url: &str, body: Vec<u8>, json_len: usize) -> Result<HttpAnswer> {
    post(
        client,
        url,
        body,
        &[("content-type", "application/octet-stream".into()), (HEADER_LENGTH, json_len.to_string())],
    )
    .await
}
