//! Generated protobuf messages and gRPC stubs for the assistant service,
//! plus the few helpers that both `assistant-server` and
//! `assistant-client` share.
//!
//! The code under [`assistant`] is generated at build time from
//! `proto/assistant.proto` by `build.rs`. To read it, open the generated
//! file `target/debug/build/assistant-proto-*/out/assistant.rs`, or run
//! `cargo doc -p assistant-proto --open`.

pub mod seconds;
pub mod text;

/// The `assistant` protobuf package: the story-telling service.
///
/// - [`assistant::TellStoryRequest`] and [`assistant::TellStoryResponse`]
///   are the messages.
/// - [`assistant::assistant_service_server`] holds the trait a server
///   implements and the tower service that wraps it.
/// - [`assistant::assistant_service_client`] holds the client stub.
pub mod assistant {
    #![allow(missing_docs)]
    tonic::include_proto!("assistant");
}

/// The encoded `FileDescriptorSet` of every contract in this crate, for
/// gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("descriptor");
