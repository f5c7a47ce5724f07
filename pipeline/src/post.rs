//! The post-processing step: a model's scores to probabilities, the best
//! classes with their names, and a threshold.

use maas_protocol::pipeline::PostStep;
use maas_protocol::{strings, DataType, TensorBytes};

use crate::tensors::{f32_rows, fp32, int64, tensor, StepError};

/// Class names, one per line of a labels artifact.
pub fn parse_labels(bytes: &[u8]) -> Result<Vec<String>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("the labels file is not UTF-8: {e}"))?;
    Ok(text.lines().map(|line| line.trim_end_matches('\r').to_string()).collect())
}

/// Runs `step` on `scores` (FP32, `rows` rows of classes); `labels` are
/// the class names when the step has a labels artifact.
pub fn run(
    step: &PostStep,
    labels: &[String],
    scores: &TensorBytes,
    rows: usize,
) -> Result<Vec<TensorBytes>, StepError> {
    let (mut values, classes) = f32_rows(scores, rows)?;
    if step.softmax {
        values.chunks_exact_mut(classes).for_each(softmax);
    }
    let mut outputs = vec![fp32("probabilities", vec![rows as i64, classes as i64], &values)];
    if let Some(k) = step.top_k {
        let k = k as usize;
        if k > classes {
            return Err(StepError::Pipeline(format!("top_k is {k} but '{}' has {classes} classes", scores.name)));
        }
        let ranked: Vec<Vec<usize>> = values.chunks_exact(classes).map(|row| best(row, k)).collect();
        let top_scores: Vec<f32> =
            ranked.iter().zip(values.chunks_exact(classes)).flat_map(|(r, row)| r.iter().map(|&i| row[i])).collect();
        outputs.push(fp32("top_scores", vec![rows as i64, k as i64], &top_scores));
        outputs.push(int64("top_indices", rows, k, ranked.iter().flatten().map(|&i| i as i64)));
        if step.labels.is_some() {
            let mut names = Vec::new();
            for &index in ranked.iter().flatten() {
                let name = labels.get(index).cloned().unwrap_or_else(|| index.to_string());
                strings::push(&mut names, name.as_bytes());
            }
            outputs.push(tensor("top_labels", DataType::Bytes, vec![rows as i64, k as i64], names));
        }
    }
    if let Some(threshold) = step.threshold {
        let above: Vec<u8> = values.iter().map(|&v| u8::from(v > threshold)).collect();
        outputs.push(tensor("above", DataType::Bool, vec![rows as i64, classes as i64], above));
    }
    Ok(outputs)
}

/// Softmax of one row, in place, shifted by its maximum for stability.
fn softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for value in row.iter_mut() {
        *value = (*value - max).exp();
        sum += *value;
    }
    row.iter_mut().for_each(|value| *value /= sum);
}

/// The indices of the `k` largest values, largest first; ties keep the
/// lower index first, and NaN ranks last.
fn best(row: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..row.len()).collect();
    let key = |i: usize| if row[i].is_nan() { f32::NEG_INFINITY } else { row[i] };
    order.sort_by(|&a, &b| key(b).total_cmp(&key(a)).then(a.cmp(&b)));
    order.truncate(k);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn floats(tensor: &TensorBytes) -> Vec<f32> {
        tensor.data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
    }

    fn step(json: &str) -> PostStep {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn scores_become_probabilities_ranks_and_names() {
        let scores = fp32("logits", vec![2, 3], &[1.0, 3.0, 2.0, 0.0, 0.0, 5.0]);
        let labels = parse_labels(b"cat\ndog\r\nbird\n").unwrap();
        let step =
            step(&format!(r#"{{"softmax": true, "top_k": 2, "labels": "{}", "threshold": 0.5}}"#, "a".repeat(64)));
        let out = run(&step, &labels, &scores, 2).unwrap();
        let names: Vec<&str> = out.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["probabilities", "top_scores", "top_indices", "top_labels", "above"]);
        let probabilities = floats(&out[0]);
        let expected: Vec<f32> =
            [1.0f32, 3.0, 2.0].iter().map(|v| v.exp() / (1f32.exp() + 3f32.exp() + 2f32.exp())).collect();
        assert!(probabilities[..3].iter().zip(&expected).all(|(a, b)| (a - b).abs() < 1e-6), "{probabilities:?}");
        let indices: Vec<i64> =
            out[2].data.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect();
        assert_eq!(indices, [1, 2, 2, 0]);
        let labels: Vec<&[u8]> = strings::elements(&out[3].data).collect();
        assert_eq!(labels, [b"dog".as_slice(), b"bird", b"bird", b"cat"]);
        assert_eq!(out[4].data.as_ref(), [0, 1, 0, 0, 0, 1]);
    }

    #[test]
    fn more_classes_asked_than_the_model_gives_is_the_pipelines_fault() {
        let scores = fp32("logits", vec![1, 2], &[1.0, 2.0]);
        let error = run(&step(r#"{"top_k": 3}"#), &[], &scores, 1).unwrap_err();
        assert!(matches!(error, StepError::Pipeline(m) if m.contains("top_k is 3 but 'logits' has 2 classes")));
    }
}
