//! The three streaming call shapes of the `ChatService`: `ChatStream`
//! (server streaming), `CollectStream` (client streaming) and `Chat`
//! (bidirectional).

use std::{future::Future, time::Duration};

use crate::{
    ClientError,
    call::{self, CallArgs, Ending, print_line},
    connect::Connection,
};
use assistant_proto::messages::{ChatMessage, chat_service_client::ChatServiceClient};
use tokio::{io::AsyncWrite, sync::mpsc};
use tokio_stream::{Stream, StreamExt, wrappers::UnboundedReceiverStream};

fn message(text: impl Into<String>) -> ChatMessage {
    ChatMessage {
        message_text: text.into(),
    }
}

/// Server streaming: sends `text` once, then prints
/// `Received message: {text}` for each message the moment it arrives.
pub async fn chat_stream<W: AsyncWrite + Unpin>(
    connection: Connection,
    text: String,
    options: &CallArgs,
    mut out: W,
    interrupt: impl Future<Output = ()>,
) -> Result<Ending, ClientError> {
    let mut client = call::compressed!(ChatServiceClient::new(connection.channel), options);
    let timeout = options.timeout;
    let receive = async {
        let mut replies = client
            .chat_stream(call::request(message(text), timeout))
            .await?
            .into_inner();
        while let Some(reply) = replies.message().await? {
            print_line(
                &mut out,
                &format!("Received message: {}", reply.message_text),
            )
            .await?;
        }
        Ok(())
    };
    call::run_reported(receive, interrupt, timeout).await
}

/// This server's name for the client-streaming call. The tutorial's
/// client-streaming example names it `ChatStream`, in a `.proto` of its
/// own; one service cannot hold two methods of one name.
pub const COLLECT_METHOD: &str = "CollectStream";

/// Client streaming: streams `texts` to `ChatService`'s `method` (this
/// server's [`COLLECT_METHOD`], or `ChatStream` for the tutorial's
/// server), then prints its one answer, the texts joined by spaces.
pub async fn collect<W: AsyncWrite + Unpin>(
    connection: Connection,
    method: &str,
    texts: impl Stream<Item = String> + Send + 'static,
    options: &CallArgs,
    mut out: W,
    interrupt: impl Future<Output = ()>,
) -> Result<Ending, ClientError> {
    let path =
        http::uri::PathAndQuery::try_from(format!("/ChatService/{method}")).map_err(|err| {
            ClientError::Setup(format!(
                "--method `{method}` cannot be a method name: {err}"
            ))
        })?;
    let mut client = call::compressed!(tonic::client::Grpc::new(connection.channel), options);
    let timeout = options.timeout;
    let (request, _cancel_on_drop) = call::streaming_request(texts.map(message), timeout);
    let send = async {
        // What the generated `collect_stream` does, on a path of our
        // choosing.
        client
            .ready()
            .await
            .map_err(|err| tonic::Status::unavailable(err.to_string()))?;
        let codec = tonic_prost::ProstCodec::<ChatMessage, ChatMessage>::default();
        let response = client
            .client_streaming(request, path, codec)
            .await?
            .into_inner();
        print_line(&mut out, &response.message_text).await?;
        Ok(())
    };
    call::run_reported(send, interrupt, timeout).await
}

/// Bidirectional streaming: sends each of `texts` as the stream yields it,
/// printing `Client Message: {text}`, while printing
/// `Received message: {reply}` for each reply the moment it arrives.
///
/// Sending and receiving run at once: a reply is printed while later texts
/// are still to be sent, and `texts` may even wait for a reply before
/// yielding the next text.
pub async fn chat<W: AsyncWrite + Unpin>(
    connection: Connection,
    texts: impl Stream<Item = String> + Send + 'static,
    options: &CallArgs,
    mut out: W,
    interrupt: impl Future<Output = ()>,
) -> Result<Ending, ClientError> {
    let mut client = call::compressed!(ChatServiceClient::new(connection.channel), options);
    let timeout = options.timeout;
    // The transport pulls texts from the request stream as it sends them;
    // each one is also passed back here to be printed, so that one task
    // owns `out` and the two kinds of line never tear each other.
    let (sent_tx, sent_rx) = mpsc::unbounded_channel();
    let outgoing = texts.map(move |text| {
        let _ = sent_tx.send(text.clone());
        message(text)
    });
    let (request, _cancel_on_drop) = call::streaming_request(outgoing, timeout);
    let talk = async {
        let mut sent = UnboundedReceiverStream::new(sent_rx);
        let mut replies = client.chat(request).await?.into_inner();
        let mut sending = true;
        loop {
            tokio::select! {
                // A text is announced before it is encoded, so its line is
                // always printed before the line of its reply.
                biased;
                text = sent.next(), if sending => match text {
                    Some(text) => print_line(&mut out, &format!("Client Message: {text}")).await?,
                    None => sending = false,
                },
                reply = replies.message() => match reply? {
                    Some(reply) => {
                        print_line(&mut out, &format!("Received message: {}", reply.message_text)).await?;
                    }
                    None => return Ok(()),
                },
            }
        }
    };
    call::run_reported(talk, interrupt, timeout).await
}

/// `texts` as a stream that waits `pause` between items, as the tutorial's
/// client sleeps between sends.
pub fn paced(texts: Vec<String>, pause: Duration) -> impl Stream<Item = String> + Send + 'static {
    let mut first = true;
    tokio_stream::iter(texts).then(move |text| {
        let wait = if std::mem::take(&mut first) {
            Duration::ZERO
        } else {
            pause
        };
        async move {
            tokio::time::sleep(wait).await;
            text
        }
    })
}
