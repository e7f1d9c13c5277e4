//! A call's response as it arrives: its body, handed to tonic piece by
//! piece, with the flow-control window given back as tonic takes each
//! piece; and the count of calls waiting on the server, which keepalive
//! watches.

use std::{
    pin::Pin,
    sync::{Arc, atomic::Ordering},
    task::{Context, Poll},
    time::Instant,
};

use bytes::Bytes;
use h2::RecvStream;
use http_body::{Body, Frame};
use tonic::Status;

use super::channel::{CancelOnDrop, Shared};
use crate::flow::Flow;

/// Counts a call as waiting on the server while it lives, and tells the
/// call's flow, if it is watched.
#[derive(Debug)]
pub(super) struct Waiting {
    shared: Arc<Shared>,
    flow: Option<Flow>,
}

impl Waiting {
    pub(super) fn start(shared: &Arc<Shared>, flow: Option<&Flow>) -> Self {
        if shared.waiting.fetch_add(1, Ordering::AcqRel) == 0 {
            shared.times().waiting_since = Instant::now();
        }
        if let Some(flow) = flow {
            flow.set_waiting(true);
        }
        Self {
            shared: Arc::clone(shared),
            flow: flow.cloned(),
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.shared.waiting.fetch_sub(1, Ordering::AcqRel);
        if let Some(flow) = &self.flow {
            flow.set_waiting(false);
        }
    }
}

/// A response body: what the server sends, handed to tonic as it arrives,
/// with the flow-control window given back as tonic takes each piece.
#[derive(Debug)]
pub struct ResponseBody {
    recv: RecvStream,
    data_done: bool,
    /// Set while the application waits for data the server has not sent.
    waiting: Option<Waiting>,
    shared: Arc<Shared>,
    /// The flow this response reports to, if it is watched.
    flow: Option<Flow>,
    _cancel: CancelOnDrop,
}

impl ResponseBody {
    pub(super) fn new(
        mut recv: RecvStream,
        shared: Arc<Shared>,
        flow: Option<Flow>,
        cancel: CancelOnDrop,
    ) -> Self {
        if let Some(flow) = &flow {
            flow.attach(recv.flow_control().clone(), super::STREAM_WINDOW);
        }
        Self {
            recv,
            data_done: false,
            waiting: None,
            shared,
            flow,
            _cancel: cancel,
        }
    }

    fn wait(&mut self) {
        if self.waiting.is_none() {
            self.waiting = Some(Waiting::start(&self.shared, self.flow.as_ref()));
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if let Some(flow) = &self.flow {
            flow.detach();
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        if !this.data_done {
            match this.recv.poll_data(cx) {
                Poll::Ready(Some(Ok(data))) => {
                    this.waiting = None;
                    this.shared.heard();
                    // What tonic takes is as good as read: the server may
                    // send that much more.
                    let _ = this.recv.flow_control().release_capacity(data.len());
                    if let Some(flow) = &this.flow {
                        flow.took(data.len(), super::STREAM_WINDOW);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Poll::Ready(Some(Err(err))) => {
                    this.waiting = None;
                    return Poll::Ready(Some(Err(this.shared.status(err))));
                }
                Poll::Ready(None) => this.data_done = true,
                Poll::Pending => {
                    this.wait();
                    return Poll::Pending;
                }
            }
        }
        let trailers = match this.recv.poll_trailers(cx) {
            Poll::Ready(trailers) => trailers,
            Poll::Pending => {
                this.wait();
                return Poll::Pending;
            }
        };
        this.waiting = None;
        match trailers {
            Ok(Some(trailers)) => {
                this.shared.heard();
                Poll::Ready(Some(Ok(Frame::trailers(trailers))))
            }
            Ok(None) => Poll::Ready(None),
            Err(err) => Poll::Ready(Some(Err(this.shared.status(err)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.recv.is_end_stream()
    }
}
