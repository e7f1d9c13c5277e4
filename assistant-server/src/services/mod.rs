//! The gRPC services the server answers: one file per service.
//!
//! - [`story`]: `assistant.AssistantService`, the tutorial's `TellStory`
//!   (server streaming) and `ListStories`;
//! - [`greeter`]: `hello_world.Greeter`, the unary call shape;
//! - [`chat`]: `messages.ChatService`, the three streaming call shapes;
//! - [`health`] and [`reflection`]: the standard services that tools and
//!   load balancers ask.
//!
//! To add an RPC, add it to a `.proto` file in `proto/`, implement it in
//! the service's file here, and, for a new service, register it in
//! [`routes`]. The call layer (`crate::call`) then gives it a span, limits,
//! a deadline and a log line without further work.

mod chat;
mod greeter;
pub(crate) mod health;
mod reflection;
mod story;
mod validate;

use std::time::Duration;

use assistant_proto::{
    assistant::assistant_service_server::AssistantServiceServer,
    hello_world::greeter_server::GreeterServer, messages::chat_service_server::ChatServiceServer,
};
use tonic::{codec::CompressionEncoding, server::NamedService, service::Routes};

use self::{chat::Chat, greeter::Greeting, health::Health, story::Assistant};
use crate::{config::Config, library::Library};

/// The names of the application's services, as health reports them.
pub(crate) const SERVICES: [&str; 3] = [
    AssistantServiceServer::<Assistant>::NAME,
    GreeterServer::<Greeting>::NAME,
    ChatServiceServer::<Chat>::NAME,
];

/// A generated service that accepts gzip and zstd requests, and answers in
/// whichever of them the client accepts. (The generated servers share no
/// trait for this.)
macro_rules! compressible {
    ($service:expr) => {
        $service
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd)
            .send_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Zstd)
    };
}

/// Every service the server answers, by path: the application's, health
/// (as `health` reports it) and reflection.
pub(crate) fn routes(library: Library, config: &Config, health: &Health) -> anyhow::Result<Routes> {
    Ok(Routes::new(health.service())
        .add_service(reflection::v1()?)
        .add_service(reflection::v1alpha()?)
        .add_service(compressible!(AssistantServiceServer::new(Assistant::new(
            library, config
        ))))
        .add_service(compressible!(GreeterServer::new(Greeting)))
        .add_service(compressible!(ChatServiceServer::new(Chat::new(config))))
        .prepare())
}

/// Waits `delay`; no timer at all for zero.
async fn pause(delay: Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}
