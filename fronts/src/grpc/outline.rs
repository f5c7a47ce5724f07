//! A look at a `ModelInferRequest` in its wire format, before prost decodes it.
//!
//! Decoding turns packed numbers into vectors — a 1-byte varint becomes an
//! 8-byte `u64`, a 3-byte map entry a map slot of a hundred bytes — so a
//! message the model would refuse could cost ten times its size before any
//! check ran. [`outline`] walks the message without allocating per element
//! and reads what the checks need: the model, each input's name, datatype
//! and shape, how many elements its typed contents hold, the size of each
//! raw input, and how many outputs and parameters it names.

/// Most inputs, dimensions, outputs or parameters an outline holds; a
/// message with more is refused (no model comes near it).
pub const MAX_ENTRIES: usize = 64;

/// What a `ModelInferRequest` asks for, without its data.
#[derive(Debug, Default, PartialEq)]
pub struct RequestOutline {
    /// `model_name`.
    pub model: String,
    /// `model_version`.
    pub version: String,
    /// The inputs, in order.
    pub inputs: Vec<InputOutline>,
    /// The length of each `raw_input_contents` entry.
    pub raw_sizes: Vec<usize>,
    /// How many outputs it requests.
    pub outputs: usize,
    /// How many request parameters it has.
    pub parameters: usize,
}

/// One input, without its data.
#[derive(Debug, Default, PartialEq)]
pub struct InputOutline {
    /// Its name.
    pub name: String,
    /// Its datatype, as sent.
    pub datatype: String,
    /// Its shape.
    pub shape: Vec<i64>,
    /// Elements in its typed `contents` (0 without contents).
    pub elements: usize,
    /// How many parameters it has.
    pub parameters: usize,
}

/// Outlines `message`, or says why it is not a well-formed request.
pub fn outline(message: &[u8]) -> Result<RequestOutline, String> {
    let mut request = RequestOutline::default();
    let mut reader = Reader(message);
    while let Some((field, wire)) = reader.key()? {
        match (field, wire) {
            (1, LEN) => request.model = reader.string("model_name")?,
            (2, LEN) => request.version = reader.string("model_version")?,
            (4, LEN) => {
                reader.bytes()?;
                request.parameters = counted(request.parameters, "request parameters")?;
            }
            (5, LEN) => {
                let input = input(reader.bytes()?)?;
                counted(request.inputs.len(), "inputs")?;
                request.inputs.push(input);
            }
            (6, LEN) => {
                reader.bytes()?;
                request.outputs = counted(request.outputs, "requested outputs")?;
            }
            (7, LEN) => {
                let size = reader.bytes()?.len();
                counted(request.raw_sizes.len(), "raw_input_contents entries")?;
                request.raw_sizes.push(size);
            }
            _ => reader.skip(wire)?,
        }
    }
    Ok(request)
}

fn input(message: &[u8]) -> Result<InputOutline, String> {
    let mut input = InputOutline::default();
    let mut reader = Reader(message);
    while let Some((field, wire)) = reader.key()? {
        match (field, wire) {
            (1, LEN) => input.name = reader.string("input name")?,
            (2, LEN) => input.datatype = reader.string("datatype")?,
            (3, LEN) => {
                let mut packed = Reader(reader.bytes()?);
                while !packed.0.is_empty() {
                    counted(input.shape.len(), "shape dimensions")?;
                    input.shape.push(packed.varint()? as i64);
                }
            }
            (3, VARINT) => {
                counted(input.shape.len(), "shape dimensions")?;
                input.shape.push(reader.varint()? as i64);
            }
            (4, LEN) => {
                reader.bytes()?;
                input.parameters = counted(input.parameters, "input parameters")?;
            }
            (5, LEN) => input.elements += contents_elements(reader.bytes()?)?,
            _ => reader.skip(wire)?,
        }
    }
    Ok(input)
}

/// Elements in an `InferTensorContents`, packed or not, over all its fields.
fn contents_elements(message: &[u8]) -> Result<usize, String> {
    let mut elements = 0usize;
    let mut reader = Reader(message);
    while let Some((field, wire)) = reader.key()? {
        elements += match (field, wire) {
            // bool, int32, int64, uint32, uint64: varints; packed, each ends
            // in a byte below 0x80.
            (1..=5, LEN) => reader.bytes()?.iter().filter(|b| **b < 0x80).count(),
            (1..=5, VARINT) => reader.varint().map(|_| 1)?,
            (6, LEN) => fixed_count(reader.bytes()?, 4)?,
            (6, FIXED32) | (7, FIXED64) => reader.skip(wire).map(|_| 1)?,
            (7, LEN) => fixed_count(reader.bytes()?, 8)?,
            (8, LEN) => reader.bytes().map(|_| 1)?,
            _ => reader.skip(wire).map(|_| 0)?,
        };
    }
    Ok(elements)
}

