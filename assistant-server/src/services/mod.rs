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
//! [`Router::new`]. The call layer (`crate::call`) then gives it a span, limits,
//! a deadline and a log line without further work.

mod chat;
mod greeter;
pub(crate) mod health;
mod reflection;
mod story;
mod validate;

use std::{
    convert::Infallible,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use assistant_proto::{
    assistant::assistant_service_server::AssistantServiceServer,
    hello_world::greeter_server::GreeterServer, messages::chat_service_server::ChatServiceServer,
};
use tonic::{codec::CompressionEncoding, server::NamedService, service::Routes};

use self::{chat::Chat, greeter::Greeting, health::Health, story::Assistant};
use crate::{call::MAX_REQUEST_BYTES, config::Config, library::Library, wire::ResponseBody};

/// The path of `TellStory`, whose text the metrics count as story bytes.
pub(crate) const TELL_STORY_PATH: &str = story::direct::PATH;

/// The path of `ListStories`.
pub(crate) const LIST_STORIES_PATH: &str = "/assistant.AssistantService/ListStories";

/// The names of the application's services, as health reports them.
pub(crate) const SERVICES: [&str; 3] = [
    AssistantServiceServer::<Assistant>::NAME,
    GreeterServer::<Greeting>::NAME,
    ChatServiceServer::<Chat>::NAME,
];

/// A generated service set up as every service is: it accepts gzip and
/// zstd requests, refuses any message over the request limit once
/// decompressed (RESOURCE_EXHAUSTED), and compresses its answers only with
/// `--compress-responses`. (The generated servers share no trait for this.)
///
/// Compression is opt-in because grpcio and grpc-js advertise gzip on
/// every call: answering in it by default cost about 20 times the CPU per
/// story, for text a local client had no need to have compressed.
macro_rules! configured {
    ($service:expr, $config:expr) => {{
        let service = $service
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd)
            .max_decoding_message_size(MAX_REQUEST_BYTES);
        if $config.compress_responses {
            service
                .send_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Zstd)
        } else {
            service
        }
    }};
}

/// Every service the server answers, by path: the application's, health
/// (as `health` reports it) and reflection.
#[derive(Debug, Clone)]
pub(crate) struct Router {
    routes: Routes,
    /// `TellStory` answered directly ([`story::direct`]); `None` when
    /// responses are compressed, which only tonic's encoder does.
    direct_story: Option<Arc<Assistant>>,
}

impl Router {
    pub(crate) fn new(library: Library, config: &Config, health: &Health) -> anyhow::Result<Self> {
        let assistant = Assistant::new(library, config);
        let routes = Routes::new(health.service())
            .add_service(reflection::v1()?)
            .add_service(reflection::v1alpha()?)
            .add_service(configured!(
                AssistantServiceServer::new(assistant.clone()),
                config
            ))
            .add_service(configured!(GreeterServer::new(Greeting), config))
            .add_service(configured!(
                ChatServiceServer::new(Chat::new(config)),
                config
            ))
            .prepare();
        Ok(Self {
            routes,
            direct_story: (!config.compress_responses).then(|| Arc::new(assistant)),
        })
    }
}

type RouterFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<ResponseBody>, Infallible>> + Send>>;

impl tower_service::Service<http::Request<tonic::body::Body>> for Router {
    type Response = http::Response<ResponseBody>;
    type Error = Infallible;
    type Future = RouterFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        tower_service::Service::<http::Request<tonic::body::Body>>::poll_ready(&mut self.routes, cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> RouterFuture {
        if let Some(assistant) = &self.direct_story
            && request.uri().path() == story::direct::PATH
        {
            return story::direct::tell_story(assistant, request);
        }
        let answer = self.routes.call(request);
        Box::pin(async move {
            let response = answer.await?;
            Ok(response.map(ResponseBody::Tonic))
        })
    }
}

/// Waits `delay`; no timer at all for zero.
async fn pause(delay: Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}
