//! What a call's request may do: no message over the size limit (checked
//! from its length prefix), and no first message later than
//! `--request-timeout`, or after the server needed the call's place.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::WaitForCancellationFutureOwned;
use tonic::Status;

use super::{context::CallContext, room::AwaitingRequest};
use crate::ops::metrics::MethodMetrics;

/// The largest request message accepted, in bytes, for every method. Larger
/// messages are refused with RESOURCE_EXHAUSTED from their length prefix,
/// before anything is allocated for them.
pub(crate) const MAX_REQUEST_BYTES: usize = 4 * 1024;

/// Counts the gRPC messages in a body's bytes: each is a 5-byte header (a
/// flag and a 4-byte length) and that many bytes, and a message may span
/// data frames. It can refuse messages over a size limit from their header
/// alone.
#[derive(Debug)]
pub(super) struct FrameCounter {
    count: u64,
    limit: u64,
    /// Header bytes of the next message seen so far.
    header: [u8; 5],
    header_len: usize,
    /// Bytes of the current message still to come.
    remaining: u64,
}

impl Default for FrameCounter {
    fn default() -> Self {
        Self::with_limit(u64::MAX)
    }
}

impl FrameCounter {
    pub(super) fn with_limit(limit: u64) -> Self {
        Self {
            count: 0,
            limit,
            header: [0; 5],
            header_len: 0,
            remaining: 0,
        }
    }

    /// How many messages have begun.
    pub(super) fn count(&self) -> u64 {
        self.count
    }

    /// How many messages are in whole.
    fn complete(&self) -> u64 {
        if self.remaining == 0 && self.header_len == 0 {
            self.count
        } else {
            self.count.saturating_sub(1)
        }
    }

    /// Counts whole messages, given apart from the byte stream.
    pub(super) fn count_whole(&mut self, messages: u64) {
        self.count += messages;
    }

    /// Counts what `data` holds; fails with the length a message header
    /// claims, if that is over the limit.
    pub(super) fn feed(&mut self, mut data: &[u8]) -> Result<(), u64> {
        while !data.is_empty() {
            if self.remaining > 0 {
                let skip = data
                    .len()
                    .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                data = &data[skip..];
                self.remaining -= skip as u64;
                continue;
            }
            let take = (5 - self.header_len).min(data.len());
            self.header[self.header_len..self.header_len + take].copy_from_slice(&data[..take]);
            self.header_len += take;
            data = &data[take..];
            if self.header_len == 5 {
                self.count += 1;
                self.header_len = 0;
                let [_, a, b, c, d] = self.header;
                self.remaining = u64::from(u32::from_be_bytes([a, b, c, d]));
                if self.remaining > self.limit {
                    return Err(self.remaining);
                }
            }
        }
        Ok(())
    }
}

/// A request body that refuses, from its length prefix alone, any message
/// over the size limit: RESOURCE_EXHAUSTED, as gRPC specifies (tonic's own
/// check answers OUT_OF_RANGE), before the message is read or allocated.
///
/// Until the first message is in, the call also waits on a clock and on
/// the server: a request that has not arrived by `--request-timeout`
/// (for calls whose request is one message) ends the call, and so does
/// the server needing its place.
pub(super) struct RequestLimit<B> {
    inner: B,
    frames: FrameCounter,
    context: CallContext,
    /// The method's metrics, told of each message as it completes.
    metrics: Option<Arc<MethodMetrics>>,
    counted: u64,
    /// Until the first message is in.
    awaiting: Option<Awaiting>,
}

