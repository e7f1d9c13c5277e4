//! The `ChatService`: the server-streaming, client-streaming and
//! bidirectional-streaming call shapes, as the second tutorial shows them.

use std::{pin::Pin, time::Duration};

use assistant_proto::{
    messages::{ChatMessage, chat_service_server::ChatService},
    text::Escaped,
};
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};
use tracing::info;

use super::pause;
use crate::{call::CallContext, config::Config};

/// What `ChatStream` answers, whatever it is asked.
const CHAT_STREAM_TEXTS: [&str; 3] = ["Hello world", "This is server streaming grpc", "Good bye"];

/// The chat service. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Chat {
    stream_delay: Duration,
    reply_delay: Duration,
    limits: StreamLimits,
}

impl Chat {
    /// A chat service paced and limited as `config` says.
    pub(crate) fn new(config: &Config) -> Self {
        Self {
            stream_delay: config.chat_stream_delay,
            reply_delay: config.chat_reply_delay,
            limits: StreamLimits {
                max_messages: config.max_stream_messages,
                max_bytes: config.max_stream_bytes,
            },
        }
    }
}

/// How much one client stream may send.
#[derive(Debug, Clone, Copy)]
struct StreamLimits {
    max_messages: u64,
    max_bytes: u64,
}

/// Counts a client stream against its [`StreamLimits`].
#[derive(Debug)]
struct Intake {
    limits: StreamLimits,
    messages: u64,
    bytes: u64,
}

impl Intake {
    fn new(limits: StreamLimits) -> Self {
        Self {
            limits,
            messages: 0,
            bytes: 0,
        }
    }

    /// Counts `message`; RESOURCE_EXHAUSTED once the stream is over a limit.
    fn admit(&mut self, message: &ChatMessage) -> Result<(), Status> {
        self.messages += 1;
        self.bytes += message.message_text.len() as u64;
        if self.messages > self.limits.max_messages {
            return Err(Status::resource_exhausted(format!(
                "a stream may send at most {} messages",
                self.limits.max_messages
            )));
        }
        if self.bytes > self.limits.max_bytes {
            return Err(Status::resource_exhausted(format!(
                "a stream may send at most {} bytes of text",
                self.limits.max_bytes
            )));
        }
        Ok(())
    }
}

/// A stream of chat messages answering one call.
pub(crate) type ChatMessages = Pin<Box<dyn Stream<Item = Result<ChatMessage, Status>> + Send>>;

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
        let call = CallContext::of(&request);
        let delay = self.stream_delay;
        let stream = async_stream::stream! {
            for text in CHAT_STREAM_TEXTS {
                call.sent(text.len());
                yield Ok(message(text));
                pause(delay).await;
            }
        };
        Ok(Response::new(Box::pin(stream)))
    }

    /// Client streaming: every text received, joined by single spaces.
    async fn collect_stream(
        &self,
        request: Request<Streaming<ChatMessage>>,
    ) -> Result<Response<ChatMessage>, Status> {
        let call = CallContext::of(&request);
        let mut incoming = request.into_inner();
        let mut intake = Intake::new(self.limits);
        let mut texts = Vec::new();
        while let Some(received) = incoming.message().await? {
            intake.admit(&received)?;
            texts.push(received.message_text);
        }
        let joined = texts.join(" ");
        call.sent(joined.len());
        Ok(Response::new(message(joined)))
    }

    type ChatStream = ChatMessages;

    /// Bidirectional streaming: each text answered as it arrives.
    async fn chat(
        &self,
        request: Request<Streaming<ChatMessage>>,
    ) -> Result<Response<Self::ChatStream>, Status> {
        let call = CallContext::of(&request);
        let mut incoming = request.into_inner();
        let mut intake = Intake::new(self.limits);
        let delay = self.reply_delay;
        let stream = async_stream::stream! {
            loop {
                let received = match incoming.message().await {
                    // The client finished sending: the conversation is over.
                    Ok(None) => break,
                    Ok(Some(received)) => received,
                    Err(status) => {
                        yield Err(status);
                        break;
                    }
                };
                if let Err(status) = intake.admit(&received) {
                    yield Err(status);
                    break;
                }
                let text = received.message_text;
                info!("Client Message: {}", Escaped(text.as_bytes()));
                let reply = format!("Received: {text}");
                call.sent(reply.len());
                yield Ok(message(reply));
                pause(delay).await;
            }
        };
        Ok(Response::new(Box::pin(stream)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intake_refuses_past_either_limit() {
        let limits = StreamLimits {
            max_messages: 2,
            max_bytes: 10,
        };
        let mut intake = Intake::new(limits);
        assert!(intake.admit(&message("abc")).is_ok());
        assert!(intake.admit(&message("def")).is_ok());
        let status = intake.admit(&message("g")).unwrap_err();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);

        let mut intake = Intake::new(limits);
        assert!(intake.admit(&message("0123456789")).is_ok());
        let status = intake.admit(&message("x")).unwrap_err();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    }
}
