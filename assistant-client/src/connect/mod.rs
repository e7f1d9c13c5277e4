//! Turning `--server` into a connected HTTP/2 channel for gRPC calls,
//! plaintext or TLS, with errors a user can act on.
//!
//! Connecting is done when the server has answered an HTTP/2 PING: a TCP
//! server that never speaks, or an HTTP/2 server that never answers, is
//! reported within `--connect-timeout` instead of waited on forever. Once
//! connected, [`keepalive`] notices a server that stops answering.

mod channel;
mod keepalive;
mod response;
mod tls;
mod wire;

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use h2::Ping;
use http::uri::{Authority, Scheme};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
};
use tracing::debug;

pub(crate) use self::tls::tls_error;
pub use self::{channel::Channel, response::ResponseBody, wire::WireBytes};
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

/// Where the server is, and how to trust it: flags every subcommand takes.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Connecting (any command)")]
pub struct ConnectArgs {
    /// The server: a URL such as http://127.0.0.1:50051 (https:// for
    /// TLS), or a bare host:port.
    #[arg(
        long,
        global = true,
        default_value = DEFAULT_SERVER,
        value_name = "URL"
    )]
    pub server: String,

    /// For an https:// server: trust only this PEM CA, instead of the
    /// system's roots.
    #[arg(long, global = true, value_name = "PEM")]
    pub ca_cert: Option<PathBuf>,

    /// For mutual TLS: this PEM client certificate; needs --key.
    #[arg(long, global = true, value_name = "PEM", requires = "key")]
    pub cert: Option<PathBuf>,

    /// The PEM private key of --cert.
    #[arg(long, global = true, value_name = "PEM", requires = "cert")]
    pub key: Option<PathBuf>,

    /// Give up connecting after this long: TCP, TLS, and the server's
    /// first HTTP/2 answer.
    #[arg(long, allow_negative_numbers = true, global = true, default_value = "5", value_name = "SECONDS",
          value_parser = assistant_proto::seconds::parse)]
    pub connect_timeout: Duration,

    /// While a call waits on a silent server, ping it (HTTP/2 PING) after
    /// this long; 0 never pings. A dead server is noticed within about
    /// --keepalive-interval + --keepalive-timeout.
    #[arg(long, allow_negative_numbers = true, global = true, default_value = "10", value_name = "SECONDS",
          value_parser = assistant_proto::seconds::parse)]
    pub keepalive_interval: Duration,

    /// Close the connection when a ping gets no answer in this long.
    #[arg(long, allow_negative_numbers = true, global = true, default_value = "10", value_name = "SECONDS",
          value_parser = assistant_proto::seconds::parse)]
    pub keepalive_timeout: Duration,
}

/// The defaults of the flags about connecting.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(10);

impl Default for ConnectArgs {
    fn default() -> Self {
        Self {
            server: DEFAULT_SERVER.into(),
            ca_cert: None,
            cert: None,
            key: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            keepalive_interval: DEFAULT_KEEPALIVE,
            keepalive_timeout: DEFAULT_KEEPALIVE,
        }
    }
}

impl ConnectArgs {
    /// The flags for `server`, with no TLS files.
    pub fn to(server: impl Into<String>) -> Self {
        Self {
            server: server.into(),
            ..Self::default()
        }
    }

    fn any_tls(&self) -> bool {
        self.ca_cert.is_some() || self.cert.is_some()
    }

    /// `--server` as a URL: a bare `host:port` gets `http://` in front.
    fn url(&self) -> String {
        if self.server.contains("://") {
            self.server.clone()
        } else {
            format!("http://{}", self.server)
        }
    }

    /// Parses `--server`: a URL such as `http://127.0.0.1:50051` or
    /// `https://assistant.example:443`, or a bare `host:port` as the
    /// tutorial writes it, taken as plaintext HTTP/2.
    pub fn target(&self) -> Result<Target, ClientError> {
        let bad = |reason: String| ClientError::BadAddress {
            server: self.server.clone(),
            reason,
        };
        let uri: http::Uri = self.url().parse().map_err(|err| bad(format!("{err}")))?;
        let scheme = match uri.scheme_str() {
            Some("http") if self.any_tls() => {
                return Err(bad(
                    "TLS flags (--ca-cert, --cert) need an https:// server".into()
                ));
            }
            Some("http") => Scheme::HTTP,
            Some("https") => Scheme::HTTPS,
            Some(other) => {
                return Err(bad(format!(
                    "the scheme `{other}` is not supported; use http:// or https://"
                )));
            }
            None => return Err(bad("it has no scheme".into())),
        };
        let authority = match uri.authority() {
            Some(authority) if !authority.host().is_empty() => authority.clone(),
            _ => return Err(bad("it has no host".into())),
        };
        if uri.path() != "/" && !uri.path().is_empty() {
            return Err(bad(format!(
                "the path `{}` means nothing here; give only the scheme, host and port",
                uri.path()
            )));
        }
        let port = authority
            .port_u16()
            .unwrap_or(if scheme == Scheme::HTTPS { 443 } else { 80 });
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        Ok(Target {
            url: format!("{scheme}://{authority}"),
            scheme,
            authority,
            host,
            port,
        })
    }
}

/// Where `--server` points.
#[derive(Debug, Clone)]
pub struct Target {
    /// As the user would write it: `http://host:port`.
    pub url: String,
    scheme: Scheme,
    authority: Authority,
    host: String,
    port: u16,
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_host_and_port_means_plaintext() {
        let bare = ConnectArgs::to("localhost:50051").target().unwrap();
        assert_eq!(bare.url, "http://localhost:50051");
        assert_eq!((bare.host.as_str(), bare.port), ("localhost", 50051));
        let full = ConnectArgs::to("https://[::1]").target().unwrap();
        assert_eq!((full.host.as_str(), full.port), ("::1", 443));
    }

    #[test]
    fn unusable_addresses_are_rejected_clearly() {
        let with_ca = ConnectArgs {
            ca_cert: Some("ca.pem".into()),
            ..ConnectArgs::to("http://localhost:1")
        };
        for args in [
            ConnectArgs::to(""),
            ConnectArgs::to("ftp://host:1"),
            ConnectArgs::to("http://"),
            ConnectArgs::to("exa mple:1"),
            ConnectArgs::to("http://localhost:1/some/path"),
            with_ca,
        ] {
            let err = args.target().unwrap_err();
            assert!(
                matches!(err, ClientError::BadAddress { .. }),
                "{:?}: {err}",
                args.server
            );
        }
    }
}
