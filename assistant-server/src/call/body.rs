//! The response body of every call: recorded as it passes, and ended early
//! on deadline or shutdown.
//!
//! Two parts end a call early. When the body is polled, it ends itself:
//! the frame in hand goes out, then trailers with the status. But a call
//! whose client does not read is not polled at all: its stream waits on
//! HTTP/2 flow control. So the transport also asks the body when the call
//! must end ([`CallBody::must_end_by`]) and, past that, ends it
//! ([`CallBody::end_early`]) and resets the stream.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::{Code, Status};

use super::{
    deadline::deadline_exceeded, limits::made_room, record::Record, room::StalledGuard,
    shutting_down,
};
use crate::wire::{Chunk, ResponseBody};

/// A response body that ends early on deadline or shutdown, and records
/// what passed through it.
pub(crate) struct CallBody {
    /// `None` once ended early: dropping the handler's stream is what stops
    /// its work.
    inner: Option<ResponseBody>,
    /// `None` for a call refused before it started.
    record: Option<Record>,
    deadline: Option<Instant>,
    deadline_sleep: Option<Pin<Box<Sleep>>>,
    /// Created the first time the body waits, so calls that never wait pay
    /// nothing for it.
    ending_wait: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    /// Set when the call must end: after at most one more ready frame.
    end_after: Option<Status>,
}

/// The trailers frame that ends a response with `status`.
pub(crate) fn status_trailers<D>(status: &Status) -> Result<Frame<D>, Status> {
    let mut trailers = http::HeaderMap::new();
    status.add_header(&mut trailers)?;
    Ok(Frame::trailers(trailers))
}

/// Why the transport ends a call early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EndEarly {
    /// The caller's deadline passed.
    Deadline,
    /// Shutdown ended calls of this kind.
    Shutdown,
    /// The server, full, needed the place of this call: stalled on a
    /// client that does not read, or its request not read yet.
    MadeRoom,
}

