//! What runs around every call, whatever its service.
//!
//! [`CallService`] wraps the server's routes and gives every call the same
//! operational guarantees, so no handler has to remember them:
//!
//! - **A span** named `call`, carrying a call number, the peer address, the
//!   method and (once the handler knows it) the user, around the handler
//!   and around every poll of its response stream.
//! - **A cap** on concurrent calls ([`calls`]), and each connection's
//!   share of it ([`connection`]): past `--max-calls`, the server makes
//!   room ([`room`]) by ending a call whose request has not come or whose
//!   client does not read, or else answers the new call RESOURCE_EXHAUSTED
//!   at once.
//!   Health and reflection calls are exempt, so a busy server can still be
//!   probed.
//! - **A size limit** on request messages ([`limits`]), checked from each
//!   message's length prefix.
//! - **The caller's deadline** ([`deadline`]) over the whole call, to the
//!   last message of a stream. tonic's own timeout covers only the
//!   response headers, and reports CANCELLED.
//! - **Shutdown.** When told ([`Endings`]), the layer ends a call's
//!   response with UNAVAILABLE `server shutting down`, after what it
//!   already produced ([`body`]).
//! - **A record** ([`record`]) of how the call ended: one line with its
//!   status code, messages and bytes sent, and duration; and the
//!   tutorial's `Client went away: ...` line when the client left first.
//!
//! Handlers talk back to the layer through the [`CallContext`] in each
//! request's extensions.

mod body;
mod calls;
mod connection;
mod context;
mod count;
mod deadline;
mod limits;
mod record;
mod room;

use std::{
    convert::Infallible,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::Body;
use tokio_util::sync::CancellationToken;
use tonic::{Status, transport::server::TcpConnectInfo};
use tracing::{Instrument, field, info_span};

use crate::{
    ops::{logging::RateLimited, metrics::Metrics},
    wire::ResponseBody,
};

pub use self::calls::Calls;
#[cfg(not(test))]
use self::connection::ConnectionCalls;
#[cfg(test)]
pub(crate) use self::connection::ConnectionCalls;
pub(crate) use self::room::StalledGuard;
pub(crate) use self::{
    body::{CallBody, EndEarly, status_trailers},
    context::CallContext,
    limits::MAX_REQUEST_BYTES,
};
use self::{limits::RequestLimit, record::Record};

/// Numbers calls for the logs, so a call's lines can be told apart from
/// others' (span ids are reused; these are not).
static NEXT_CALL_ID: AtomicU64 = AtomicU64::new(1);

/// The status message of calls ended by shutdown.
const SHUTTING_DOWN: &str = "server shutting down";

fn shutting_down() -> Status {
    Status::unavailable(SHUTTING_DOWN)
}

/// Tells calls in flight to end, per kind.
#[derive(Debug, Clone, Default)]
pub(crate) struct Endings {
    /// Ends health watches and reflection streams, which never end on their
    /// own and must not hold up shutdown.
    pub(crate) infrastructure: CancellationToken,
    /// Ends the application's calls, once the grace period is over.
    pub(crate) application: CancellationToken,
}

/// How many application calls may run, and how long a request may take
/// to arrive.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Calls at once across all connections.
    pub(crate) max_calls: usize,
    /// Calls at once on one connection: its share.
    pub(crate) max_calls_per_connection: usize,
    /// How long a one-message request may take to arrive.
    pub(crate) request_timeout: std::time::Duration,
}

/// Wraps the server's routes as the [module docs](self) describe. Clone it
/// per connection with [`CallService::for_connection`].
#[derive(Debug, Clone)]
pub(crate) struct CallService<S> {
    inner: S,
    calls: Calls,
    limits: Limits,
    endings: Endings,
    connection: Option<TcpConnectInfo>,
    /// The calls of this service's connection.
    connection_calls: Option<Arc<ConnectionCalls>>,
    /// Lines about calls refused or ended before their request arrived.
    refusals: Arc<RateLimited>,
    metrics: Metrics,
}

impl<S> CallService<S> {
    /// Wraps `inner`, counting application calls in `calls` within
    /// `limits`, and ending calls when `endings` says so.
    pub(crate) fn new(
        inner: S,
        calls: Calls,
        limits: Limits,
        endings: Endings,
        metrics: Metrics,
    ) -> Self {
        Self {
            inner,
            calls,
            limits,
            endings,
            metrics,
            connection: None,
            connection_calls: None,
            refusals: Arc::new(RateLimited::new()),
        }
    }

    /// The service for one connection: its calls know their peer, and
    /// handlers see it as `Request::remote_addr`.
    pub(crate) fn for_connection(&self, connection: TcpConnectInfo) -> Self
    where
        S: Clone,
    {
        Self {
            connection: Some(connection),
            connection_calls: Some(Arc::default()),
            ..self.clone()
        }
    }

    /// How many of this connection's calls ended before their request
    /// arrived.
    pub(crate) fn ended_before_request(&self) -> u64 {
        self.connection_calls
            .as_ref()
            .map_or(0, |calls| calls.count_ended_before_request())
    }
}

/// Health checks and reflection: infrastructure, not the application.
fn is_infrastructure(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/") || path.starts_with("/grpc.reflection.")
}

/// Whether the method's request is a stream of messages: the time its first
/// message may take is the client's to decide.
fn streams_requests(path: &str) -> bool {
    matches!(
        path,
        "/ChatService/CollectStream"
            | "/ChatService/Chat"
            | "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
            | "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
    )
}

/// A call refused at once, with `status`.
fn refused(status: Status) -> Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>> {
    Box::pin(std::future::ready(Ok(status
        .into_http()
        .map(CallBody::unrecorded))))
}

type Response = http::Response<CallBody>;

