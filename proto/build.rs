//! Generates the status API from `proto/` with the system protoc (Debian `protobuf-compiler`,
//! which etcd-client needs anyway).
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure()
        .compile_protos(&["proto/brindle/status/v1/status.proto"], &["proto"])?;
    Ok(())
}
