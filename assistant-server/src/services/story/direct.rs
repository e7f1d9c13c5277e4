//! `TellStory` answered directly: the request read and checked as tonic
//! would, and the response as [`StoryMessage`]s, each framed around a
//! slice of the story with nothing copied but a call's first message, or
//! as runs of the story's chunk messages framed once for calls alike
//! (see [`crate::wire`]).
//!
//! Only the transport's side differs from tonic's: the same checks, the
//! same statuses, the same bytes on the wire (a test compares them).

use std::{
    convert::Infallible,
    ops::Range,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use assistant_proto::assistant::{TellStoryRequest, TellStoryResponse};
use bytes::Buf;
use http_body::{Body, Frame};
use tokio_stream::{Stream, StreamExt};
use tonic::{
    Code, Status,
    codec::{BufferSettings, CompressionEncoding, Streaming},
};
use tonic_prost::ProstCodec;

use super::{
    Assistant,
    telling::{Piece, Pieces, STORY_FINISHED},
};
use crate::{
    call::{CallContext, MAX_REQUEST_BYTES},
    services::RouterFuture,
    wire::{Chunk, ResponseBody, StoryMessage, StoryMessages},
};

/// The method this route answers.
pub(crate) const PATH: &str = "/assistant.AssistantService/TellStory";

/// Answers one `TellStory` call.
///
/// The request's headers are read at once, so that the future, which
/// waits for the request message, holds only what that wait needs
/// ([`answer`]). When thousands of calls start at once, thousands wait
/// for their request together.
pub(crate) fn tell_story(
    assistant: &Arc<Assistant>,
    request: http::Request<tonic::body::Body>,
) -> RouterFuture {
    match read_request(request) {
        Ok((call, messages)) => Box::pin(answer(Arc::clone(assistant), call, messages)),
        Err(status) => Box::pin(std::future::ready(Ok(respond(Err(status))))),
    }
}

/// Waits for the request message, then answers it: about 260 bytes while
/// it waits, the message's decoder most of them. As nested `async fn`s
/// that took the request, it was 2.4 KB: each kept its arguments twice,
/// and room for the story's lookup.
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn would hold its arguments twice"
)]
fn answer(
    assistant: Arc<Assistant>,
    call: CallContext,
    mut messages: Streaming<TellStoryRequest>,
) -> impl Future<Output = Result<http::Response<ResponseBody>, Infallible>> + Send {
    async move {
        // Boxed: finding the story may mean reading it from disk, and that
        // wait's state would otherwise take room in every call's future.
        let begin = match messages.try_next().await {
            Ok(Some(message)) => Box::pin(assistant.begin(call, message)),
            Ok(None) => return Ok(respond(Err(Status::internal("Missing request message.")))),
            Err(status) => return Ok(respond(Err(status))),
        };
        let body = begin.await.map(|mut telling| {
            telling.share_framing(&assistant.framings);
            StoryBody {
                pieces: telling.into_pieces(),
                held: None,
                ending: None,
                done: false,
            }
        });
        Ok(respond(body))
    }
}

/// The call's context, and its request messages as tonic would decode
/// them; or why the request cannot be read.
///
/// Runs in the router's `call`, outside the call's span (the call layer
/// enters it around the future only): nothing here may log, or name the
/// caller.
fn read_request(
    request: http::Request<tonic::body::Body>,
) -> Result<(CallContext, Streaming<TellStoryRequest>), Status> {
    let call = request
        .extensions()
        .get::<CallContext>()
        .cloned()
        .unwrap_or_default();
    let encoding = request_encoding(request.headers())?;
    // tonic's decoder starts with an 8 KiB buffer. A request is a few
    // dozen bytes, and when thousands of calls start at once, each holds
    // its buffer until its request arrives; the buffer grows if it must.
    let decoder = ProstCodec::<TellStoryResponse, TellStoryRequest>::raw_decoder(
        BufferSettings::new(REQUEST_BUFFER, DEFAULT_YIELD_THRESHOLD),
    );
    let messages = Streaming::new_request(
        decoder,
        request.into_body(),
        encoding,
        Some(MAX_REQUEST_BYTES),
    );
    Ok((call, messages))
}

/// The response: the story's messages, or the status alone.
fn respond(body: Result<StoryBody, Status>) -> http::Response<ResponseBody> {
    match body {
        Ok(body) => {
            let mut response = http::Response::new(ResponseBody::Story(Box::pin(body)));
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/grpc"),
            );
            response
        }
        Err(status) => status.into_http().map(ResponseBody::Tonic),
    }
}

/// How the request message is compressed, as tonic reads `grpc-encoding`.
fn request_encoding(headers: &http::HeaderMap) -> Result<Option<CompressionEncoding>, Status> {
    match headers
        .get("grpc-encoding")
        .map(http::HeaderValue::as_bytes)
    {
        None | Some(b"identity") => Ok(None),
        Some(b"gzip") => Ok(Some(CompressionEncoding::Gzip)),
        Some(b"zstd") => Ok(Some(CompressionEncoding::Zstd)),
        Some(other) => Err(Status::unimplemented(format!(
            "Content is compressed with `{}` which isn't supported",
            String::from_utf8_lossy(other)
        ))),
    }
}

/// The request decoder's first buffer: room for a usual request.
const REQUEST_BUFFER: usize = 256;

/// tonic's default, which decoding a request this small never reaches.
const DEFAULT_YIELD_THRESHOLD: usize = 32 * 1024;