struct Awaiting {
    /// Registered as waiting, so that the server can make room; `None`
    /// for calls the server does not count (health, reflection), which it
    /// cannot end to make room.
    registered: Option<AwaitingRequest>,
    evicted: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    /// When the first message must be in, for one-message requests.
    by: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl<B> RequestLimit<B> {
    /// Limits `inner`'s messages to `limit` bytes each, and its first
    /// message to arriving `by` then, if given.
    pub(super) fn new(
        inner: B,
        limit: u64,
        context: CallContext,
        registered: Option<AwaitingRequest>,
        by: Option<Instant>,
        metrics: Option<Arc<MethodMetrics>>,
    ) -> Self {
        Self {
            inner,
            frames: FrameCounter::with_limit(limit),
            context,
            metrics,
            counted: 0,
            awaiting: Some(Awaiting {
                registered,
                evicted: None,
                by,
                timer: None,
            }),
        }
    }
}

/// The status of a call ended before its request was read, to make room.
pub(super) fn made_room() -> Status {
    Status::resource_exhausted(
        "the server was at its limit of calls and needed this call's place: \
         its request had not been read yet; retry",
    )
}

impl Awaiting {
    /// The request arrived, or ended: true, or false if the server took
    /// the call's place first ([`AwaitingRequest::arrived`]).
    fn arrived(self) -> bool {
        self.registered
            .is_none_or(|registered| registered.arrived())
    }

    /// Why the call must end before its request arrives, if it must; polls
    /// what it waits on, so the task is woken in time.
    fn must_end(&mut self, cx: &mut Context<'_>) -> Option<Status> {
        if let Some(registered) = &self.registered {
            let evicted = self
                .evicted
                .get_or_insert_with(|| Box::pin(registered.evict.clone().cancelled_owned()));
            if evicted.as_mut().poll(cx).is_ready() {
                return Some(made_room());
            }
        }
        let by = self.by?;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(by)));
        if Instant::now() >= by || timer.as_mut().poll(cx).is_ready() {
            return Some(Status::deadline_exceeded(
                "the request message did not arrive within --request-timeout",
            ));
        }
        None
    }
}

