//! The tokenizer step: strings to token ids with a Hugging Face
//! `tokenizer.json`, padded (and cut, when the step says so) to the
//! model's length, as `tokenizers`' `encode_batch` does in Python with
//! truncation and fixed-length padding enabled.

use maas_protocol::pipeline::TokenizerStep;
use maas_protocol::TensorBytes;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use crate::tensors::{int64, one_string_per_row, StepError};

/// A loaded tokenizer step.
pub struct TextTokenizer {
    tokenizer: Tokenizer,
    max_length: usize,
    truncation: bool,
}

impl TextTokenizer {
    /// Loads `tokenizer_json` for `step`. Padding uses the tokenizer's own
    /// pad token when it names one, else `[PAD]` when its vocabulary has
    /// it, else id 0.
    pub fn new(tokenizer_json: &[u8], step: &TokenizerStep) -> Result<Self, String> {
        let mut tokenizer =
            Tokenizer::from_bytes(tokenizer_json).map_err(|e| format!("reading tokenizer.json: {e}"))?;
        let max_length = step.max_length as usize;
        let mut padding = tokenizer.get_padding().cloned().unwrap_or_else(|| {
            let pad_id = tokenizer.token_to_id("[PAD]").unwrap_or(0);
            PaddingParams { pad_id, ..PaddingParams::default() }
        });
        padding.strategy = PaddingStrategy::Fixed(max_length);
        padding.pad_to_multiple_of = None;
        tokenizer.with_padding(Some(padding));
        let truncation = step.truncation.then(|| TruncationParams { max_length, ..TruncationParams::default() });
        tokenizer.with_truncation(truncation).map_err(|e| format!("setting truncation to {max_length}: {e}"))?;
        Ok(TextTokenizer { tokenizer, max_length, truncation: step.truncation })
    }

    /// Tokenizes `text` (one string per row) into `input_ids`,
    /// `attention_mask` and `token_type_ids`, INT64 `[rows, max_length]`.
    pub fn run(&self, text: &TensorBytes, rows: usize) -> Result<Vec<TensorBytes>, StepError> {
        let texts = one_string_per_row(text, rows)?
            .into_iter()
            .enumerate()
            .map(|(row, bytes)| {
                std::str::from_utf8(bytes)
                    .map_err(|e| StepError::Input(format!("row {row} of '{}' is not UTF-8: {e}", text.name)))
            })
            .collect::<Result<Vec<&str>, _>>()?;
        let encodings = self
            .tokenizer
            .encode_batch(texts, true)
            .map_err(|e| StepError::Input(format!("tokenizing '{}': {e}", text.name)))?;
        if !self.truncation {
            if let Some((row, long)) = encodings.iter().enumerate().find(|(_, e)| e.len() > self.max_length) {
                return Err(StepError::Input(format!(
                    "row {row} of '{}' has {} tokens, more than the {} this model takes (its pipeline does not cut)",
                    text.name,
                    long.len(),
                    self.max_length
                )));
            }
        }
        let column = |pick: fn(&tokenizers::Encoding) -> &[u32]| {
            encodings.iter().flat_map(move |e| pick(e).iter().map(|&v| i64::from(v))).collect::<Vec<i64>>()
        };
        let (length, rows) = (self.max_length, encodings.len());
        Ok(vec![
            int64("input_ids", rows, length, column(tokenizers::Encoding::get_ids)),
            int64("attention_mask", rows, length, column(tokenizers::Encoding::get_attention_mask)),
            int64("token_type_ids", rows, length, column(tokenizers::Encoding::get_type_ids)),
        ])
    }
}

#[cfg(test)]
mod tests {
    use maas_protocol::{strings, DataType};

    use super::*;
    use crate::tensors::tensor;

    /// A word-level tokenizer with BERT's special tokens around each text.
    const TOKENIZER: &str = r###"{
      "version": "1.0", "truncation": null, "padding": null,
      "added_tokens": [
        {"id": 0, "content": "[PAD]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
        {"id": 1, "content": "[CLS]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
        {"id": 2, "content": "[SEP]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}],
      "normalizer": null, "pre_tokenizer": {"type": "Whitespace"},
      "post_processor": {"type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                   {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [1], "tokens": ["[CLS]"]},
                           "[SEP]": {"id": "[SEP]", "ids": [2], "tokens": ["[SEP]"]}}},
      "decoder": null,
      "model": {"type": "WordLevel", "vocab": {"[PAD]": 0, "[CLS]": 1, "[SEP]": 2, "good": 3, "bad": 4, "film": 5,
                "[UNK]": 6}, "unk_token": "[UNK]"}
    }"###;

    fn step(max_length: u32, truncation: bool) -> TokenizerStep {
        TokenizerStep { tokenizer: "a".repeat(64), max_length, truncation }
    }

    fn text(rows: &[&str]) -> TensorBytes {
        let data = strings::encode(rows.iter().map(|r| r.as_bytes()));
        tensor("TEXT", DataType::Bytes, vec![rows.len() as i64, 1], data)
    }

    fn ids(tensor: &TensorBytes) -> Vec<i64> {
        tensor.data.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect()
    }

    #[test]
    fn texts_become_padded_ids_with_their_mask() {
        let tokenizer = TextTokenizer::new(TOKENIZER.as_bytes(), &step(6, true)).unwrap();
        let out = tokenizer.run(&text(&["good film", "bad"]), 2).unwrap();
        assert_eq!(out[0].shape, vec![2, 6]);
        assert_eq!(ids(&out[0]), vec![1, 3, 5, 2, 0, 0, 1, 4, 2, 0, 0, 0]);
        assert_eq!(ids(&out[1]), vec![1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0]);
    }

    #[test]
    fn long_texts_are_cut_or_refused_as_configured() {
        let long = "good film bad film good film";
        let cut = TextTokenizer::new(TOKENIZER.as_bytes(), &step(4, true)).unwrap();
        assert_eq!(ids(&cut.run(&text(&[long]), 1).unwrap()[0]), vec![1, 3, 5, 2]);
        let strict = TextTokenizer::new(TOKENIZER.as_bytes(), &step(4, false)).unwrap();
        let Err(StepError::Input(message)) = strict.run(&text(&[long]), 1) else { panic!("a long text passed") };
        assert!(message.contains("has 8 tokens, more than the 4"), "{message}");
        let bad = tensor("TEXT", DataType::Bytes, vec![1, 1], strings::encode([[0xff_u8, 0xfe].as_slice()]));
        assert!(matches!(strict.run(&bad, 1), Err(StepError::Input(m)) if m.contains("not UTF-8")));
    }
}