impl<S, B> tower_service::Service<http::Request<B>> for CallService<S>
where
    S: tower_service::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<ResponseBody>,
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
        let id = NEXT_CALL_ID.fetch_add(1, Ordering::Relaxed);
        // When the call came in: its request is due by a timeout from now,
        // and, waiting for it, the call is ended to make room only a grace
        // period from now, as a rule (call/room.rs).
        let now = tokio::time::Instant::now();
        let path = request.uri().path();
        let infrastructure = is_infrastructure(path);
        let peer = self
            .connection
            .as_ref()
            .and_then(TcpConnectInfo::remote_addr);
        let span = info_span!(
            "call",
            id,
            method = field::display(path),
            peer = field::display(peer.map_or_else(|| "-".to_owned(), |peer| peer.to_string())),
            user = field::Empty,
        );
        let method = self.metrics.method(path);
        let tells_story = path == crate::services::TELL_STORY_PATH;
        if let Some(method) = &method {
            method.started();
        }
        // A refused call is handled too, as far as the metrics go.
        let refused_with = |metrics: &Metrics, per_connection: bool, status: Status| {
            metrics.call_refused(per_connection);
            if let Some(method) = &method {
                method.handled(status.code(), std::time::Duration::ZERO);
            }
            refused(status)
        };

        // Only a counted call waits for its request where the server may
        // end it to make room: ending one the count leaves out (health,
        // reflection) would make none.
        let (seats, awaiting, ending) = if infrastructure {
            (None, None, self.endings.infrastructure.child_token())
        } else {
            let seat = match &self.connection_calls {
                Some(connection) => {
                    let share = self.limits.max_calls_per_connection;
                    let Some(seat) = connection.enter(share) else {
                        self.refusals.info(format_args!(
                            "Refused a call from {}: its connection has {share} calls running, \
                             its share (--max-calls-per-connection)",
                            peer.map_or_else(|| "-".to_owned(), |peer| peer.to_string()),
                        ));
                        return refused_with(
                            &self.metrics,
                            true,
                            Status::resource_exhausted(format!(
                                "this connection has {share} calls running, its share of the \
                                 server's; wait for one to end, or open another connection"
                            )),
                        );
                    };
                    Some(seat)
                }
                None => None,
            };
            let entering = self.connection_calls.as_ref();
            let Some((gauge, awaiting)) =
                self.calls
                    .enter_making_room(self.limits.max_calls, entering, id, now)
            else {
                self.refusals.info(format_args!(
                    "Refused a call: the server is at its limit of {} calls (--max-calls)",
                    self.limits.max_calls
                ));
                return refused_with(
                    &self.metrics,
                    false,
                    Status::resource_exhausted(format!(
                        "the server is at its limit of {} concurrent calls; retry later",
                        self.limits.max_calls
                    )),
                );
            };
            (
                Some((gauge, seat)),
                Some(awaiting),
                self.endings.application.child_token(),
            )
        };

        let context = CallContext::default();
        if let Some(peer) = peer {
            context.identify_peer(peer);
        }
        let request_by = (!streams_requests(path)).then(|| now + self.limits.request_timeout);
        let place_taken = awaiting.as_ref().map(|awaiting| awaiting.evict.clone());
        let mut request = request.map(|body| {
            tonic::body::Body::new(RequestLimit::new(
                body,
                MAX_REQUEST_BYTES as u64,
                context.clone(),
                awaiting,
                request_by,
                method.clone(),
            ))
        });
        if let Some(connection) = &self.connection {
            request.extensions_mut().insert(connection.clone());
        }
        request.extensions_mut().insert(context.clone());
        let deadline = deadline::deadline(request.headers());
        let mut record = Record::new(id, span.clone(), context, self.calls.clone(), ending, seats);
        record.place_taken = place_taken;
        record.count_in(self.metrics.clone(), method, tells_story);

        // The usual tower dance: the clone is ready only if `self.inner` was.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let handler = inner.call(request);
        Box::pin(answered(handler, record, deadline).instrument(span))
    }
}

/// The call's response: the handler's, or the status the call ended with
/// first (its deadline passed, or the server is shutting down).
///
/// Every call holds this until its response begins, which for a call
/// waiting for its request may be a while: a plain function around an
/// `async` block, since an `async fn` would hold its arguments twice.
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn would hold its arguments twice"
)]
fn answered<F>(
    handler: F,
    mut record: Record,
    deadline: Option<tokio::time::Instant>,
) -> impl Future<Output = Result<Response, Infallible>> + Send
where
    F: Future<Output = Result<http::Response<ResponseBody>, Infallible>> + Send,
{
    async move {
        let ending = record.ending.clone();
        let response = tokio::select! {
            response = handler => response?,
            () = deadline::passed(deadline) => {
                record.end_early(deadline::deadline_exceeded()).into_http()
            }
            () = ending.cancelled() => record.end_early(shutting_down()).into_http(),
        };
        // A handler that failed answers in the headers alone.
        if let Some(status) = Status::from_header_map(response.headers()) {
            record.status = Some(status.code());
        }
        Ok(response.map(|body| CallBody::new(body, record, deadline)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sizes::returned_size_3;

    #[test]
    fn a_call_waiting_for_its_response_holds_little() {
        // Thousands of calls opened at once may each wait here for their
        // request. It is 400 bytes, the call's record half of them; with
        // room for a deadline's timer whether or not the call had a
        // deadline, it was 504. (The span around it adds its own.)
        type Handler =
            Pin<Box<dyn Future<Output = Result<http::Response<ResponseBody>, Infallible>> + Send>>;
        let size = returned_size_3(answered::<Handler>);
        assert!(size <= 448, "a call's answer is {size} bytes");
    }
}
