//! The HTTP/2 channel gRPC calls are made on: tonic's generated clients
//! over an h2 connection of our own.
//!
//! tonic's own channel (hyper's client) sends keepalive pings on a timer,
//! whatever the calls are doing. A client that types a story slowly keeps
//! its flow-control window full for minutes, so the server has nothing to
//! send; pings every few seconds then look like abuse to grpcio and
//! grpc-go, which close the connection with `too_many_pings` (measured:
//! within seconds, against the tutorial's own server). Owning the
//! connection lets the client ping only while a call is waiting on the
//! server ([`super::keepalive`]), and say clearly why a connection ended.

use std::{
    pin::Pin,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Instant,
};

use bytes::{Buf, Bytes};
use h2::{Reason, SendStream, client::SendRequest};
use http::uri::{Authority, Scheme};
use http_body::Body;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use super::response::{ResponseBody, Waiting};
use crate::flow::Flow;

/// What the user agent header says the client is.
const USER_AGENT: &str = concat!("assistant-client/", env!("CARGO_PKG_VERSION"));

/// A connection to the server, on which any number of calls can be made.
/// Cheap to clone; the connection closes when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Channel {
    send: SendRequest<Bytes>,
    scheme: Scheme,
    authority: Authority,
    shared: Arc<Shared>,
    /// Where calls on this handle report their responses' flow, if
    /// anywhere.
    flow: Option<Flow>,
}

/// What the connection's calls, its driver and its keepalive share.
#[derive(Debug)]
pub(super) struct Shared {
    /// Calls waiting on the server: for response headers, or for more of
    /// a response body that the application has asked for.
    pub(super) waiting: AtomicUsize,
    /// Since when some call has been waiting, and when the server last
    /// sent headers or data on any call.
    times: Mutex<Times>,
    /// Why the client closed the connection, if it did.
    closed_because: OnceLock<String>,
    /// Cancelled to close the connection at once.
    pub(super) kill: CancellationToken,
    /// Cancelled once the connection has closed, for whatever reason.
    pub(super) closed: CancellationToken,
    /// Set when a call learns that the connection is gone (before its
    /// driver may have noticed).
    broken: AtomicBool,
    /// The error the connection ended with, if any.
    pub(super) ended_with: Mutex<Option<h2::Error>>,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Times {
    pub(super) waiting_since: Instant,
    pub(super) heard: Instant,
}

impl Shared {
    pub(super) fn new() -> Arc<Self> {
        let now = Instant::now();
        Arc::new(Self {
            waiting: AtomicUsize::new(0),
            times: Mutex::new(Times {
                waiting_since: now,
                heard: now,
            }),
            closed_because: OnceLock::new(),
            kill: CancellationToken::new(),
            closed: CancellationToken::new(),
            broken: AtomicBool::new(false),
            ended_with: Mutex::new(None),
        })
    }

    pub(super) fn times(&self) -> std::sync::MutexGuard<'_, Times> {
        self.times.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether any call is waiting on the server, and if so, how the
    /// silence is measured.
    pub(super) fn waiting(&self) -> Option<Times> {
        (self.waiting.load(Ordering::Acquire) > 0).then(|| *self.times())
    }

    /// The server sent headers or data.
    pub(super) fn heard(&self) {
        self.times().heard = Instant::now();
    }

    /// Closes the connection, saying why; calls on it end UNAVAILABLE with
    /// that reason.
    pub(super) fn close_because(&self, reason: String) {
        let _ = self.closed_because.set(reason);
        self.kill.cancel();
    }

    /// The status of a call that failed with `err`.
    pub(super) fn status(&self, err: h2::Error) -> Status {
        if err.is_io() || err.is_go_away() || self.closed_because.get().is_some() {
            self.broken.store(true, Ordering::Release);
        }
        let status = match (self.closed_because.get(), err.reason()) {
            (Some(reason), _) => Status::unavailable(reason.clone()),
            (None, _) if err.is_io() => Status::unavailable(format!(
                "the connection to the server was lost: {}",
                err.get_io()
                    .map_or_else(|| err.to_string(), ToString::to_string)
            )),
            (None, Some(reason)) if err.is_go_away() => Status::unavailable(format!(
                "the server closed the connection (GOAWAY {reason:?})"
            )),
            (None, Some(Reason::CANCEL)) => {
                Status::cancelled("the server cancelled the call (RST_STREAM CANCEL)")
            }
            (None, Some(Reason::REFUSED_STREAM)) => {
                Status::unavailable("the server refused the call before starting it")
            }
            (None, Some(Reason::ENHANCE_YOUR_CALM)) => {
                Status::resource_exhausted("the server asked the client to slow down")
            }
            (None, _) => Status::internal(format!("HTTP/2 error: {err}")),
        };
        let mut status = status;
        status.set_source(Arc::new(err));
        status
    }
}

impl Channel {
    /// Whether the connection has closed: calls on it would fail.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.is_cancelled() || self.shared.broken.load(Ordering::Acquire)
    }

