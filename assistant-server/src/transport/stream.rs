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
use http_body::{Body, Frame};
use tokio::time::Instant;
use tonic::Status;
use tower_service::Service;
use tracing::info;

use super::ends::{Ended, StreamEnds};
use crate::{
    call::{CallBody, CallService, EndEarly},
    services::Router,
    wire::Chunk,
};

/// Serves one call on its stream; `ends` says when its last frame is
/// written.
pub(super) async fn serve(
    mut service: CallService<Router>,
    request: http::Request<RecvStream>,
    mut respond: SendResponse<Chunk>,
    ends: Arc<StreamEnds>,
) {
    let request = request.map(|recv| IncomingBody {
        recv,
        data_done: false,
    });
    let ready: Result<(), Infallible> =
        poll_fn(|cx| Service::<http::Request<IncomingBody>>::poll_ready(&mut service, cx)).await;
    let Ok(()) = ready;
    let response = match service.call(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let (parts, body) = response.into_parts();
    // A call that failed before its first message answers in headers
    // alone (a "trailers-only" response).
    let end_of_stream = body.is_end_stream();
    let Ok(send) = respond.send_response(http::Response::from_parts(parts, ()), end_of_stream)
    else {
        return;
    };
    if !end_of_stream {
        pump(body, send, &ends).await;
    }
}

/// How long a stream must wait for its client before the wait is a stall
/// worth a log line: shorter waits are HTTP/2 going about its business.
const STALL_NOTICE: Duration = Duration::from_millis(100);

/// What became of a frame waiting for send capacity.
enum Waited {
    /// This many bytes may be sent.
    Sent(usize),
    /// The stream is gone (the client reset it or left).
    Gone,
    /// The call had to end first.
    Ended(EndEarly),
}

/// Sends `body` on `send`, as flow control allows; see the [module
/// docs](self).
async fn pump(mut body: CallBody, mut send: SendStream<Chunk>, ends: &Arc<StreamEnds>) {
    // Bytes sent on the stream: what the client's window has let through.
    let mut sent = 0u64;
    loop {
        // The next frame is made only once the client can take some of it:
        // a call whose client has stopped reading makes nothing more, and
        // holds nothing but what HTTP/2 has queued for it.
        match wait_for_capacity(&mut body, &mut send, 1, sent).await {
            Waited::Sent(_) => {}
            Waited::Gone => return,
            Waited::Ended(why) => {
                let status = body.end_early(why);
                end_stalled(&mut send, Chunk::Encoded(Bytes::new()), 0, &status).await;
                return;
            }
        }
        let frame = tokio::select! {
            biased;
            // A frame that is ready goes first: asking after a reset takes
            // the connection's lock, and sending on a reset stream fails
            // anyway.
            frame = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)) => frame,
            // The client reset the stream, or its connection went: the
            // body is dropped, and the call layer logs that it went away.
            _ = poll_fn(|cx| send.poll_reset(cx)) => return,
        };
        let data = match frame {
            None => {
                let end = |send: &mut SendStream<Chunk>| {
                    send.send_data(Chunk::Encoded(Bytes::new()), true)
                };
                finish(&mut body, &mut send, ends, end, sent).await;
                return;
            }
            Some(Err(_)) => {
                send.send_reset(Reason::INTERNAL_ERROR);
                return;
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        let end = |send: &mut SendStream<Chunk>| send.send_trailers(trailers);
                        finish(&mut body, &mut send, ends, end, sent).await;
                    }
                    return;
                }
            },
        };
        let mut data = data;
        // tonic's chunks do not count their messages: keep where they start.
        let original = match &data {
            Chunk::Encoded(bytes) => Some(bytes.clone()),
            Chunk::Story(_) => None,
        };
        while data.has_remaining() {
            let room = match wait_for_capacity(&mut body, &mut send, data.remaining(), sent).await {
                Waited::Sent(room) => room,
                Waited::Gone => return,
                Waited::Ended(why) => {
                    let status = body.end_early(why);
                    let rest = data.rest_of_message(original.as_ref());
                    end_stalled(&mut send, data, rest, &status).await;
                    return;
                }
            };
            // Only what the window allows: the rest waits here, where the
            // deadline and shutdown still reach it, and `sent` stays exact.
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
    }
}

