//! BYTES tensors as the protocol lays them out: each element a 4-byte
//! little-endian length followed by that many bytes, elements row-major.
//!
//! The layout is the binary extension's and the wire's alike, so a BYTES
//! tensor is checked once ([`count`]) and then walked ([`elements`]) or cut
//! into rows ([`row_ends`]) without being copied.

/// Bytes of an element's length prefix.
pub const PREFIX: usize = 4;

/// Walks the elements of checked BYTES data; stops at the first element
/// that does not fit (which [`count`] refuses).
pub fn elements(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    std::iter::from_fn(move || {
        let (element, tail) = split_first(rest).ok()??;
        rest = tail;
        Some(element)
    })
}

/// Counts the elements of BYTES data, refusing a length that runs past the end.
pub fn count(data: &[u8]) -> Result<usize, String> {
    let mut rest = data;
    let mut count = 0usize;
    while let Some((_, tail)) = split_first(rest).map_err(|at| {
        format!("BYTES element {count} at byte {} claims more bytes than follow", data.len() - rest.len() + at)
    })? {
        rest = tail;
        count += 1;
    }
    Ok(count)
}

/// Appends one element.
pub fn push(out: &mut Vec<u8>, element: &[u8]) {
    let len = u32::try_from(element.len()).expect("a BYTES element is under 4 GiB: requests are bounded far below");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(element);
}

/// Encodes `elements` as BYTES data.
pub fn encode<'a>(elements: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for element in elements {
        push(&mut out, element);
    }
    out
}

/// The byte offset where each of `rows` rows of `per_row` elements ends, in
/// checked BYTES data; `None` when the data holds fewer elements.
pub fn row_ends(data: &[u8], rows: usize, per_row: usize) -> Option<Vec<usize>> {
    let mut ends = Vec::with_capacity(rows);
    let mut offset = 0usize;
    for _ in 0..rows {
        for _ in 0..per_row {
            let (element, _) = split_first(&data[offset..]).ok()??;
            offset += PREFIX + element.len();
        }
        ends.push(offset);
    }
    Some(ends)
}

/// An element as text, when it is UTF-8 without NUL bytes (what a string
/// tensor of ONNX Runtime, which copies elements as C strings, can hold).
pub fn as_text(element: &[u8]) -> Result<&str, &'static str> {
    let text = std::str::from_utf8(element).map_err(|_| "is not UTF-8 text")?;
    if text.contains('\0') {
        return Err("holds a NUL byte");
    }
    Ok(text)
}

/// Checks that every element of checked BYTES data is text ([`as_text`]).
pub fn check_text(data: &[u8]) -> Result<(), String> {
    for (index, element) in elements(data).enumerate() {
        as_text(element).map_err(|why| format!("BYTES element {index} {why}"))?;
    }
    Ok(())
}

/// An element and the data after it; `None` at the end of the data.
type Split<'a> = Option<(&'a [u8], &'a [u8])>;

/// The first element and the rest; `Err(at)` when the element at offset
/// `at` (relative to `data`) does not fit.
fn split_first(data: &[u8]) -> Result<Split<'_>, usize> {
    if data.is_empty() {
        return Ok(None);
    }
    let Some(prefix) = data.get(..PREFIX) else { return Err(0) };
    let len = u32::from_le_bytes(prefix.try_into().expect("4 bytes")) as usize;
    let rest = &data[PREFIX..];
    if len > rest.len() {
        return Err(0);
    }
    Ok(Some(rest.split_at(len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_round_trip() {
        let data = encode([b"ab".as_slice(), b"", "é".as_bytes()]);
        assert_eq!(count(&data), Ok(3));
        let back: Vec<&[u8]> = elements(&data).collect();
        assert_eq!(back, vec![b"ab".as_slice(), b"", "é".as_bytes()]);
    }

    #[test]
    fn a_length_past_the_end_is_refused() {
        let mut data = encode([b"ok".as_slice()]);
        data.extend_from_slice(&100u32.to_le_bytes());
        data.extend_from_slice(b"short");
        let error = count(&data).unwrap_err();
        assert!(error.contains("element 1 at byte 6"), "{error}");
        assert!(count(&[1, 0]).is_err(), "a cut prefix");
        assert_eq!(count(&[]), Ok(0));
    }

    #[test]
    fn rows_end_after_their_elements() {
        let data = encode([b"a".as_slice(), b"bc", b"", b"def"]);
        assert_eq!(row_ends(&data, 2, 2), Some(vec![11, 22]));
        assert_eq!(row_ends(&data, 3, 2), None);
    }

    #[test]
    fn text_is_utf8_without_nul() {
        assert_eq!(check_text(&encode(["é".as_bytes(), b""])), Ok(()));
        assert_eq!(check_text(&encode([b"a".as_slice(), &[0xc3]])).unwrap_err(), "BYTES element 1 is not UTF-8 text");
        assert_eq!(check_text(&encode([b"a\0".as_slice()])).unwrap_err(), "BYTES element 0 holds a NUL byte");
    }
}
