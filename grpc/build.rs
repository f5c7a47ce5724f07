//! Generates the gRPC service and messages from `proto/grpc_service.proto`
//! (protoc comes from scripts/setup.sh, or PROTOC).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/grpc_service.proto");
    tonic_prost_build::configure()
        .bytes(".inference.ModelInferRequest.raw_input_contents")
        .bytes(".inference.ModelInferResponse.raw_output_contents")
        .compile_protos(&["proto/grpc_service.proto"], &["proto"])?;
    Ok(())
}
