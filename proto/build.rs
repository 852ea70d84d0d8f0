//! Compiles the .proto files with protox (pure Rust), so no system `protoc` is needed.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "mapreduce/v1/common.proto",
    "mapreduce/v1/ticket.proto",
    "mapreduce/v1/control.proto",
    "mapreduce/v1/admin.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("proto");
    let files: Vec<PathBuf> = PROTOS.iter().map(|p| root.join(p)).collect();
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let fds = protox::compile(&files, [&root])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
