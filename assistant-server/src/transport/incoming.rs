//! A request body: what the client sends on an HTTP/2 stream, handed on
//! as it arrives, with the flow-control window given back as it is taken.

use std::{pin::Pin, task::Poll};

use bytes::Bytes;
use h2::RecvStream;
use http_body::{Body, Frame};
use tonic::Status;

/// A request body: what the client sends on the stream, handed on as it
/// arrives, with the flow-control window given back as it is taken.
#[derive(Debug)]
pub(super) struct IncomingBody {
    recv: RecvStream,
    data_done: bool,
}

impl IncomingBody {
    /// The body that `recv` receives.
    pub(super) fn new(recv: RecvStream) -> Self {
        Self {
            recv,
            data_done: false,
        }
    }
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
