//! PyTorch's reference inputs and outputs for the example models.

use std::fs;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::cluster::models_dir;

/// A tensor as the reference files and JSON bodies hold it.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonTensor {
    /// Name.
    pub name: String,
    /// Protocol datatype.
    pub datatype: String,
    /// Shape.
    pub shape: Vec<i64>,
    /// Flat row-major elements.
    pub data: Vec<Value>,
}

impl JsonTensor {
    /// Reads `{"name","datatype","shape","data"}`.
    pub fn from_json(value: &Value) -> Result<JsonTensor> {
        Ok(JsonTensor {
            name: value["name"].as_str().context("tensor name")?.to_string(),
            datatype: value["datatype"].as_str().context("tensor datatype")?.to_string(),
            shape: value["shape"]
                .as_array()
                .context("tensor shape")?
                .iter()
                .map(|d| d.as_i64().context("dimension"))
                .collect::<Result<_>>()?,
            data: flatten(value.get("data").unwrap_or(&Value::Null)),
        })
    }

    /// Elements per row.
    pub fn row_len(&self) -> usize {
        self.shape[1..].iter().product::<i64>() as usize
    }

    /// Rows `start..start + count` as their own tensor.
    pub fn rows(&self, start: usize, count: usize) -> JsonTensor {
        let row_len = self.row_len();
        let mut shape = self.shape.clone();
        shape[0] = count as i64;
        JsonTensor {
            name: self.name.clone(),
            datatype: self.datatype.clone(),
            shape,
            data: self.data[start * row_len..(start + count) * row_len].to_vec(),
        }
    }
}

fn flatten(value: &Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items.iter().flat_map(flatten).collect(),
        Value::Null => vec![],
        other => vec![other.clone()],
    }
}

/// Fixed inputs of a model version and PyTorch's outputs for them.
#[derive(Debug, Clone)]
pub struct Reference {
    /// Inputs, in configuration order.
    pub inputs: Vec<JsonTensor>,
    /// Outputs, in configuration order.
    pub outputs: Vec<JsonTensor>,
}

impl Reference {
    /// Loads `<models>/<model>/<version>/reference.json`.
    pub fn load(model: &str, version: u64) -> Reference {
        Reference::read(&models_dir().join(model).join(version.to_string()).join("reference.json"))
    }

    /// Reads a `reference.json` (as `scripts/export_models.py` and
    /// `scripts/convert.py` write them).
    pub fn read(path: &std::path::Path) -> Reference {
        let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let json: Value = serde_json::from_str(&text).expect("reference files are JSON");
        let tensors = |key: &str| -> Vec<JsonTensor> {
            json[key].as_array().expect("tensor list").iter().map(|t| JsonTensor::from_json(t).unwrap()).collect()
        };
        Reference { inputs: tensors("inputs"), outputs: tensors("outputs") }
    }

    /// Rows in the reference batch.
    pub fn batch_rows(&self) -> usize {
        self.inputs[0].shape[0] as usize
    }

    /// The reference restricted to rows `start..start + count`.
    pub fn rows(&self, start: usize, count: usize) -> Reference {
        Reference {
            inputs: self.inputs.iter().map(|t| t.rows(start, count)).collect(),
            outputs: self.outputs.iter().map(|t| t.rows(start, count)).collect(),
        }
    }
}
