//! The response body of every call: ended early on deadline or shutdown,
//! and recorded as it passes.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;
use tokio_util::sync::WaitForCancellationFutureOwned;
use tonic::{Code, Status};

use super::{deadline::deadline_exceeded, record::Record, shutting_down};

/// A response body that ends early on deadline or shutdown, and records
/// what passed through it.
pub(super) struct CallBody<B> {
    /// `None` once ended early: dropping the handler's stream is what stops
    /// its work.
    inner: Option<B>,
    record: Record,
    deadline: Option<Pin<Box<Sleep>>>,
    /// Created the first time the body waits, so calls that never wait pay
    /// nothing for it.
    ending_wait: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    /// Set when the call must end: after at most one more ready frame.
    end_after: Option<Status>,
}

impl<B> CallBody<B> {
    /// Wraps the handler's body `inner`, which must end by `deadline`.
    pub(super) fn new(inner: B, record: Record, deadline: Option<tokio::time::Instant>) -> Self {
        Self {
            inner: Some(inner),
            record,
            deadline: deadline.map(|deadline| Box::pin(tokio::time::sleep_until(deadline))),
            ending_wait: None,
            end_after: None,
        }
    }

    /// Whether the deadline passed or shutdown asked calls to end; polls
    /// both, so the task is woken when either happens.
    fn must_end(&mut self, cx: &mut Context<'_>) -> Option<Status> {
        if let Some(deadline) = &mut self.deadline
            && deadline.as_mut().poll(cx).is_ready()
        {
            return Some(deadline_exceeded());
        }
        let ending = self.record.ending.clone();
        let wait = self
            .ending_wait
            .get_or_insert_with(|| Box::pin(ending.cancelled_owned()));
        if wait.as_mut().poll(cx).is_ready() {
            return Some(shutting_down());
        }
        None
    }

    /// Ends the stream now with `status`, as trailers.
    fn end(&mut self, status: Status) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        self.inner = None;
        let status = self.record.end_early(status);
        let mut trailers = http::HeaderMap::new();
        match status.add_header(&mut trailers) {
            Ok(()) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Err(status) => Poll::Ready(Some(Err(status))),
        }
    }
}

impl<B> Body for CallBody<B>
where
    B: Body<Data = Bytes, Error = Status> + Unpin,
{
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        let span = this.record.span.clone();
        let _entered = span.enter();

        let Some(inner) = &mut this.inner else {
            return Poll::Ready(None);
        };
        if let Some(status) = this.end_after.take() {
            return this.end(status);
        }
        let polled = Pin::new(inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.record.bytes += data.remaining() as u64;
                    // Responses have no size limit of ours to check.
                    let _ = this.record.messages.feed(data.chunk());
                } else if let Some(trailers) = frame.trailers_ref() {
                    this.record.status =
                        Some(Status::from_header_map(trailers).map_or(Code::Ok, |s| s.code()));
                }
                // A stream that is always ready must still see the end:
                // the frame in hand goes out, then the call ends.
                if this.record.status.is_none()
                    && (this.record.ending.is_cancelled()
                        || this.deadline.as_ref().is_some_and(|d| d.is_elapsed()))
                {
                    this.end_after = this.must_end(cx);
                }
            }
            Poll::Ready(None) => {
                this.record.status.get_or_insert(Code::Ok);
            }
            Poll::Ready(Some(Err(status))) => {
                this.record.status = Some(status.code());
            }
            Poll::Pending => {
                if let Some(status) = this.must_end(cx) {
                    return this.end(status);
                }
            }
        }
        polled
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
