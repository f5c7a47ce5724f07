//! An HTTP inference body without `Inference-Header-Content-Length`: JSON
//! only, tensor data as (nested) arrays. What the parser accepts goes on
//! through the serving plane's checks; every input parsed from JSON data
//! must hold exactly the bytes its shape needs.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use maas_fronts::fuzzing::parse_http_request;
use maas_fuzz::{assert_sized, serve_checks, Model};

fuzz_target!(|data: &[u8]| {
    let Ok(parsed) = parse_http_request(None, Bytes::copy_from_slice(data), &Model::Full.input_check()) else { return };
    for input in &parsed.request.inputs {
        assert_sized(input);
    }
    let _ = serve_checks(Model::Full, parsed.request);
});