/// How many bytes of story messages one frame gathers from messages that
/// are ready at once; a paced story sends each on its own. A run of a
/// shared framing's messages stops short of it: 16 KiB is the largest
/// DATA frame every peer accepts (`SETTINGS_MAX_FRAME_SIZE`'s least).
const FRAME: usize = 16 * 1024;

/// The story's messages, then trailers with the call's status.
struct StoryBody {
    pieces: Pieces,
    /// A piece that could not join the last frame, for the next.
    held: Option<Piece>,
    /// The status that ends the call, once the messages before it are out.
    ending: Option<Status>,
    done: bool,
}

fn trailers(status: &Status) -> Poll<Option<Result<Frame<Chunk>, Status>>> {
    let mut trailers = http::HeaderMap::new();
    if let Some((code, message)) = usual_ending(status) {
        trailers.insert("grpc-status", http::HeaderValue::from_static(code));
        if let Some(message) = message {
            trailers.insert("grpc-message", http::HeaderValue::from_static(message));
        }
        return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
    }
    match status.add_header(&mut trailers) {
        Ok(()) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
        Err(status) => Poll::Ready(Some(Err(status))),
    }
}

/// The trailers' values for the endings of every story told, as
/// `Status::add_header` writes them (a test compares them), without
/// encoding them again for each call.
fn usual_ending(status: &Status) -> Option<(&'static str, Option<&'static str>)> {
    if !status.metadata().is_empty() || !status.details().is_empty() {
        return None;
    }
    match (status.code(), status.message()) {
        (Code::Ok, "") => Some(("0", None)),
        (Code::Cancelled, STORY_FINISHED) => Some(("1", Some("story%20finished"))),
        _ => None,
    }
}

impl Body for StoryBody {
    type Data = Chunk;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Chunk>, Status>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(status) = this.ending.take() {
            this.done = true;
            return trailers(&status);
        }
        // Every message ready now goes in one frame, up to FRAME bytes:
        // HTTP/2 frames and the work per frame are few, and none of it is
        // more than flow control lets out (the transport waits for room
        // before it takes the next frame). A frame is either messages
        // framed here, or one run of the shared framing's.
        let mut messages = StoryMessages::default();
        // The run's bytes in the framing, and how many messages.
        let mut run: Option<(Range<usize>, usize)> = None;
        while run
            .as_ref()
            .map_or(messages.remaining(), |(run, _)| run.len())
            < FRAME
        {
            let polled = match this.held.take() {
                Some(piece) => Poll::Ready(Some(Ok(piece))),
                None => Pin::new(&mut this.pieces).poll_next(cx),
            };
            match polled {
                Poll::Ready(Some(Ok(piece))) => match (&mut run, &piece.framed) {
                    // A run stays within one HTTP/2 frame of the smallest
                    // size a peer may allow, so that it is not split into
                    // a full frame and a sliver.
                    (Some((run, count)), Some(framed))
                        if run.end == framed.start && framed.end - run.start <= FRAME =>
                    {
                        run.end = framed.end;
                        *count += 1;
                    }
                    (None, Some(framed)) if messages.len() == 0 => run = Some((framed.clone(), 1)),
                    (None, None) => {
                        let version = piece.version.as_deref().unwrap_or_default();
                        messages.push(StoryMessage::new(piece.text, piece.offset, version));
                    }
                    // Not of a kind with the frame: it starts the next.
                    _ => {
                        this.held = Some(piece);
                        break;
                    }
                },
                Poll::Ready(Some(Err(status))) => {
                    this.ending = Some(status);
                    break;
                }
                Poll::Ready(None) => {
                    this.ending = Some(Status::ok(""));
                    break;
                }
                Poll::Pending if messages.len() == 0 && run.is_none() => return Poll::Pending,
                Poll::Pending => break,
            }
        }
        if let Some((run, count)) = run {
            // Pieces point into a framing only when the telling has one.
            let Some(framing) = this.pieces.framing() else {
                return Poll::Ready(Some(Err(Status::internal(
                    "the story's framing is missing",
                ))));
            };
            let framed = Chunk::Framed(framing.slice(run), count);
            return Poll::Ready(Some(Ok(Frame::data(framed))));
        }
        if messages.len() == 0 {
            // The story ended with nothing ready before its status.
            return self.poll_frame(cx);
        }
        Poll::Ready(Some(Ok(Frame::data(Chunk::Story(messages)))))
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(status: &Status) -> http::HeaderMap {
        match trailers(status) {
            Poll::Ready(Some(Ok(frame))) => frame.into_trailers().expect("trailers"),
            _ => panic!("no trailers for {status:?}"),
        }
    }

    #[test]
    fn the_usual_endings_are_the_trailers_tonic_writes() {
        for status in [
            Status::ok(""),
            Status::cancelled(STORY_FINISHED),
            Status::cancelled("story finished!"),
            Status::internal("story finished"),
            Status::unavailable("server shutting down"),
        ] {
            let mut expected = http::HeaderMap::new();
            status.add_header(&mut expected).expect("headers");
            assert_eq!(sent(&status), expected, "{status:?}");
        }
        assert!(usual_ending(&Status::cancelled(STORY_FINISHED)).is_some());
    }

    #[test]
    fn a_call_waiting_for_its_request_holds_little() {
        // Thousands of calls opened at once each wait in this until their
        // request arrives. It is about 260 bytes, most of them the
        // decoder; 2.4 KB as nested `async fn`s. The bound leaves room for
        // a compiler or tonic that lays things out a little differently.
        let size = crate::sizes::returned_size_3(answer);
        assert!(
            size <= 384,
            "a call waiting for its request holds {size} bytes"
        );
    }
}
