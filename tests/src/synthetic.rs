//! Deterministic synthetic inputs: single rows of normally distributed
//! values, for tests of drift detection and evaluation.

use serde_json::json;

use crate::reference::JsonTensor;

/// A single-row FP32 input `INPUT__0` of `width` values.
pub fn row(width: usize, values: impl Fn(usize) -> f64) -> Vec<JsonTensor> {
    vec![JsonTensor {
        name: "INPUT__0".into(),
        datatype: "FP32".into(),
        shape: vec![1, width as i64],
        data: (0..width).map(|i| json!(values(i))).collect(),
    }]
}

/// splitmix64: a well-mixed 64-bit hash.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e3779b97f4a7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d049bb133111eb);
    x ^ (x >> 31)
}

/// A deterministic standard normal value for `seed` (Box-Muller).
pub fn normal(seed: u64) -> f64 {
    let uniform = |x: u64| ((mix(x) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let (u, v) = (uniform(seed.wrapping_mul(2)), uniform(seed.wrapping_mul(2) + 1));
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}