    pub(super) fn new(
        send: SendRequest<Bytes>,
        scheme: Scheme,
        authority: Authority,
        shared: Arc<Shared>,
    ) -> Self {
        Self {
            send,
            scheme,
            authority,
            shared,
            flow: None,
        }
    }

    /// This channel, with each call's response reporting to `flow`.
    pub(crate) fn watched_by(&self, flow: Flow) -> Self {
        Self {
            flow: Some(flow),
            ..self.clone()
        }
    }
}

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<ResponseBody>, Status>> + Send>>;

impl tower_service::Service<http::Request<tonic::body::Body>> for Channel {
    type Response = http::Response<ResponseBody>;
    type Error = Status;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        self.send
            .poll_ready(cx)
            .map_err(|err| self.shared.status(err))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> ResponseFuture {
        let (mut parts, body) = request.into_parts();
        // tonic gives the path; HTTP/2 needs the scheme and authority too.
        let mut uri = parts.uri.into_parts();
        uri.scheme = Some(self.scheme.clone());
        uri.authority = Some(self.authority.clone());
        parts.uri = match http::Uri::from_parts(uri) {
            Ok(uri) => uri,
            Err(err) => {
                let status = Status::internal(format!("cannot make a request URI: {err}"));
                return Box::pin(std::future::ready(Err(status)));
            }
        };
        parts.headers.insert(
            http::header::USER_AGENT,
            http::HeaderValue::from_static(USER_AGENT),
        );
        let end_of_stream = body.is_end_stream();
        let request = http::Request::from_parts(parts, ());
        let (response, send_body) = match self.send.send_request(request, end_of_stream) {
            Ok(sent) => sent,
            Err(err) => return Box::pin(std::future::ready(Err(self.shared.status(err)))),
        };
        let (cancel, cancelled) = oneshot::channel();
        if !end_of_stream {
            tokio::spawn(send_request_body(body, send_body, cancelled));
        }
        let shared = Arc::clone(&self.shared);
        let flow = self.flow.clone();
        let waiting = Waiting::start(&shared, flow.as_ref());
        Box::pin(async move {
            // Dropped with the future, or handed on to the body: either way
            // the request stream is reset when the call is abandoned.
            let cancel = CancelOnDrop(Some(cancel));
            let response = response.await.map_err(|err| shared.status(err))?;
            drop(waiting);
            shared.heard();
            Ok(response.map(|recv| ResponseBody::new(recv, shared, flow, cancel)))
        })
    }
}

/// Resets a call's request stream when the call is abandoned.
#[derive(Debug)]
pub(super) struct CancelOnDrop(Option<oneshot::Sender<()>>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(cancel) = self.0.take() {
            let _ = cancel.send(());
        }
    }
}

/// Sends a request body that is more than one message (a client stream),
/// as HTTP/2 flow control lets it go. Resets the stream (CANCEL) when the
/// body fails (the call was cancelled) or the call is abandoned; stops when
/// the server resets it.
async fn send_request_body(
    body: tonic::body::Body,
    mut stream: SendStream<Bytes>,
    mut cancelled: oneshot::Receiver<()>,
) {
    let mut body = std::pin::pin!(body);
    loop {
        let frame = tokio::select! {
            frame = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)) => frame,
            _ = &mut cancelled => {
                stream.send_reset(Reason::CANCEL);
                return;
            }
            _ = std::future::poll_fn(|cx| stream.poll_reset(cx)) => return,
        };
        let frame = match frame {
            None => {
                let _ = stream.send_data(Bytes::new(), true);
                return;
            }
            Some(Err(_)) => {
                stream.send_reset(Reason::CANCEL);
                return;
            }
            Some(Ok(frame)) => frame,
        };
        let mut data = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    let _ = stream.send_trailers(trailers);
                }
                return;
            }
        };
        while data.has_remaining() {
            stream.reserve_capacity(data.remaining());
            let room = tokio::select! {
                room = std::future::poll_fn(|cx| stream.poll_capacity(cx)) => room,
                _ = &mut cancelled => {
                    stream.send_reset(Reason::CANCEL);
                    return;
                }
            };
            match room {
                Some(Ok(0)) => continue,
                Some(Ok(room)) => {
                    let piece = data.split_to(room.min(data.remaining()));
                    if stream.send_data(piece, false).is_err() {
                        return;
                    }
                }
                Some(Err(_)) | None => return,
            }
        }
    }
}
