//! gRPC server reflection (`grpc.reflection.v1` and the older `v1alpha`),
//! describing every service served, health included, so tools such as
//! grpcurl need no `.proto` files.

use anyhow::Context;
use tonic_reflection::server::{Builder, v1, v1alpha};

/// The descriptors of every service served.
fn builder() -> Builder<'static> {
    Builder::configure()
        .register_encoded_file_descriptor_set(assistant_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}

/// Reflection `v1`.
pub(super) fn v1() -> anyhow::Result<v1::ServerReflectionServer<impl v1::ServerReflection>> {
    builder()
        .build_v1()
        .context("cannot build the reflection service")
}

/// Reflection `v1alpha`, for tools that still speak it.
pub(super) fn v1alpha()
-> anyhow::Result<v1alpha::ServerReflectionServer<impl v1alpha::ServerReflection>> {
    builder()
        .build_v1alpha()
        .context("cannot build the reflection service")
}
