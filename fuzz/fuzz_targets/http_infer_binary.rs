//! An HTTP inference body with Triton's binary tensor extension: the first
//! two bytes (little-endian) are the `Inference-Header-Content-Length`
//! value, the rest is the body, JSON followed by raw tensors. What the
//! parser accepts goes on through the serving plane's checks.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use maas_fronts::fuzzing::parse_http_request;
use maas_fuzz::{serve_checks, Model};

fuzz_target!(|data: &[u8]| {
    let Some((length, body)) = data.split_first_chunk::<2>() else { return };
    let header_length = u16::from_le_bytes(*length).to_string();
    let body = Bytes::copy_from_slice(body);
    let Ok(parsed) = parse_http_request(Some(&header_length), body.clone(), &Model::Full.input_check()) else { return };
    for input in &parsed.request.inputs {
        // Binary inputs are slices of the body, never copies past its end.
        assert!(input.data.len() <= body.len(), "input '{}'", input.name);
    }
    let _ = serve_checks(Model::Full, parsed.request);
});
