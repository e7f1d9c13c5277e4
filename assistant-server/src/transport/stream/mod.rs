//! Serving one HTTP/2 stream: one call, from its request to its last
//! frame.
//!
//! The response is sent as HTTP/2 flow control lets it go: a frame is
//! taken from the call's body only once the client can take some of it,
//! and sent as the client's window opens; only once it is all sent is the
//! next one taken. So a call runs at most one frame ahead of its client,
//! a call whose client stopped reading makes nothing more, and nothing of
//! it waits inside HTTP/2 beyond what the window allows. While a frame
//! waits, the call layer's deadline and shutdown still apply: past either,
//! the call's body is dropped, which frees what the call held, and the
//! stream ends with the call's status (trailers are not flow-controlled),
//! after the rest of a message already begun if the client takes it; or
//! with RST_STREAM CANCEL if it does not.
//!
//! The call ends when its last frame is written, not when it is queued
//! ([`super::ends`]): until then it keeps its place under `--max-calls`,
//! and a client that does not read the end of its response stalls it like
//! any other.
//!
//! A frame that waits for its client longer than a moment is a stall, and
//! the server says so, once when it begins and once when the client reads
//! again: backpressure a learner can see in the log.

mod wait;

use std::{
    convert::Infallible,
    future::{Future, poll_fn},
    pin::Pin,
    sync::Arc,
    task::Poll,
    time::Duration,
};

use bytes::{Buf, Bytes};
use h2::{Reason, RecvStream, SendStream, server::SendResponse};
use http_body::Body;
use tonic::Status;
use tower_service::Service;

use self::wait::{Stall, Waited, wait_for_capacity, wait_on_client};
use super::{
    ends::{Ended, StreamEnds},
    incoming::IncomingBody,
};
use crate::{
    call::{CallBody, CallService},
    services::Router,
    wire::Chunk,
};

/// Serves one call on its stream; `ends` says when its last frame is
/// written.
///
/// A call's task lives as long as its stream, and its future's size is
/// the most any of its steps needs: the start (the service's future, the
/// request) and the rare waits are boxed, so that a stream that is just
/// sending, which is most of them at any moment, holds only what sending
/// needs.
pub(super) fn serve(
    service: CallService<Router>,
    request: http::Request<RecvStream>,
    respond: SendResponse<Chunk>,
    ends: Arc<StreamEnds>,
) -> impl Future<Output = ()> + Send + 'static {
    let start = Box::pin(start(service, request, respond));
    async move {
        let Some((body, send)) = start.await else {
            return;
        };
        pump(body, send, &ends).await;
    }
}

/// Calls the service, and sends the response's headers; the body and
/// stream, if the response has a body to send.
///
/// A plain function around an `async` block, as [`pump`] is: as an
/// `async fn` it kept the request twice, and a call waiting for its
/// request held 1,176 bytes here.
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn would hold its arguments twice"
)]
fn start(
    mut service: CallService<Router>,
    request: http::Request<RecvStream>,
    mut respond: SendResponse<Chunk>,
) -> impl Future<Output = Option<(CallBody, SendStream<Chunk>)>> + Send {
    async move {
        let ready: Result<(), Infallible> =
            poll_fn(|cx| Service::<http::Request<IncomingBody>>::poll_ready(&mut service, cx))
                .await;
        let Ok(()) = ready;
        let response = match service.call(request.map(IncomingBody::new)).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let (parts, body) = response.into_parts();
        // A call that failed before its first message answers in headers
        // alone (a "trailers-only" response).
        let end_of_stream = body.is_end_stream();
        let send = respond
            .send_response(http::Response::from_parts(parts, ()), end_of_stream)
            .ok()?;
        (!end_of_stream).then_some((body, send))
    }
}

/// How a stream's response ends, once its frames are sent.
enum Last {
    /// With an empty DATA frame that ends the stream.
    Data,
    /// With the call's trailers.
    Trailers(http::HeaderMap),
    /// The call had to end first, with `status`, while it waited with
    /// `data` left, `rest` of it the end of a message already begun.
    Stalled {
        /// What the call ended with.
        status: Status,
        /// What was left to send.
        data: Chunk,
        /// How much of `data` ends a message already begun.
        rest: usize,
    },
}

