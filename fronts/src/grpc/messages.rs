//! A gRPC request body gathered into whole messages: each is a 1-byte
//! compression flag, a 4-byte big-endian length and that many bytes.
//!
//! The buffer grows with what arrives, never with what a prefix announces:
//! a client that announces a message of the largest allowed size and sends
//! five bytes costs five bytes (and at most the step below in capacity).

use bytes::{Bytes, BytesMut};
use maas_serving::ServeError;

/// The prefix before each message: the compression flag and the length.
pub const PREFIX: usize = 5;

/// Capacity reserved ahead of what has arrived, at most.
const GROWTH_STEP: usize = 64 * 1024;

/// One whole message, prefix included.
pub struct Message {
    /// The prefix and the message.
    pub framed: Bytes,
    /// Whether the flag says the message is compressed.
    pub compressed: bool,
}

impl Message {
    /// The message without its prefix.
    pub fn payload(&self) -> &[u8] {
        &self.framed[PREFIX..]
    }
}

/// Bytes of a body that have arrived and not yet been passed on.
pub struct Messages {
    pending: BytesMut,
    limit: usize,
}

impl Messages {
    /// An empty buffer for messages of at most `limit` bytes.
    pub fn new(limit: usize) -> Messages {
        Messages { pending: BytesMut::new(), limit }
    }

    /// Adds bytes that arrived.
    pub fn push(&mut self, data: &[u8]) {
        self.pending.extend_from_slice(data);
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Everything pending, as it is (at the end of a body: a partial
    /// message, which the decoder reports).
    pub fn rest(&mut self) -> Bytes {
        self.pending.split().freeze()
    }

    /// The next whole message once it has arrived; an error when its
    /// prefix announces more than the limit.
    pub fn next(&mut self) -> Result<Option<Message>, ServeError> {
        let Some(len) = announced(&self.pending) else { return Ok(None) };
        if len > self.limit {
            return Err(ServeError::PayloadTooLarge { size: len, limit: self.limit });
        }
        let missing = (PREFIX + len).saturating_sub(self.pending.len());
        if missing > 0 {
            self.pending.reserve(missing.min(self.pending.len().max(GROWTH_STEP)));
            return Ok(None);
        }
        let compressed = self.pending[0] != 0;
        Ok(Some(Message { framed: self.pending.split_to(PREFIX + len).freeze(), compressed }))
    }

    /// Whether `data`, arriving with nothing pending, is exactly one
    /// message shorter than `small` and within the limit, which can pass on
    /// as it came, without a copy.
    pub fn passes_whole(&self, data: &[u8], small: usize) -> bool {
        self.pending.is_empty()
            && announced(data).is_some_and(|len| len == data.len() - PREFIX && len < small && len <= self.limit)
    }
}

/// The length a prefix at the start of `data` announces.
fn announced(data: &[u8]) -> Option<usize> {
    (data.len() >= PREFIX).then(|| u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(flag: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![flag];
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn messages_come_out_whole_however_the_bytes_arrive() {
        let mut messages = Messages::new(1 << 20);
        let first = framed(0, &[7; 300]);
        let second = framed(1, b"zipped");
        let stream: Vec<u8> = first.iter().chain(second.iter()).copied().collect();
        let mut out = Vec::new();
        for chunk in stream.chunks(7) {
            messages.push(chunk);
            while let Some(message) = messages.next().unwrap() {
                out.push(message);
            }
        }
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].payload(), &[7; 300][..]);
        assert!(!out[0].compressed);
        assert_eq!(out[1].payload(), b"zipped");
        assert!(out[1].compressed);
        assert!(messages.is_empty());
    }

    #[test]
    fn an_announced_length_reserves_nothing_like_it() {
        let limit = 64 << 20;
        let mut messages = Messages::new(limit);
        messages.push(&[0, 0x03, 0xff, 0xff, 0xff]);
        assert!(messages.next().unwrap().is_none());
        assert!(messages.pending.capacity() <= 2 * GROWTH_STEP, "reserved {}", messages.pending.capacity());
        messages.push(&[1; 1000]);
        assert!(messages.next().unwrap().is_none());
        assert!(messages.pending.capacity() <= 4 * GROWTH_STEP, "reserved {}", messages.pending.capacity());
        assert_eq!(messages.rest().len(), 1005);
    }

    #[test]
    fn a_message_over_the_limit_is_refused_from_its_prefix() {
        let mut messages = Messages::new(100);
        messages.push(&framed(0, &[0; 101])[..PREFIX]);
        assert!(matches!(messages.next(), Err(ServeError::PayloadTooLarge { size: 101, limit: 100 })));
    }

    #[test]
    fn only_one_small_whole_message_passes_without_a_copy() {
        let messages = Messages::new(1000);
        assert!(messages.passes_whole(&framed(0, &[1; 10]), 64));
        assert!(!messages.passes_whole(&framed(0, &[1; 100]), 64), "large ones are checked");
        assert!(!messages.passes_whole(&framed(0, &[1; 10])[..8], 64), "a partial one waits");
        let two: Vec<u8> = [framed(0, &[1; 3]), framed(0, &[2; 3])].concat();
        assert!(!messages.passes_whole(&two, 64));
        assert!(!messages.passes_whole(&[0, 0], 64));
    }
}
