//! One layer around every call the server answers, whatever its service.
//!
//! [`CallService`] gives every call the same operational guarantees, so no
//! handler has to remember them:
//!
//! - **A span** named `call`, carrying a call number, the peer address, the
//!   method and (once the handler knows it) the user, around the handler
//!   and around every poll of its response stream.
//! - **A cap** on concurrent calls: past `--max-calls`, a call is answered
//!   RESOURCE_EXHAUSTED at once. Health and reflection calls are exempt, so
//!   a busy server can still be probed.
//! - **The caller's deadline** (`grpc-timeout`) over the whole call, to the
//!   last message of a stream. tonic's own timeout covers only the response
//!   headers, and reports CANCELLED.
//! - **Shutdown.** When told, the layer ends a call's response with
//!   UNAVAILABLE `server shutting down`, after what it already produced.
//! - **A record** of how the call ended: one line with its status code,
//!   messages and bytes sent, and duration; and the tutorial's
//!   `Client went away: ...` line when the client left first.

use std::{
    convert::Infallible,
    pin::Pin,
    sync::atomic::{AtomicU64, Ordering},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use assistant_proto::codes::code_name;
use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::{Code, Status, transport::server::TcpConnectInfo};
use tracing::{Instrument, Span, field, info, info_span};

use crate::calls::{CallContext, Calls, Gauge};

/// Numbers calls for the logs, so a call's lines can be told apart from
/// others' (span ids are reused; these are not).
static NEXT_CALL_ID: AtomicU64 = AtomicU64::new(1);

/// The status message of calls ended by shutdown.
pub const SHUTTING_DOWN: &str = "server shutting down";

/// Tells calls in flight to end, per kind.
#[derive(Debug, Clone, Default)]
pub struct Endings {
    /// Ends health watches and reflection streams, which never end on their
    /// own and must not hold up shutdown.
    pub infrastructure: CancellationToken,
    /// Ends the application's calls, once the grace period is over.
    pub application: CancellationToken,
}

/// Wraps the server's routes as the [module docs](self) describe. Clone it
/// per connection with [`CallService::for_connection`].
#[derive(Debug, Clone)]
pub struct CallService<S> {
    inner: S,
    calls: Calls,
    max_calls: usize,
    max_request_bytes: u64,
    endings: Endings,
    connection: Option<TcpConnectInfo>,
}

impl<S> CallService<S> {
    /// Wraps `inner`, counting application calls in `calls` and refusing
    /// more than `max_calls` at once, refusing request messages over
    /// `max_request_bytes`, and ending calls when `endings` says so.
    pub fn new(
        inner: S,
        calls: Calls,
        max_calls: usize,
        max_request_bytes: usize,
        endings: Endings,
    ) -> Self {
        Self {
            inner,
            calls,
            max_calls,
            max_request_bytes: max_request_bytes as u64,
            endings,
            connection: None,
        }
    }

    /// The service for one connection: its calls know their peer, and
    /// handlers see it as `Request::remote_addr`.
    pub fn for_connection(&self, connection: TcpConnectInfo) -> Self
    where
        S: Clone,
    {
        Self {
            connection: Some(connection),
            ..self.clone()
        }
    }
}

/// Health checks and reflection: infrastructure, not the application.
fn is_infrastructure(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/") || path.starts_with("/grpc.reflection.")
}

type Response = http::Response<tonic::body::Body>;

impl<S, B> tower_service::Service<http::Request<B>> for CallService<S>
where
    S: tower_service::Service<
            http::Request<tonic::body::Body>,
            Response = Response,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let max_request_bytes = self.max_request_bytes;
        let mut request = request.map(|body| {
            tonic::body::Body::new(RequestLimit {
                inner: body,
                frames: FrameCounter::with_limit(max_request_bytes),
            })
        });
        if let Some(connection) = &self.connection {
            request.extensions_mut().insert(connection.clone());
        }
        let path = request.uri().path();
        let infrastructure = is_infrastructure(path);
        let peer = self
            .connection
            .as_ref()
            .and_then(TcpConnectInfo::remote_addr);
        let span = info_span!(
            "call",
            id = NEXT_CALL_ID.fetch_add(1, Ordering::Relaxed),
            method = field::display(path),
            peer = field::display(peer.map_or_else(|| "-".to_owned(), |peer| peer.to_string())),
            user = field::Empty,
        );

        let (gauge, ending) = if infrastructure {
            (None, self.endings.infrastructure.child_token())
        } else {
            let Some(gauge) = self.calls.enter(self.max_calls) else {
                let status = Status::resource_exhausted(format!(
                    "the server is at its limit of {} concurrent calls; retry later",
                    self.max_calls
                ));
                span.in_scope(
                    || info!(code = %"RESOURCE_EXHAUSTED", "Call refused: too many calls"),
                );
                return Box::pin(std::future::ready(Ok(status.into_http())));
            };
            (Some(gauge), self.endings.application.child_token())
        };

        let context = CallContext::default();
        if let Some(peer) = peer {
            context.identify_peer(peer);
        }
        request.extensions_mut().insert(context.clone());
        // The longest legal grpc-timeout (99,999,999 hours) overflows an
        // Instant on some platforms; a deadline past what one can hold is
        // no deadline at all.
        let deadline = grpc_timeout(request.headers())
            .and_then(|timeout| tokio::time::Instant::now().checked_add(timeout));
        let mut record = Record {
            span: span.clone(),
            context,
            started: Instant::now(),
            status: None,
            bytes: 0,
            messages: FrameCounter::default(),
            calls: self.calls.clone(),
            ending,
            _gauge: gauge,
        };

        // The usual tower dance: the clone is ready only if `self.inner` was.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let handler = inner.call(request);
        Box::pin(
            async move {
                let deadline_passed = async {
                    match deadline {
                        Some(deadline) => tokio::time::sleep_until(deadline).await,
                        None => std::future::pending().await,
                    }
                };
                let ending = record.ending.clone();
                let response = tokio::select! {
                    response = handler => response?,
                    () = deadline_passed => record.end_early(deadline_exceeded()).into_http(),
                    () = ending.cancelled() => record.end_early(shutting_down()).into_http(),
                };
                // A handler that failed answers in the headers alone.
                if let Some(status) = Status::from_header_map(response.headers()) {
                    record.status = Some(status.code());
                }
                let deadline =
                    deadline.map(|deadline| Box::pin(tokio::time::sleep_until(deadline)));
                Ok(response.map(|body| {
                    tonic::body::Body::new(CallBody {
                        inner: Some(body),
                        record,
                        deadline,
                        ending_wait: None,
                        end_after: None,
                    })
                }))
            }
            .instrument(span),
        )
    }
}