impl<B> Body for RequestLimit<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if let Err(claimed) = this.frames.feed(data.chunk()) {
                        return Poll::Ready(Some(Err(Status::resource_exhausted(format!(
                            "a request message of {claimed} bytes is over the limit of {} bytes",
                            this.frames.limit
                        )))));
                    }
                    let complete = this.frames.complete();
                    if complete > 0
                        && let Some(awaiting) = this.awaiting.take()
                    {
                        // The request may have been in, unread, when the
                        // server took this call's place: the call ends.
                        if !awaiting.arrived() {
                            return Poll::Ready(Some(Err(made_room())));
                        }
                        this.context.request_arrived();
                    }
                    if complete > this.counted {
                        if let Some(metrics) = &this.metrics {
                            metrics.received(complete - this.counted);
                        }
                        this.counted = complete;
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => {
                // Our transport's request bodies fail only when the client
                // reset the call or its connection ended.
                this.context.client_gone();
                Poll::Ready(Some(Err(Status::from_error(err.into()))))
            }
            Poll::Ready(None) => {
                // The request ended with no message (a stream may), as
                // the server took this call's place: the call ends.
                if let Some(awaiting) = this.awaiting.take()
                    && !awaiting.arrived()
                {
                    return Poll::Ready(Some(Err(made_room())));
                }
                Poll::Ready(None)
            }
            Poll::Pending => {
                if let Some(awaiting) = &mut this.awaiting
                    && let Some(status) = awaiting.must_end(cx)
                {
                    this.awaiting = None;
                    return Poll::Ready(Some(Err(status)));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        // Not while the call waits for its request: a request known to be
        // over (headers only) must still be polled once, to learn whether
        // the call's place was taken meanwhile; tonic would skip it.
        self.awaiting.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::super::calls::Calls;
    use super::*;

    #[test]
    fn counts_messages_across_and_within_frames() {
        let message = |len: u32| {
            let mut bytes = vec![0];
            bytes.extend_from_slice(&len.to_be_bytes());
            bytes.extend(std::iter::repeat_n(b'x', len as usize));
            bytes
        };
        let body = [message(3), message(0), message(1000), message(7)].concat();
        for split in [1, 2, 4, 5, 6, 100, body.len()] {
            let mut counter = FrameCounter::default();
            for piece in body.chunks(split) {
                counter.feed(piece).unwrap();
            }
            assert_eq!(counter.count, 4, "pieces of {split}");
            assert_eq!((counter.remaining, counter.header_len), (0, 0));
        }
    }

    #[test]
    fn a_message_is_complete_once_its_last_byte_is_in() {
        let mut counter = FrameCounter::default();
        counter.feed(&[0, 0, 0, 0, 3, b'a']).unwrap();
        assert_eq!(counter.complete(), 0);
        counter.feed(b"bc").unwrap();
        assert_eq!(counter.complete(), 1);
        counter.feed(&[0, 0, 0, 0, 0]).unwrap();
        assert_eq!(
            counter.complete(),
            2,
            "an empty message is complete at once"
        );
    }

    /// Polls, once, the request body of a call waiting for its request,
    /// with the whole message in; the server, full, having taken the
    /// call's place first if `made_room_first`.
    fn first_poll(made_room_first: bool) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let message = Bytes::from_static(&[0, 0, 0, 0, 2, 0x0a, 0]);
        first_poll_of(http_body_util::Full::new(message), made_room_first)
    }

    /// As [`first_poll`], of a request body `request`.
    /// The body is wrapped as the server wraps it, in tonic's body.
    fn first_poll_of(
        request: impl Body<Data = Bytes, Error = std::convert::Infallible> + Unpin + Send + 'static,
        made_room_first: bool,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let calls = Calls::default();
        let start = tokio::time::Instant::now();
        let (_gauge, registered) = calls.enter_making_room(1, None, 1, start).unwrap();
        let mut body = tonic::body::Body::new(RequestLimit::new(
            request,
            4096,
            CallContext::default(),
            Some(registered),
            None,
            None,
        ));
        let later = start + crate::call::room::REQUEST_GRACE;
        let _newcomer =
            made_room_first.then(|| calls.enter_making_room(1, None, 2, later).unwrap());
        let mut cx = Context::from_waker(std::task::Waker::noop());
        Pin::new(&mut body).poll_frame(&mut cx)
    }

    #[test]
    fn a_request_that_arrives_is_read() {
        let polled = first_poll(false);
        assert!(matches!(polled, Poll::Ready(Some(Ok(_)))), "{polled:?}");
    }

    #[test]
    fn a_call_whose_place_was_taken_ends_though_its_request_ended_empty() {
        let empty = || http_body_util::Empty::<Bytes>::new();
        assert!(matches!(first_poll_of(empty(), false), Poll::Ready(None)));
        match first_poll_of(empty(), true) {
            Poll::Ready(Some(Err(status))) => {
                assert_eq!(status.code(), tonic::Code::ResourceExhausted);
            }
            other => panic!("the call went on: {other:?}"),
        }
    }

    #[test]
    fn a_call_whose_place_was_taken_ends_though_its_request_is_in() {
        // The request was in, unread, when the server took the call's
        // place: the newcomer was counted in its stead, so the call must
        // end, or the count stays over the limit while it runs.
        match first_poll(true) {
            Poll::Ready(Some(Err(status))) => {
                assert_eq!(status.code(), tonic::Code::ResourceExhausted);
                assert!(
                    status.message().contains("needed this call's place"),
                    "{status:?}"
                );
            }
            other => panic!("the call went on: {other:?}"),
        }
    }

    #[test]
    fn refuses_a_message_over_the_limit_from_its_header() {
        let mut counter = FrameCounter::with_limit(4096);
        assert_eq!(counter.feed(&[0, 0, 0, 0x10, 0x00]), Ok(()));
        counter.feed(&[b'x'; 4096]).unwrap();
        assert_eq!(counter.feed(&[0, 0xff, 0xff]), Ok(()));
        assert_eq!(counter.feed(&[0xff, 0xff]), Err(u64::from(u32::MAX)));
    }
}
