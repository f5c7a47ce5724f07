//! Server-sent events read from an engine's stream, bounded in size.

use bytes::{Buf, BytesMut};

/// Largest event an engine may send.
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// Splits a byte stream into the `data` of its events.
#[derive(Default)]
pub struct EventReader {
    buffer: BytesMut,
    /// Bytes of the buffer already searched for an event's end.
    searched: usize,
}

/// One event's data, or the stream's end marker.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// A `data:` payload (several `data:` lines joined by newlines).
    Data(String),
    /// `data: [DONE]`.
    Done,
}

impl EventReader {
    /// Adds `chunk` and returns the events it completed, or an error when an
    /// event grows past [`MAX_EVENT_BYTES`].
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Event>, String> {
        self.buffer.extend_from_slice(chunk);
        let mut events = Vec::new();
        // Each byte is searched once (less the separator's length, which
        // may straddle two chunks).
        while let Some((end, separator)) = find_event_end(&self.buffer, self.searched.saturating_sub(3)) {
            let raw = self.buffer.split_to(end);
            self.buffer.advance(separator);
            self.searched = 0;
            if let Some(event) = parse_event(&raw) {
                events.push(event);
            }
        }
        self.searched = self.buffer.len();
        if self.buffer.len() > MAX_EVENT_BYTES {
            return Err(format!("the engine sent an event of more than {MAX_EVENT_BYTES} bytes"));
        }
        Ok(events)
    }
}

/// Where the first complete event ends, and its separator's length,
/// searching from `from`.
fn find_event_end(buffer: &[u8], from: usize) -> Option<(usize, usize)> {
    let rest = buffer.get(from..)?;
    let lf = rest.windows(2).position(|w| w == b"\n\n").map(|at| (from + at, 2));
    let crlf = rest.windows(4).position(|w| w == b"\r\n\r\n").map(|at| (from + at, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

fn parse_event(raw: &[u8]) -> Option<Event> {
    let text = String::from_utf8_lossy(raw);
    let data: Vec<&str> =
        text.lines().filter_map(|line| line.strip_prefix("data:")).map(|d| d.strip_prefix(' ').unwrap_or(d)).collect();
    if data.is_empty() {
        return None;
    }
    let data = data.join("\n");
    Some(if data.trim() == "[DONE]" { Event::Done } else { Event::Data(data) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_are_joined() {
        let mut reader = EventReader::default();
        assert!(reader.push(b"data: {\"a\"").unwrap().is_empty());
        let events = reader.push(b": 1}\n\n: comment\n\ndata: [DONE]\r\n\r\n").unwrap();
        assert_eq!(events, vec![Event::Data("{\"a\": 1}".into()), Event::Done]);
    }

    #[test]
    fn a_separator_split_across_chunks_is_found() {
        let mut reader = EventReader::default();
        assert!(reader.push(b"data: 1\n").unwrap().is_empty());
        assert_eq!(reader.push(b"\ndata: 2\r\n\r").unwrap(), vec![Event::Data("1".into())]);
        assert_eq!(reader.push(b"\n").unwrap(), vec![Event::Data("2".into())]);
    }

    #[test]
    fn an_endless_event_is_refused() {
        let mut reader = EventReader::default();
        let chunk = vec![b'x'; MAX_EVENT_BYTES + 1];
        assert!(reader.push(&chunk).is_err());
    }
}