/// Sends `body` on `send`, as flow control allows; see the [module
/// docs](self).
///
/// A plain function around an `async` block, not an `async fn`: an
/// `async fn` keeps its arguments, and the variables it moves them into,
/// each in its future, which would hold the call's body twice.
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn would hold its arguments twice"
)]
fn pump(
    mut body: CallBody,
    mut send: SendStream<Chunk>,
    ends: &Arc<StreamEnds>,
) -> impl Future<Output = ()> + Send + '_ {
    async move {
        // Bytes sent on the stream: what the client's window let through.
        let mut sent = 0u64;
        // The loop sends frames and nothing else: how the stream ends is
        // worked out after it, so the call's task, which is as big as its
        // largest step, holds room for one ending, not for every place one
        // may start.
        let last = 'frames: loop {
            // The next frame is made only once the client can take some of
            // it: a call whose client has stopped reading makes nothing
            // more, and holds nothing but what HTTP/2 has queued for it.
            match wait_for_capacity(&mut body, &mut send, 1, sent).await {
                Waited::Sent(_) => {}
                Waited::Gone => return,
                Waited::Ended(why) => {
                    break Last::Stalled {
                        status: body.end_early(why),
                        data: Chunk::Encoded(Bytes::new()),
                        rest: 0,
                    };
                }
            }
            // A frame that is ready goes first: asking after a reset takes
            // the connection's lock, and sending on a reset stream fails
            // anyway. If the client reset the stream, or its connection
            // went, the body is dropped, and the call layer logs that it
            // went away.
            let frame = poll_fn(|cx| match Pin::new(&mut body).poll_frame(cx) {
                Poll::Ready(frame) => Poll::Ready(Some(frame)),
                Poll::Pending => send.poll_reset(cx).map(|_| None),
            });
            let mut data = match frame.await {
                None => return,
                Some(None) => break Last::Data,
                Some(Some(Err(_))) => {
                    send.send_reset(Reason::INTERNAL_ERROR);
                    return;
                }
                Some(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => data,
                    Err(frame) => match frame.into_trailers() {
                        Ok(trailers) => break Last::Trailers(trailers),
                        Err(_) => return,
                    },
                },
            };
            // Chunks of encoded bytes do not count their messages: keep
            // where they start.
            let original = match &data {
                Chunk::Encoded(bytes) | Chunk::Framed(bytes, _) => Some(bytes.clone()),
                Chunk::Story(_) => None,
            };
            while data.has_remaining() {
                let room =
                    match wait_for_capacity(&mut body, &mut send, data.remaining(), sent).await {
                        Waited::Sent(room) => room,
                        Waited::Gone => return,
                        Waited::Ended(why) => {
                            let rest = data.rest_of_message(original.as_ref());
                            break 'frames Last::Stalled {
                                status: body.end_early(why),
                                data,
                                rest,
                            };
                        }
                    };
                // Only what the window allows: the rest waits here, where
                // the deadline and shutdown still reach it, and `sent` stays
                // exact.
                let piece = if room >= data.remaining() {
                    std::mem::replace(&mut data, Chunk::Encoded(Bytes::new()))
                } else {
                    data.split_to(room)
                };
                sent += piece.remaining() as u64;
                if send.send_data(piece, false).is_err() {
                    return;
                }
            }
        };
        match last {
            Last::Data => {
                let end = |send: &mut SendStream<Chunk>| {
                    send.send_data(Chunk::Encoded(Bytes::new()), true)
                };
                finish(&mut body, &mut send, ends, end, sent).await;
            }
            Last::Trailers(trailers) => {
                let end = |send: &mut SendStream<Chunk>| send.send_trailers(trailers);
                finish(&mut body, &mut send, ends, end, sent).await;
            }
            Last::Stalled { status, data, rest } => {
                end_stalled(&mut send, data, rest, &status).await;
            }
        }
    }
}

