//! Generated protobuf messages and gRPC stubs for the assistant service,
//! plus the few helpers that both `assistant-server` and
//! `assistant-client` share.
//!
//! The modules [`assistant`], [`hello_world`] and [`messages`] are generated
//! at build time from the `.proto` files beside `build.rs`, one module per
//! file. To read the code, open the generated files
//! `target/release/build/assistant-proto-*/out/assistant.rs` (and
//! `hello_world/_.rs`, `messages/_.rs`: those contracts have no package),
//! or run `cargo doc -p assistant-proto --open`.

pub mod codes;
pub mod seconds;
pub mod sequence;
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

/// `hello_world.proto`, the tutorial's unary call. It has no protobuf
/// package: the service is `Greeter`, at `/Greeter/SayHello`.
///
/// [`hello_world::greeter_server`] and [`hello_world::greeter_client`] hold
/// the server trait and the client stub of the `Greeter` service.
pub mod hello_world {
    #![allow(missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/hello_world/_.rs"));
}

/// `messages.proto`, the three streaming call shapes. It has no protobuf
/// package: the service is `ChatService`, at `/ChatService/...`.
///
/// [`messages::chat_service_server`] and [`messages::chat_service_client`]
/// hold the server trait and the client stub of the `ChatService`.
pub mod messages {
    #![allow(missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/messages/_.rs"));
}

/// The encoded `FileDescriptorSet` of every contract in this crate, for
/// gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("descriptor");