fn fixed_count(packed: &[u8], size: usize) -> Result<usize, String> {
    if !packed.len().is_multiple_of(size) {
        return Err(format!("packed contents of {} bytes are not {size}-byte values", packed.len()));
    }
    Ok(packed.len() / size)
}

fn counted(count: usize, what: &str) -> Result<usize, String> {
    if count >= MAX_ENTRIES {
        return Err(format!("the request has more than {MAX_ENTRIES} {what}"));
    }
    Ok(count + 1)
}

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// Reads protobuf wire format from a slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for (index, byte) in self.0.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * index);
            if byte & 0x80 == 0 {
                self.0 = &self.0[index + 1..];
                return Ok(value);
            }
        }
        Err("a varint is truncated or longer than 10 bytes".into())
    }

    /// The next field number and wire type, or `None` at the end.
    fn key(&mut self) -> Result<Option<(u64, u8)>, String> {
        if self.0.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        Ok(Some((key >> 3, (key & 7) as u8)))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        if len > self.0.len() {
            return Err(format!("a field of {len} bytes runs past the end of its message"));
        }
        let (taken, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(taken)
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let len = self.varint()?;
        self.take(usize::try_from(len).map_err(|_| "a field length does not fit in memory".to_string())?)
    }

    fn string(&mut self, what: &str) -> Result<String, String> {
        let bytes = self.bytes()?;
        String::from_utf8(bytes.to_vec()).map_err(|_| format!("the {what} is not UTF-8"))
    }

    fn skip(&mut self, wire: u8) -> Result<(), String> {
        match wire {
            VARINT => self.varint().map(drop),
            FIXED64 => self.take(8).map(drop),
            LEN => self.bytes().map(drop),
            FIXED32 => self.take(4).map(drop),
            other => Err(format!("wire type {other} is not used by this message")),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use maas_grpc::inference::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
    use maas_grpc::inference::{InferParameter, InferTensorContents, ModelInferRequest};
    use prost::Message;

    use super::*;

    fn tensor(name: &str, datatype: &str, shape: Vec<i64>, contents: Option<InferTensorContents>) -> InferInputTensor {
        InferInputTensor { name: name.into(), datatype: datatype.into(), shape, contents, ..Default::default() }
    }

    #[test]
    fn an_outline_reads_what_prost_would_decode() {
        let request = ModelInferRequest {
            model_name: "m".into(),
            model_version: "3".into(),
            id: "r".into(),
            parameters: HashMap::from([("timeout".to_string(), InferParameter::default())]),
            inputs: vec![
                tensor(
                    "a",
                    "UINT64",
                    vec![2, 3],
                    Some(InferTensorContents { uint64_contents: vec![1, 300, 1 << 40, 0, 5, 6], ..Default::default() }),
                ),
                tensor(
                    "b",
                    "FP32",
                    vec![2],
                    Some(InferTensorContents { fp32_contents: vec![1.0, 2.0], ..Default::default() }),
                ),
                tensor("c", "FP64", vec![1, 1], None),
            ],
            outputs: vec![InferRequestedOutputTensor { name: "y".into(), ..Default::default() }],
            raw_input_contents: vec![],
        };
        let outlined = outline(&request.encode_to_vec()).unwrap();
        assert_eq!((outlined.model.as_str(), outlined.version.as_str()), ("m", "3"));
        assert_eq!((outlined.outputs, outlined.parameters), (1, 1));
        let inputs: Vec<(&str, &str, &[i64], usize)> =
            outlined.inputs.iter().map(|i| (i.name.as_str(), i.datatype.as_str(), &i.shape[..], i.elements)).collect();
        assert_eq!(
            inputs,
            vec![("a", "UINT64", &[2, 3][..], 6), ("b", "FP32", &[2][..], 2), ("c", "FP64", &[1, 1][..], 0)]
        );

        let raw = ModelInferRequest {
            inputs: vec![tensor("c", "FP64", vec![1, 2], None)],
            raw_input_contents: vec![vec![0u8; 16].into()],
            ..Default::default()
        };
        assert_eq!(outline(&raw.encode_to_vec()).unwrap().raw_sizes, vec![16]);
    }

    #[test]
    fn broken_or_oversized_messages_are_refused() {
        let many_inputs = ModelInferRequest {
            inputs: (0..MAX_ENTRIES + 1).map(|i| tensor(&format!("i{i}"), "FP32", vec![1], None)).collect(),
            ..Default::default()
        };
        let many_dims =
            ModelInferRequest { inputs: vec![tensor("a", "FP32", vec![1; 100], None)], ..Default::default() };
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (many_inputs.encode_to_vec(), "more than 64 inputs"),
            (many_dims.encode_to_vec(), "more than 64 shape dimensions"),
            (vec![0x0a, 0x05, b'a'], "runs past the end"),
            (vec![0x0a, 0xff], "varint is truncated"),
            (vec![0x0b], "wire type 3"),
        ];
        for (message, expected) in cases {
            let error = outline(&message).unwrap_err();
            assert!(error.contains(expected), "{error:?} should contain {expected:?}");
        }
    }
}