/// Sends the call's last frame, then holds the call until HTTP/2 has
/// written it and all before it, so that until then the call keeps its
/// place under `--max-calls`, its deadline and shutdown, and may be ended
/// to make room if it stalls: its status is queued, but its client has
/// not read it. Ended so, the stream is reset, which drops what is queued. If the
/// client resets the stream or its connection closes first, it went away.
///
/// `end` sends the last frame; `ends` is told to watch for it first, so
/// that it cannot pass unseen.
async fn finish(
    body: &mut CallBody,
    send: &mut SendStream<Chunk>,
    ends: &Arc<StreamEnds>,
    end: impl FnOnce(&mut SendStream<Chunk>) -> Result<(), h2::Error>,
    sent: u64,
) {
    let last = ends.expect(send.stream_id().as_u32());
    if end(send).is_err() {
        return;
    }
    let mut last = std::pin::pin!(last);
    let written = poll_fn(|cx| {
        match last.as_mut().poll(cx) {
            Poll::Ready(Ended::Written) => return Poll::Ready(Waited::Sent(0)),
            Poll::Ready(Ended::Dropped) => return Poll::Ready(Waited::Gone),
            Poll::Pending => {}
        }
        match send.poll_reset(cx) {
            Poll::Ready(_) => Poll::Ready(Waited::Gone),
            Poll::Pending => Poll::Pending,
        }
    });
    let waited = Box::pin(wait_on_client(body, written, Stall::Queued, sent));
    match waited.await {
        Waited::Sent(_) => {}
        Waited::Gone => body.went_away(),
        Waited::Ended(why) => {
            body.end_early(why);
            send.send_reset(Reason::CANCEL);
        }
    }
}

/// How long a call that had to end mid-message may take to send the rest
/// of that message, so its status can follow: long enough for a client
/// that reads, short against a deadline.
const FINISH_MESSAGE: Duration = Duration::from_millis(50);

/// Ends a stream whose call ended, with `status`, while it waited for
/// send capacity with `data` left, `rest` of it the end of a message
/// already begun.
///
/// Trailers are not flow-controlled, and nothing of the stream waits
/// inside HTTP/2, so between messages the status goes at once, even to a
/// client that has stopped reading: it finds out why when it reads on.
/// Mid-message, the rest of the message goes first if the client takes it
/// within [`FINISH_MESSAGE`]; if not, the stream is reset instead, as a
/// status after half a message would leave the client a message cut short.
async fn end_stalled(send: &mut SendStream<Chunk>, mut data: Chunk, rest: usize, status: &Status) {
    let finished = tokio::time::timeout(FINISH_MESSAGE, async {
        let mut left = rest;
        while left > 0 {
            send.reserve_capacity(left);
            let room = match send.capacity() {
                0 => match poll_fn(|cx| send.poll_capacity(cx)).await {
                    Some(Ok(room)) => room.min(left),
                    Some(Err(_)) | None => return false,
                },
                room => room.min(left),
            };
            if room == 0 {
                continue;
            }
            if send.send_data(data.split_to(room), false).is_err() {
                return false;
            }
            left -= room;
        }
        true
    })
    .await
    .unwrap_or(false);
    let mut trailers = http::HeaderMap::new();
    if finished && status.add_header(&mut trailers).is_ok() {
        let _ = send.send_trailers(trailers);
    } else {
        send.send_reset(Reason::CANCEL);
    }
}

#[cfg(test)]
mod tests {
    use crate::sizes::{returned_size_3, returned_size_4};

    #[test]
    fn a_call_waiting_for_its_request_holds_little() {
        // A call's start is boxed in its task until the response begins:
        // while thousands wait for their request, thousands of these are
        // held. It was 1,176 bytes as an `async fn`; it is 480 now.
        let size = returned_size_3(super::start);
        assert!(size <= 640, "a call's start is {size} bytes");
    }

    #[test]
    fn a_call_task_holds_little_more_than_sending_needs() {
        // Every call's task is this big for as long as its stream lives:
        // 10,000 paced calls hold 10,000 of them. It was 2,888 bytes with
        // the start, the waits and the endings in it, and the body twice;
        // it is 752 now. The bound leaves room for a compiler or h2 that
        // lays things out a little differently, not for any of those back.
        let size = returned_size_4(super::serve);
        assert!(size <= 1024, "a call's task is {size} bytes");
    }
}
