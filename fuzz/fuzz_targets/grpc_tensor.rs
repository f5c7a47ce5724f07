//! A `ModelInferRequest` decoded by prost and converted into the serving
//! plane's request (`to_infer_request`), then through the serving plane's
//! checks; every input converted from typed contents must hold exactly the
//! bytes its shape needs. A request the serving plane would queue must also
//! pass the precheck that large messages get from their outline, or large
//! requests would be refused that small ones of the same form are not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use maas_fronts::fuzzing::{check_outline, outline, to_infer_request};
use maas_fuzz::{assert_sized, serve_checks, Model};
use maas_grpc::inference::ModelInferRequest;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(mut request) = ModelInferRequest::decode(data) else { return };
    // Raw contents are taken as they come; the serving plane checks their size.
    let typed = request.raw_input_contents.is_empty();
    let Ok(converted) = to_infer_request(&mut request, &Model::Grpc.input_check()) else { return };
    if typed {
        converted.inputs.iter().for_each(assert_sized);
    }
    if !serve_checks(Model::Grpc, converted) || request.outputs.len() > Model::Grpc.config().outputs.len() {
        return;
    }
    if let Ok(outlined) = outline(data) {
        if let Err(error) = check_outline(&outlined, &Model::Grpc.input_check()) {
            panic!("the serving plane takes a request its precheck refuses: {error}");
        }
    }
});