impl std::fmt::Debug for CallBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallBody")
            .field("ended", &self.inner.is_none())
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl CallBody {
    /// Wraps the handler's body `inner`, which must end by `deadline`.
    pub(super) fn new(inner: ResponseBody, record: Record, deadline: Option<Instant>) -> Self {
        Self {
            inner: Some(inner),
            record: Some(record),
            deadline,
            deadline_sleep: None,
            ending_wait: None,
            end_after: None,
        }
    }

    /// The body of a call answered before it started (refused): no record,
    /// no deadline.
    pub(super) fn unrecorded(inner: tonic::body::Body) -> Self {
        Self {
            inner: Some(ResponseBody::Tonic(inner)),
            record: None,
            deadline: None,
            deadline_sleep: None,
            ending_wait: None,
            end_after: None,
        }
    }

    /// The body of a counted call on `connection`, with its place among
    /// `calls` (taken past any limit): `inner`'s frames, no deadline.
    #[cfg(test)]
    pub(crate) fn counted(
        inner: tonic::body::Body,
        calls: &super::Calls,
        connection: &std::sync::Arc<super::ConnectionCalls>,
    ) -> Self {
        let seats = calls
            .enter(usize::MAX)
            .zip(Some(connection.enter(usize::MAX)));
        let mut record = Record::new(
            u64::MAX,
            tracing::Span::none(),
            super::CallContext::default(),
            calls.clone(),
            CancellationToken::new(),
            seats,
        );
        // As every counted call has (`CallService::call`).
        record.place_taken = Some(CancellationToken::new());
        Self::new(ResponseBody::Tonic(inner), record, None)
    }

    /// When the call must end, whatever it is doing: its deadline, the
    /// token that shutdown cancels to end it, and the token cancelled if
    /// the server takes its place to make room.
    pub(crate) fn must_end_by(
        &self,
    ) -> (
        Option<Instant>,
        Option<&CancellationToken>,
        Option<&CancellationToken>,
    ) {
        if self.inner.is_none() {
            return (None, None, None);
        }
        let record = self.record.as_ref();
        (
            self.deadline,
            record.map(|record| &record.ending),
            record.and_then(|record| record.place_taken.as_ref()),
        )
    }

    /// Runs `log` in the call's span, with the caller as the logs name
    /// them (the user once known).
    pub(crate) fn in_span(&self, log: impl FnOnce(&str)) {
        if let Some(record) = &self.record {
            record.span.in_scope(|| log(&record.context.client()));
        }
    }

    /// The call waited `stalled` for its client to read: for the metrics.
    pub(crate) fn stalled_for(&self, stalled: std::time::Duration) {
        if let Some(record) = &self.record {
            record.stalled_for(stalled);
        }
    }

    /// Registers the call as stalled on its client, so that a full server
    /// may end it to make room; `None` for calls exempt from the cap.
    pub(crate) fn stalled(&self) -> Option<StalledGuard> {
        self.record.as_ref().and_then(Record::stalled)
    }

    /// The client went away before it read the end of the response: the
    /// status the call ended with never reached it.
    pub(crate) fn went_away(&mut self) {
        self.inner = None;
        if let Some(record) = &mut self.record {
            record.status = None;
        }
    }

    /// Ends the call now, for `why`, and returns its status. The handler's
    /// stream is dropped, which stops its work.
    pub(crate) fn end_early(&mut self, why: EndEarly) -> Status {
        self.inner = None;
        let status = match why {
            EndEarly::Deadline => deadline_exceeded(),
            EndEarly::Shutdown => shutting_down(),
            // A chat, which answers before it reads, may be ended for
            // either reason while it waits on its client.
            EndEarly::MadeRoom => {
                let has_request = self
                    .record
                    .as_ref()
                    .is_some_and(|record| record.context.has_request());
                if has_request {
                    Status::resource_exhausted(
                        "the server, at its limit of calls, ended this one to make room for \
                         another: it had stopped reading",
                    )
                } else {
                    made_room()
                }
            }
        };
        match &mut self.record {
            Some(record) => record.end_early(status),
            None => status,
        }
    }

    /// Whether the deadline passed or shutdown asked calls to end; polls
    /// both, so the task is woken when either happens.
    fn must_end(&mut self, cx: &mut Context<'_>) -> Option<Status> {
        if let Some(deadline) = self.deadline {
            // Read the clock too: a timer is only marked as fired when the
            // runtime gets round to it, and a body that is always ready
            // may keep it from doing so.
            if Instant::now() >= deadline {
                return Some(deadline_exceeded());
            }
            let sleep = self
                .deadline_sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if sleep.as_mut().poll(cx).is_ready() {
                return Some(deadline_exceeded());
            }
        }
        let record = self.record.as_ref()?;
        // The wait says at once if shutdown has already begun. The token
        // is cloned once a call, not at every frame: each clone and drop
        // takes its lock.
        let wait = self
            .ending_wait
            .get_or_insert_with(|| Box::pin(record.ending.clone().cancelled_owned()));
        if wait.as_mut().poll(cx).is_ready() {
            return Some(shutting_down());
        }
        None
    }

    /// Ends the stream now with `status`, as trailers.
    fn end(&mut self, status: Status) -> Poll<Option<Result<Frame<Chunk>, Status>>> {
        self.inner = None;
        let status = match &mut self.record {
            Some(record) => record.end_early(status),
            None => status,
        };
        Poll::Ready(Some(status_trailers(&status)))
    }

    fn poll_inner(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Chunk>, Status>>> {
        let Some(inner) = &mut self.inner else {
            return Poll::Ready(None);
        };
        if let Some(status) = self.end_after.take() {
            return self.end(status);
        }
        let polled = Pin::new(inner).poll_frame(cx);
        let Some(record) = &mut self.record else {
            return polled;
        };
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    record.bytes += data.remaining() as u64;
                    if let Some(messages) = data.messages() {
                        record.messages.count_whole(messages as u64);
                    } else {
                        // Responses have no size limit of ours to check.
                        let _ = record.messages.feed(data.chunk());
                    }
                    record.count_sent();
                } else if let Some(trailers) = frame.trailers_ref() {
                    // Only the code: as `Status::from_header_map` reads it,
                    // without the message and metadata.
                    record.status = Some(
                        trailers
                            .get("grpc-status")
                            .map_or(Code::Ok, |code| Code::from_bytes(code.as_bytes())),
                    );
                }
                // A stream that is always ready must still see the end:
                // the frame in hand goes out, then the call ends.
                if record.status.is_none() {
                    self.end_after = self.must_end(cx);
                }
            }
            Poll::Ready(None) => {
                record.status.get_or_insert(Code::Ok);
            }
            Poll::Ready(Some(Err(status))) => {
                record.status = Some(status.code());
            }
            Poll::Pending => {
                if let Some(status) = self.must_end(cx) {
                    return self.end(status);
                }
            }
        }
        polled
    }
}

impl Body for CallBody {
    type Data = Chunk;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Chunk>, Status>>> {
        let this = &mut *self;
        let span = this.record.as_ref().map(|record| record.span.clone());
        let _entered = span.as_ref().map(tracing::Span::enter);
        this.poll_inner(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::call::{Calls, ConnectionCalls};

    /// The message of a call ended to make room, its request read or not.
    fn made_room_message(request_read: bool) -> String {
        let calls = Calls::default();
        let connection = Arc::new(ConnectionCalls::default());
        let mut body = CallBody::counted(tonic::body::Body::empty(), &calls, &connection);
        if request_read && let Some(record) = &body.record {
            record.context.request_arrived();
        }
        body.end_early(EndEarly::MadeRoom).message().to_owned()
    }

    #[test]
    fn a_call_ended_to_make_room_says_why() {
        assert!(made_room_message(true).contains("it had stopped reading"));
        assert!(made_room_message(false).contains("its request had not been read yet"));
    }
}
