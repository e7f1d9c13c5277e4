//! Turning `--server` into a connected HTTP/2 channel for gRPC calls,
//! plaintext or TLS, with errors a user can act on.
//!
//! Connecting is done when the server has answered an HTTP/2 PING: a TCP
//! server that never speaks, or an HTTP/2 server that never answers, is
//! reported within `--connect-timeout` instead of waited on forever. Once
//! connected, [`keepalive`] notices a server that stops answering.

mod args;
mod channel;
mod keepalive;
mod response;
mod tls;
mod wire;

use std::time::{Duration, Instant};

use h2::Ping;
use http::uri::Scheme;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
};
use tracing::debug;

pub(crate) use self::tls::tls_error;
pub use self::{
    args::{ConnectArgs, Target},
    channel::Channel,
    response::ResponseBody,
    wire::WireBytes,
};
use self::{channel::Shared, wire::Counted};
use crate::ClientError;

/// The server the client calls by default: the tutorial's.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:50051";

/// The HTTP/2 flow-control window for each call, in bytes.
///
/// This is how much the server may send ahead of what the client has read.
/// hyper's default is 2 MiB, which would swallow a whole story at once and
/// hide backpressure; 64 KiB is HTTP/2's own default and where gRPC's other
/// implementations start, so a slow reader slows the server down after
/// about 64 chunks.
pub const STREAM_WINDOW: u32 = 64 * 1024;

/// The HTTP/2 flow-control window for the whole connection: room for many
/// calls' windows at once (`assistant-client bench` runs dozens on one
/// connection), so that it never holds a call back on its own.
const CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;

/// The largest header block the client accepts from a server.
const MAX_HEADER_LIST: u32 = 64 * 1024;

/// A connected channel, the count of bytes it has received, and what it
/// takes to connect again.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The channel calls are made on.
    pub channel: Channel,
    /// Bytes received so far, on this connection and those before it.
    pub wire: WireBytes,
    args: ConnectArgs,
    timeout: Option<Duration>,
}

impl Connection {
    /// The channel, connected again first if the connection has closed
    /// (after a lost connection, before a call resumes).
    pub async fn ready(&mut self) -> Result<Channel, ClientError> {
        if self.channel.is_closed() {
            self.channel = open(&self.args, self.timeout, &self.wire).await?;
        }
        Ok(self.channel.clone())
    }
}

/// Connects to the server `args` name, failing with one line that says
/// what to do. A `timeout` (the call's `--timeout`) shorter than
/// `--connect-timeout` bounds the wait too.
pub async fn connect(
    args: &ConnectArgs,
    timeout: Option<Duration>,
) -> Result<Connection, ClientError> {
    let wire = WireBytes::default();
    let channel = open(args, timeout, &wire).await?;
    Ok(Connection {
        channel,
        wire,
        args: args.clone(),
        timeout,
    })
}

/// Opens a connection, counting what it receives in `wire`.
async fn open(
    args: &ConnectArgs,
    timeout: Option<Duration>,
    wire: &WireBytes,
) -> Result<Channel, ClientError> {
    let target = args.target()?;
    let limit = timeout.map_or(args.connect_timeout, |t| t.min(args.connect_timeout));
    let deadline = tokio::time::Instant::now() + limit;
    let unreachable = |reason: String| ClientError::Unreachable {
        server: target.url.clone(),
        reason,
    };
    let waited = || format!("no answer within {} s", limit.as_secs_f64());

    let addrs = tokio::time::timeout_at(
        deadline,
        tokio::net::lookup_host((target.host.as_str(), target.port)),
    )
    .await
    .map_err(|_| unreachable(waited()))?
    .map_err(|err| ClientError::Unresolved {
        server: target.url.clone(),
        host: target.host.clone(),
        reason: err.to_string(),
    })?;
    let addrs: Vec<_> = addrs.collect();
    let mut last_error = None;
    let mut tcp = None;
    for addr in addrs {
        match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                tcp = Some(stream);
                break;
            }
            Ok(Err(err)) => last_error = Some(err.to_string()),
            Err(_) => return Err(unreachable(waited())),
        }
    }
    let tcp = tcp.ok_or_else(|| unreachable(last_error.unwrap_or_else(waited)))?;
    let _ = tcp.set_nodelay(true);
    let io = Counted::new(tcp, wire.clone());

    if target.scheme == Scheme::HTTPS {
        let (tls, name) = tls::connector(args, &target.host)?;
        let stream = tokio::time::timeout_at(deadline, tls.connect(name, io))
            .await
            .map_err(|_| unreachable(format!("no TLS answer within {} s", limit.as_secs_f64())))?
            .map_err(|err| match tls_error(&err) {
                Some(reason) => ClientError::Tls {
                    server: target.url.clone(),
                    reason,
                },
                None => unreachable(format!("TLS failed: {err}")),
            })?;
        http2(stream, &target, args, deadline, limit).await
    } else {
        http2(io, &target, args, deadline, limit).await
    }
}

/// Speaks HTTP/2 on `io`, and waits until the server answers a PING.
async fn http2<T>(
    io: T,
    target: &Target,
    args: &ConnectArgs,
    deadline: tokio::time::Instant,
    limit: Duration,
) -> Result<Channel, ClientError>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let not_http2 = |reason: String| ClientError::NotHttp2 {
        server: target.url.clone(),
        reason,
    };
    let (send, mut connection) = h2::client::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_header_list_size(MAX_HEADER_LIST)
        .enable_push(false)
        .handshake::<_, bytes::Bytes>(io)
        .await
        .map_err(|err| not_http2(err.to_string()))?;
    let mut pings = connection
        .ping_pong()
        .ok_or_else(|| not_http2("HTTP/2 pings are unavailable".into()))?;
    let shared = Shared::new();
    tokio::spawn({
        let shared = std::sync::Arc::clone(&shared);
        async move {
            tokio::select! {
                result = connection => {
                    if let Err(err) = result {
                        debug!(error = %err, "The connection ended with an error");
                        *shared.ended_with.lock().unwrap_or_else(|e| e.into_inner()) = Some(err);
                    }
                }
                () = shared.kill.cancelled() => debug!("The connection was closed by the client"),
            }
            shared.closed.cancel();
        }
    });

    // A server that accepts the connection but never speaks HTTP/2 is
    // found here, not by the first call waiting forever.
    match tokio::time::timeout_at(deadline, pings.ping(Ping::opaque())).await {
        Ok(Ok(_pong)) => {}
        Ok(Err(err)) => {
            // The ping only learns that the connection closed; the
            // connection itself knows why (a TLS alert, say).
            let _ = tokio::time::timeout_at(deadline, shared.closed.cancelled()).await;
            shared.kill.cancel();
            let cause = shared
                .ended_with
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .unwrap_or(err);
            return Err(match tls_error(&cause) {
                Some(reason) => ClientError::Tls {
                    server: target.url.clone(),
                    reason,
                },
                None => not_http2(cause.to_string()),
            });
        }
        Err(_) => {
            shared.kill.cancel();
            return Err(not_http2(format!(
                "no HTTP/2 answer within {} s",
                limit.as_secs_f64()
            )));
        }
    }
    if !args.keepalive_interval.is_zero() {
        tokio::spawn(keepalive::run(
            pings,
            std::sync::Arc::clone(&shared),
            args.keepalive_interval,
            args.keepalive_timeout,
            Instant::now(),
        ));
    }
    Ok(Channel::new(
        send,
        target.scheme.clone(),
        target.authority.clone(),
        shared,
    ))
}
