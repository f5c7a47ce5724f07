//! Turning generated ids into text as they come: incremental detokenising
//! (a token may end inside a character, or change how the previous ones
//! read) and stop strings (text is held back while it may be the start of
//! one, and cut where one appears).

use super::codec::TextCodec;

/// Most ids decoded together per token: past this, text with an unfinished
/// character is handed out as it reads (with U+FFFD), so a run of ids that
/// never completes one costs no more than a few at a time.
const MAX_WINDOW: usize = 8;

/// The text of a growing list of ids, handed out in pieces that never
/// split a character and never change once handed out.
#[derive(Debug, Default)]
pub struct Detokenizer {
    ids: Vec<u32>,
    /// Ids before this one have been handed out and no longer affect text.
    prefix: usize,
    /// Ids before this one have been handed out.
    read: usize,
}

impl Detokenizer {
    /// Adds `id`; returns the text it completes (often empty).
    pub fn push(&mut self, codec: &TextCodec, id: u32) -> String {
        self.ids.push(id);
        let before = codec.decode(&self.ids[self.prefix..self.read]);
        let now = codec.decode(&self.ids[self.prefix..]);
        let forced = self.ids.len() - self.prefix > MAX_WINDOW;
        // Where the new text starts: the end of the old, or (when the new
        // ids changed how the old ones read) the next whole character.
        let start = (before.len()..=now.len()).find(|&at| now.is_char_boundary(at)).unwrap_or(now.len());
        if !forced && (now.ends_with('\u{FFFD}') || start != before.len()) {
            return String::new();
        }
        // Move on even without text (special tokens decode to none), so the
        // window decoded per token stays short.
        self.prefix = self.read;
        self.read = self.ids.len();
        now[start..].to_string()
    }

    /// The text still held back (an incomplete character at the end).
    pub fn flush(&mut self, codec: &TextCodec) -> String {
        let before = codec.decode(&self.ids[self.prefix..self.read]);
        let now = codec.decode(&self.ids[self.prefix..]);
        self.prefix = self.ids.len();
        self.read = self.ids.len();
        match now.get(before.len()..) {
            Some(rest) if now.len() > before.len() => rest.to_string(),
            _ => String::new(),
        }
    }
}

/// What the client may see of the text so far, given its stop strings.
#[derive(Debug, Default)]
pub struct StopStrings {
    stops: Vec<String>,
    held: String,
}

/// Text to send, and whether a stop string ended the generation.
#[derive(Debug, PartialEq, Eq)]
pub struct Released {
    /// Text safe to send.
    pub text: String,
    /// A stop string appeared: the text before it is all there is.
    pub stopped: bool,
}

impl StopStrings {
    /// Watches for `stops` (empty strings are ignored).
    pub fn new(stops: Vec<String>) -> StopStrings {
        StopStrings { stops: stops.into_iter().filter(|s| !s.is_empty()).collect(), held: String::new() }
    }

    /// Adds generated text; releases what cannot be part of a stop string.
    pub fn push(&mut self, text: &str) -> Released {
        self.held.push_str(text);
        let first_stop = self.stops.iter().filter_map(|stop| self.held.find(stop.as_str())).min();
        if let Some(at) = first_stop {
            let text = self.held[..at].to_string();
            self.held.clear();
            return Released { text, stopped: true };
        }
        // Hold back the longest end of the text that begins a stop string.
        let keep = self
            .stops
            .iter()
            .flat_map(|stop| (1..stop.len()).filter(|&n| stop.is_char_boundary(n)).map(move |n| &stop[..n]))
            .filter(|start| self.held.ends_with(start))
            .map(str::len)
            .max()
            .unwrap_or(0);
        let cut = self.held.len() - keep;
        let text = self.held[..cut].to_string();
        self.held.drain(..cut);
        Released { text, stopped: false }
    }

    /// The text held back, at the end of the generation.
    pub fn flush(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A byte-level tokenizer with no merges: every byte is a token, so a
    /// character of several bytes spans several tokens.
    fn bytes_codec() -> TextCodec {
        let printable = |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        let mut extra = 0;
        let mut vocab = serde_json::Map::new();
        for byte in 0..256u32 {
            let shown = if printable(byte) {
                byte
            } else {
                extra += 1;
                255 + extra
            };
            vocab.insert(char::from_u32(shown).unwrap().to_string(), serde_json::json!(byte));
        }
        let byte_level = serde_json::json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
                                            "use_regex": true});
        let json = serde_json::json!({
            "version": "1.0", "truncation": null, "padding": null, "added_tokens": [], "normalizer": null,
            "pre_tokenizer": byte_level, "post_processor": null, "decoder": byte_level,
            "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                      "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                      "vocab": vocab, "merges": []}
        });
        let spec = serde_json::from_value(serde_json::json!({
            "layers": 1, "heads": 1, "head_size": 4, "vocab_size": 256, "context_length": 4096,
            "eos_token_ids": [0], "tokenizer": "a".repeat(64)
        }))
        .unwrap();
        TextCodec::new(serde_json::to_string(&json).unwrap().as_bytes(), &spec).unwrap()
    }

    #[test]
    fn characters_split_across_tokens_come_out_whole_and_once() {
        let codec = bytes_codec();
        let text = "Héllo wörld, ☃ and 🦀!";
        let ids = codec.encode(text, false).unwrap();
        assert_eq!(ids.len(), text.len(), "one token per byte");
        let mut detokenizer = Detokenizer::default();
        let mut pieces: Vec<String> = ids.iter().map(|&id| detokenizer.push(&codec, id)).collect();
        pieces.push(detokenizer.flush(&codec));
        assert!(pieces.iter().all(|p| !p.contains('\u{FFFD}')), "a piece split a character: {pieces:?}");
        assert_eq!(pieces.concat(), text);
        // A run of bytes that never makes a character is handed out anyway
        // once the window is full, instead of decoding ever more ids.
        let mut detokenizer = Detokenizer::default();
        let broken: String = (0..40).map(|_| detokenizer.push(&codec, 0xF0)).collect();
        assert!(broken.contains('\u{FFFD}'));
        assert!(detokenizer.ids.len() - detokenizer.prefix <= MAX_WINDOW + 1);
    }

    #[test]
    fn stop_strings_cut_the_text_and_hold_back_their_starts() {
        let mut stops = StopStrings::new(vec!["END".into(), "\n\n".into()]);
        assert_eq!(stops.push("Hello E"), Released { text: "Hello ".into(), stopped: false });
        assert_eq!(stops.push("N"), Released { text: String::new(), stopped: false });
        assert_eq!(stops.push("x and "), Released { text: "ENx and ".into(), stopped: false });
        assert_eq!(stops.push("more\n"), Released { text: "more".into(), stopped: false });
        assert_eq!(stops.push("\nignored"), Released { text: String::new(), stopped: true });
        let mut none = StopStrings::new(vec![String::new()]);
        assert_eq!(none.push("abc"), Released { text: "abc".into(), stopped: false });
        let mut tail = StopStrings::new(vec!["STOP".into()]);
        assert_eq!(tail.push("go ST").text, "go ");
        assert_eq!(tail.flush(), "ST");
    }
}
