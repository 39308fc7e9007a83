//! Generates the node-to-node gRPC code from `proto/node.proto`, with the protoc that the
//! `protoc-bin-vendored` crate ships (no system protoc needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/node.proto");
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure().compile_with_config(
        config,
        &["proto/node.proto"],
        &["proto"],
    )?;
    Ok(())
}
