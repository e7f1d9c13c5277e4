//! Compiles the `.proto` contracts into Rust with `protox` (a pure-Rust
//! protobuf compiler, so no `protoc` is needed) and `tonic-prost-build`.
//!
//! Besides the generated code, it writes the encoded `FileDescriptorSet` of
//! every contract to `$OUT_DIR/descriptor.bin`, which the server hands to
//! gRPC reflection.

use std::{env, fs, path::PathBuf};

use prost::Message;

/// Every contract this crate compiles, relative to the crate root, and the
/// folder of `$OUT_DIR` its code goes to. The tutorial's `hello_world` and
/// `messages` contracts have no `package`, and code generated without one
/// is named after no package (`_.rs`), so each gets a folder of its own.
const PROTOS: &[(&str, &str)] = &[
    ("assistant.proto", "."),
    ("hello_world.proto", "hello_world"),
    ("messages.proto", "messages"),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Cargo re-runs this script only when a contract changes, not on every
    // edit anywhere in the crate.
    for (proto, _) in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    println!("cargo:rerun-if-changed=build.rs");

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let all = protox::compile(PROTOS.iter().map(|(proto, _)| proto), ["."])?;
    fs::write(out_dir.join("descriptor.bin"), all.encode_to_vec())?;

    for (proto, folder) in PROTOS {
        let out = out_dir.join(folder);
        fs::create_dir_all(&out)?;
        tonic_prost_build::configure()
            // `bytes` fields become `bytes::Bytes`, so the server can hand
            // out slices of a story held in memory without copying them.
            .bytes(".")
            .out_dir(&out)
            .compile_fds(protox::compile([proto], ["."])?)?;
    }
    Ok(())
}
