//! Running the server like a production service: health, reflection,
//! graceful shutdown, deadlines, cancellation, bad input, limits and logs,
//! one module each. Each test drives a real server on a loopback port.

mod bad_input;
mod cancellation;
mod connections;
mod deadlines;
mod health;
mod limits;
mod logs;
mod metrics;
mod reflection;
mod shutdown;
mod web;

use std::time::Duration;

use assistant_proto::{
    assistant::assistant_service_client::AssistantServiceClient,
    hello_world::{HelloRequest, greeter_client::GreeterClient},
    messages::{ChatMessage, chat_service_client::ChatServiceClient},
};
use assistant_server::Config;
use assistant_test_support::{
    LogCapture, PATIENCE, TestServer,
    fixtures::{fast_config, peter, slow_config},
    raw,
};
use tokio::time::timeout;
use tonic::{Code, transport::Channel};

/// The application's services.
const SERVICES: [&str; 3] = ["assistant.AssistantService", "Greeter", "ChatService"];

/// `texts` as a stream of chat messages.
fn texts(texts: &[&str]) -> impl tokio_stream::Stream<Item = ChatMessage> + use<> {
    let messages: Vec<ChatMessage> = texts
        .iter()
        .map(|t| ChatMessage {
            message_text: (*t).into(),
        })
        .collect();
    tokio_stream::iter(messages)
}

/// Asserts that the server still answers an ordinary call.
async fn still_serves(channel: &Channel) {
    let reply = GreeterClient::new(channel.clone())
        .say_hello(HelloRequest {
            name: "again".into(),
        })
        .await
        .unwrap();
    assert_eq!(reply.into_inner().response_text, "Hello, again!");
}
