//! The `ChatService`: the server-streaming, client-streaming and
//! bidirectional-streaming call shapes, as the second tutorial shows them.

use std::{net::SocketAddr, pin::Pin, time::Duration};

use assistant_proto::{
    messages::{ChatMessage, chat_service_server::ChatService},
    text::Escaped,
};
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};
use tracing::info;

use crate::{
    calls::Calls,
    config::Config,
    shutdown::{SHUTTING_DOWN, pause},
};

/// What `ChatStream` answers, whatever it is asked.
pub const CHAT_STREAM_TEXTS: [&str; 3] =
    ["Hello world", "This is server streaming grpc", "Good bye"];

/// The chat service. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Chat {
    stream_delay: Duration,
    reply_delay: Duration,
    calls: Calls,
    shutdown: CancellationToken,
}

impl Chat {
    /// A chat service paced as `config` says, counting its calls in
    /// `calls`. Cancelling `shutdown` ends its streams with UNAVAILABLE.
    pub fn new(config: &Config, calls: Calls, shutdown: CancellationToken) -> Self {
        Self {
            stream_delay: config.chat_stream_delay,
            reply_delay: config.chat_reply_delay,
            calls,
            shutdown,
        }
    }
}

/// A stream of chat messages answering one call.
pub type ChatMessages = Pin<Box<dyn Stream<Item = Result<ChatMessage, Status>> + Send>>;

/// Who made a call, for the logs.
fn peer<T>(request: &Request<T>) -> String {
    request
        .remote_addr()
        .as_ref()
        .map_or_else(|| "unknown peer".to_owned(), SocketAddr::to_string)
}

/// The next message from the client: `None` once it has finished sending,
/// UNAVAILABLE if shutdown begins while waiting.
async fn next(
    incoming: &mut Streaming<ChatMessage>,
    shutdown: &CancellationToken,
) -> Result<Option<ChatMessage>, Status> {
    tokio::select! {
        received = incoming.message() => received,
        () = shutdown.cancelled() => Err(Status::unavailable(SHUTTING_DOWN)),
    }
}

fn message(text: impl Into<String>) -> ChatMessage {
    ChatMessage {
        message_text: text.into(),
    }
}

#[tonic::async_trait]
impl ChatService for Chat {
    type ChatStreamStream = ChatMessages;

    /// Server streaming: three fixed messages, with a pause after each.
    async fn chat_stream(
        &self,
        request: Request<ChatMessage>,
    ) -> Result<Response<Self::ChatStreamStream>, Status> {
        let mut call = self.calls.start(peer(&request));
        let (delay, shutdown) = (self.stream_delay, self.shutdown.clone());
        let stream = async_stream::stream! {
            for text in CHAT_STREAM_TEXTS {
                call.sent(text.len());
                yield Ok(message(text));
                if let Err(status) = pause(delay, &shutdown).await {
                    call.end();
                    yield Err(status);
                    return;
                }
            }
            call.end();
        };
        Ok(Response::new(Box::pin(stream)))
    }

    /// Client streaming: every text received, joined by single spaces.
    async fn collect_stream(
        &self,
        request: Request<Streaming<ChatMessage>>,
    ) -> Result<Response<ChatMessage>, Status> {
        let mut call = self.calls.start(peer(&request));
        let mut incoming = request.into_inner();
        let mut texts = Vec::new();
        loop {
            match next(&mut incoming, &self.shutdown).await {
                Ok(Some(received)) => texts.push(received.message_text),
                Ok(None) => break,
                Err(status) => {
                    if self.shutdown.is_cancelled() {
                        call.end();
                    }
                    return Err(status);
                }
            }
        }
        let joined = texts.join(" ");
        call.sent(joined.len());
        call.end();
        Ok(Response::new(message(joined)))
    }

    type ChatStream = ChatMessages;

    /// Bidirectional streaming: each text answered as it arrives.
    async fn chat(
        &self,
        request: Request<Streaming<ChatMessage>>,
    ) -> Result<Response<Self::ChatStream>, Status> {
        let mut call = self.calls.start(peer(&request));
        let mut incoming = request.into_inner();
        let (delay, shutdown) = (self.reply_delay, self.shutdown.clone());
        let stream = async_stream::stream! {
            loop {
                match next(&mut incoming, &shutdown).await {
                    Ok(Some(received)) => {
                        let text = received.message_text;
                        info!("Client Message: {}", Escaped(text.as_bytes()));
                        let reply = format!("Received: {text}");
                        call.sent(reply.len());
                        yield Ok(message(reply));
                        if let Err(status) = pause(delay, &shutdown).await {
                            call.end();
                            yield Err(status);
                            return;
                        }
                    }
                    // The client finished sending: the conversation is over.
                    Ok(None) => break,
                    // Shutdown, or the client's side of the call broke (it is
                    // then logged as gone when `call` drops).
                    Err(status) => {
                        if shutdown.is_cancelled() {
                            call.end();
                        }
                        yield Err(status);
                        return;
                    }
                }
            }
            call.end();
        };
        Ok(Response::new(Box::pin(stream)))
    }
}