fn deadline_exceeded() -> Status {
    Status::deadline_exceeded("the call's deadline (grpc-timeout) passed")
}

fn shutting_down() -> Status {
    Status::unavailable(SHUTTING_DOWN)
}

/// Parses `grpc-timeout`: at most 8 digits and a unit, as gRPC's HTTP/2
/// protocol defines it. A malformed value is ignored, as if absent.
pub fn grpc_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// How one call went; logged when it is dropped, however the call ended.
struct Record {
    span: Span,
    context: CallContext,
    started: Instant,
    /// The status the call ended with; `None` while it runs, and for good
    /// if the client leaves first.
    status: Option<Code>,
    bytes: u64,
    messages: FrameCounter,
    calls: Calls,
    /// Cancelled when shutdown ends this kind of call.
    ending: CancellationToken,
    _gauge: Option<Gauge>,
}

impl Record {
    /// Ends the call with `status` before its handler did.
    fn end_early(&mut self, status: Status) -> Status {
        if status.code() == Code::Unavailable {
            self.calls.count_ended_by_shutdown();
        }
        self.status = Some(status.code());
        status
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        let _entered = self.span.enter();
        let code = match self.status {
            Some(code) => code,
            // Dropped mid-call after shutdown ended calls: its connection
            // was closed, most likely stuck on a client that stopped reading.
            None if self.ending.is_cancelled() => {
                self.calls.count_ended_by_shutdown();
                info!("Connection closed by shutdown mid-call");
                Code::Unavailable
            }
            None => {
                info!(
                    "Client went away: {} after {} bytes",
                    self.context.client(),
                    self.context.payload_bytes()
                );
                Code::Cancelled
            }
        };
        info!(
            code = %code_name(code),
            messages = self.messages.count,
            bytes = self.bytes,
            // Rounded to the microsecond, so it prints as 7.371, not
            // 7.3707590000000005.
            elapsed_ms = (self.started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
            "Call ended"
        );
    }
}

/// Counts the gRPC messages in a body's bytes: each is a 5-byte header (a
/// flag and a 4-byte length) and that many bytes, and a message may span
/// data frames. It can refuse messages over a size limit from their header
/// alone.
#[derive(Debug)]
struct FrameCounter {
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
    fn with_limit(limit: u64) -> Self {
        Self {
            count: 0,
            limit,
            header: [0; 5],
            header_len: 0,
            remaining: 0,
        }
    }

    /// Counts what `data` holds; fails with the length a message header
    /// claims, if that is over the limit.
    fn feed(&mut self, mut data: &[u8]) -> Result<(), u64> {
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
struct RequestLimit<B> {
    inner: B,
    frames: FrameCounter,
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
        match std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref()
                    && let Err(claimed) = this.frames.feed(data.chunk())
                {
                    return Poll::Ready(Some(Err(Status::resource_exhausted(format!(
                        "a request message of {claimed} bytes is over the limit of {} bytes",
                        this.frames.limit
                    )))));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(err)) => Poll::Ready(Some(Err(Status::from_error(err.into())))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that ends early on deadline or shutdown, and records
/// what passed through it.
struct CallBody<B> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_grpc_timeouts() {
        let parse = |value: &str| {
            let mut headers = http::HeaderMap::new();
            headers.insert("grpc-timeout", value.parse().unwrap());
            grpc_timeout(&headers)
        };
        assert_eq!(parse("3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse("1M"), Some(Duration::from_secs(60)));
        assert_eq!(parse("99999999u"), Some(Duration::from_micros(99_999_999)));
        assert_eq!(parse("5n"), Some(Duration::from_nanos(5)));
        for bad in ["", "S", "3", "3s", "-3S", "123456789S", "1.5S", "3 S"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        assert_eq!(grpc_timeout(&http::HeaderMap::new()), None);
    }

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
    fn refuses_a_message_over_the_limit_from_its_header() {
        let mut counter = FrameCounter::with_limit(4096);
        assert_eq!(counter.feed(&[0, 0, 0, 0x10, 0x00]), Ok(()));
        counter.feed(&[b'x'; 4096]).unwrap();
        assert_eq!(counter.feed(&[0, 0xff, 0xff]), Ok(()));
        assert_eq!(counter.feed(&[0xff, 0xff]), Err(u64::from(u32::MAX)));
    }
}
