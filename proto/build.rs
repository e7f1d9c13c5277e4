//! Compiles the `.proto` contracts into Rust with `protox` (a pure-Rust
//! protobuf compiler, so no `protoc` is needed) and `tonic-prost-build`.
//!
//! Besides the generated code, it writes the encoded `FileDescriptorSet` to
//! `$OUT_DIR/descriptor.bin`, which the server hands to gRPC reflection.

use std::{env, fs, path::PathBuf};

use prost::Message;

/// Every contract this crate compiles, relative to the crate root.
const PROTOS: &[&str] = &["assistant.proto", "hello_world.proto", "messages.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Cargo re-runs this script only when a contract changes, not on every
    // edit anywhere in the crate.
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    println!("cargo:rerun-if-changed=build.rs");

    let fds = protox::compile(PROTOS, ["."])?;

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out_dir.join("descriptor.bin"), fds.encode_to_vec())?;

    tonic_prost_build::configure()
        // `bytes` fields become `bytes::Bytes`, so the server can hand out
        // slices of a story held in memory without copying them.
        .bytes(".")
        .compile_fds(fds)?;
    Ok(())
}