/// Sends the call's last frame, then holds the call until HTTP/2 has
/// written it and all before it, so that until then the call keeps its place under
/// `--max-calls`, its deadline and shutdown, and may be ended to make
/// room if it stalls: its status is queued, but its client has not read
/// it. Ended so, the stream is reset, which drops what is queued. If the
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
    match wait_on_client(body, written, Stall::Queued, sent).await {
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

/// Waits until the stream may send some of a frame of `len` bytes, and
/// says how much; or until the call must end first. `sent` is for the log.
async fn wait_for_capacity(
    body: &mut CallBody,
    send: &mut SendStream<Chunk>,
    len: usize,
    sent: u64,
) -> Waited {
    // h2 assigns no more than the stream's window, so a stalled stream
    // claims none of the connection's window while it waits.
    send.reserve_capacity(len);
    let room = send.capacity();
    if room > 0 {
        return Waited::Sent(room);
    }
    let capacity = poll_fn(|cx| {
        loop {
            match send.poll_capacity(cx) {
                Poll::Ready(Some(Ok(0))) => continue,
                Poll::Ready(Some(Ok(room))) => return Poll::Ready(Waited::Sent(room)),
                Poll::Ready(Some(Err(_)) | None) => return Poll::Ready(Waited::Gone),
                Poll::Pending => return Poll::Pending,
            }
        }
    });
    wait_on_client(body, capacity, Stall::Window, sent).await
}

/// What a stream waits for its client to do.
#[derive(Debug, Clone, Copy)]
enum Stall {
    /// Open its window: the next frame waits.
    Window,
    /// Read what is queued: the last frame waits.
    Queued,
}

/// Waits for `client`, which is the client reading on, or until the call
/// must end first; says so in the log if the wait is long. `sent` is for
/// the log.
async fn wait_on_client(
    body: &mut CallBody,
    client: impl Future<Output = Waited>,
    stall: Stall,
    sent: u64,
) -> Waited {
    let (deadline, ending) = body.must_end_by();
    let ending = ending.cloned();
    let deadline_passed = async {
        match deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    };
    let shutdown = async {
        match &ending {
            Some(ending) => ending.cancelled().await,
            None => std::future::pending().await,
        }
    };
    if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
        return Waited::Ended(EndEarly::Deadline);
    }
    let mut deadline_passed = std::pin::pin!(deadline_passed);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut client = std::pin::pin!(client);
    let waiting_since = Instant::now();
    let notice = tokio::time::sleep(STALL_NOTICE);
    let mut noticed = false;
    let waited = tokio::select! {
        biased;
        () = &mut deadline_passed => Waited::Ended(EndEarly::Deadline),
        () = &mut shutdown => Waited::Ended(EndEarly::Shutdown),
        waited = &mut client => waited,
        () = notice => {
            noticed = true;
            body.in_span(|client| match stall {
                Stall::Window => {
                    info!("Waiting for {client} to read: the window is full after {sent} bytes");
                }
                Stall::Queued => {
                    info!("Waiting for {client} to read: {sent} bytes sent, the last still queued");
                }
            });
            // A stalled call is one a full server may end to make room.
            let stalled = body.stalled();
            let made_room = async {
                match &stalled {
                    Some(stalled) => stalled.evict.cancelled().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                () = &mut deadline_passed => Waited::Ended(EndEarly::Deadline),
                () = &mut shutdown => Waited::Ended(EndEarly::Shutdown),
                waited = &mut client => waited,
                () = made_room => Waited::Ended(EndEarly::MadeRoom),
            }
        }
    };
    if noticed {
        body.stalled_for(waiting_since.elapsed());
    }
    if noticed && matches!(waited, Waited::Sent(_)) {
        let waited_s = waiting_since.elapsed().as_secs_f64();
        body.in_span(|client| info!("{client} is reading again after {waited_s:.1} s"));
    }
    waited
}

/// A request body: what the client sends on the stream, handed on as it
/// arrives, with the flow-control window given back as it is taken.
#[derive(Debug)]
pub(super) struct IncomingBody {
    recv: RecvStream,
    data_done: bool,
}

/// The status of a request that failed with `err`: the client went away.
fn gone(err: &h2::Error) -> Status {
    if err.is_reset() {
        Status::cancelled("the client reset the call")
    } else {
        Status::cancelled(format!("the client's connection ended: {err}"))
    }
}

impl Body for IncomingBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        if !this.data_done {
            match std::task::ready!(this.recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    let _ = this.recv.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(err)) => return Poll::Ready(Some(Err(gone(&err)))),
                None => this.data_done = true,
            }
        }
        match std::task::ready!(this.recv.poll_trailers(cx)) {
            Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Ok(None) => Poll::Ready(None),
            Err(err) => Poll::Ready(Some(Err(gone(&err)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.recv.is_end_stream()
    }
}
