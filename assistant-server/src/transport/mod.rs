//! From sockets to calls: the accept loop, each connection's task, each
//! call's stream, TLS, and write batching. HTTP/2 is h2's, driven here
//! directly rather than through hyper, so that the server decides how far a
//! call may run ahead of its client and can end a call that its client has
//! stopped reading ([`stream`]).
//!
//! Each accepted connection is served in a task of its own ([`connection`]),
//! with its calls, on one of the connection threads ([`workers`]), and
//! tracked so that shutdown can wait for them all. The server holds two
//! hands on every connection: one asks it to drain (HTTP/2 GOAWAY: start
//! no new calls, close once the calls in flight are done), the other closes
//! it at once, by dropping the connection in its task.
//!
//! What a client can make the server hold is bounded here: connections
//! ([`registry`]), the time to finish a handshake ([`handshake`]), the
//! bytes each stream may have queued (`MAX_SEND_BUFFER`), and the
//! log lines an abusive connection can cause (one, when it is closed).

mod batching;
mod connection;
mod ends;
mod handshake;
mod incoming;
mod limits;
mod listen;
mod registry;
mod stream;
mod tls;
mod workers;

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    sync::Semaphore,
};
use tokio_rustls::TlsAcceptor;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tonic::transport::server::Connected;

pub(crate) use self::registry::ConnectionCounts;
use self::{connection::Keepalive, registry::Registry, workers::Workers};
pub(crate) use self::{limits::raise_fd_limit, listen::listen};
use crate::{call::CallService, config::Config, ops::logging::RateLimited, services::Router};

/// How long to wait before accepting again after an accept error.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The most response bytes HTTP/2 may hold queued for one stream, beyond
/// what is on its way. A call waits for room before producing more, and
/// holds its place under `--max-calls` until its last frame is written
/// ([`ends`]), so a client that does not read holds at most this much in a
/// call of its own, ended at its deadline or to make room like any other.
///
/// 256 KiB, room for a whole story: the call's task hands it over in one
/// turn. With 16 KiB the call's task and the connection's task took turns
/// at every 16 KiB of a story, at 1.5 times the CPU per call; with 64 KiB,
/// three turns (docs/BENCHMARKS.md). Queued story bytes are references to
/// the story, 64 bytes a message, not copies. Other responses are tonic's
/// encoded copies: a chat's, whose size its client's own messages bound,
/// and health's and reflection's.
const MAX_SEND_BUFFER: usize = 256 * 1024;

/// The same for the web listener, whose calls hyper ends when their last
/// frame is queued: there, most of a story waits in its call.
const MAX_SEND_BUFFER_WEB: usize = 64 * 1024;

/// The same with `--compress-responses`, when the story too is tonic's
/// encoded copy: a stream that is not read holds at most this much of it.
const MAX_SEND_BUFFER_ENCODED: usize = 16 * 1024;

/// The HTTP/2 receive windows: requests are small (4 KiB at most a
/// message), so a client needs no more to send them, and may not make the
/// server hold more unread.
const STREAM_WINDOW: u32 = 64 * 1024;
const CONNECTION_WINDOW: u32 = 1024 * 1024;

/// The largest header block the server accepts.
const MAX_HEADER_LIST: u32 = 16 * 1024;

/// The HTTP/2 limits of the gRPC port, for the web listener's HTTP/2
/// (with its own send queue).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Http2Limits {
    pub(crate) stream_window: u32,
    pub(crate) connection_window: u32,
    pub(crate) send_buffer: usize,
    pub(crate) max_header_list: u32,
}

/// See [`Http2Limits`].
pub(crate) const LIMITS: Http2Limits = Http2Limits {
    stream_window: STREAM_WINDOW,
    connection_window: CONNECTION_WINDOW,
    send_buffer: MAX_SEND_BUFFER_WEB,
    max_header_list: MAX_HEADER_LIST,
};

/// Refusals being written at once; past this, a refused connection is
/// simply closed.
const MAX_REFUSALS: usize = 32;

/// The server's connections: how each is served, and a hand on all of
/// them. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Connections {
    shared: Arc<Shared>,
}

struct Shared {
    http2: h2::server::Builder,
    service: CallService<Router>,
    tls: Option<TlsAcceptor>,
    handshake_timeout: Duration,
    keepalive: Keepalive,
    registry: Registry,
    refusals: Arc<Semaphore>,
    /// Every connection's task.
    tasks: TaskTracker,
    /// Cancelled when the connections should drain.
    draining: CancellationToken,
    /// Cancelled when the connections should close at once.
    closing: CancellationToken,
    /// Lines about connections closed for abuse, and accept errors.
    log: RateLimited,
    /// The threads connections are served on.
    workers: Workers,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections")
            .field("tls", &self.tls.is_some())
            .field("open", &self.registry.open())
            .finish_non_exhaustive()
    }
}

/// Hands on the connections of a listener beside the gRPC port (the web
/// page's), so that shutdown drains, closes and waits for them with the
/// gRPC port's own.
#[derive(Debug, Clone)]
pub(crate) struct Hands {
    /// Where each connection's task is spawned.
    pub(crate) tasks: TaskTracker,
    /// Cancelled when connections should drain.
    pub(crate) draining: CancellationToken,
    /// Cancelled when connections should close at once.
    pub(crate) closing: CancellationToken,
}

/// A view of the server's connection counts; cheap to clone.
#[derive(Clone)]
pub(crate) struct ConnectionCounter(Arc<Shared>);

impl std::fmt::Debug for ConnectionCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ConnectionCounter").finish_non_exhaustive()
    }
}

impl ConnectionCounter {
    /// The counts now.
    pub(crate) fn counts(&self) -> ConnectionCounts {
        self.0.registry.counts()
    }
}

impl Connections {
    /// Connections served as `config` says, each call through `service`,
    /// at most `max_connections` at once; `closing` closes them all.
    pub(crate) fn new(
        config: &Config,
        service: CallService<Router>,
        max_connections: usize,
        closing: CancellationToken,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            shared: Arc::new(Shared {
                http2: http2_settings(config),
                service,
                tls: tls::acceptor(config)?,
                handshake_timeout: config.handshake_timeout,
                keepalive: Keepalive {
                    interval: config.keepalive_interval,
                    timeout: config.keepalive_timeout,
                },
                registry: Registry::new(max_connections),
                refusals: Arc::new(Semaphore::new(MAX_REFUSALS)),
                tasks: TaskTracker::new(),
                draining: CancellationToken::new(),
                closing,
                log: RateLimited::new(),
                workers: match config.threads {
                    Some(count) => Workers::start(count),
                    None => Workers::per_core(),
                }
                .context("cannot start the connection threads")?,
            }),
        })
    }

    /// A view of the connections' counts, for the metrics.
    pub(crate) fn counter(&self) -> ConnectionCounter {
        ConnectionCounter(Arc::clone(&self.shared))
    }

    /// Hands for a listener beside this one; see [`Hands`].
    pub(crate) fn hands(&self) -> Hands {
        Hands {
            tasks: self.shared.tasks.clone(),
            draining: self.shared.draining.clone(),
            closing: self.shared.closing.clone(),
        }
    }

    /// Whether connections are served over TLS.
    pub(crate) fn tls(&self) -> bool {
        self.shared.tls.is_some()
    }

    /// Accepts connections from `listener` forever, serving each in a task
    /// of its own. Dropping the future closes the listening socket.
    pub(crate) async fn accept(&self, listener: TcpListener) {
        loop {
            let tcp = match listener.accept().await {
                Ok((tcp, _)) => tcp,
                Err(err) => {
                    // EMFILE and friends persist until some connection
                    // closes; accepting again at once would spin a core.
                    self.shared.log.warn(format_args!(
                        "Cannot accept a connection ({err}); pausing before the next"
                    ));
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            };
            // Served, from here on, on a thread of its own; see `workers`.
            let worker = self.shared.workers.next();
            let tcp = match Workers::adopt(worker, tcp) {
                Ok(tcp) => tcp,
                Err(err) => {
                    self.shared.log.warn(format_args!(
                        "Cannot serve a connection on a connection thread ({err}); closed it"
                    ));
                    continue;
                }
            };
            let info = tcp.connect_info();
            let Some(entry) = self.shared.registry.admit() else {
                self.refuse(tcp, worker);
                continue;
            };
            // gRPC's small messages must not wait for Nagle's algorithm
            // (about 40 ms per call, measured).
            let _ = tcp.set_nodelay(true);
            let shared = Arc::clone(&self.shared);
            let serve = async move {
                let peer = info.remote_addr();
                let (closed, ended_early) =
                    connection::serve(Arc::clone(&shared), tcp, info, Arc::clone(&entry)).await;
                shared.registry.closed(&entry, &closed);
                let peer = peer.map_or_else(|| "an unknown peer".into(), |peer| peer.to_string());
                let early = match ended_early {
                    0 => String::new(),
                    1 => "; a call on it ended before its request arrived".into(),
                    n => format!("; {n} calls on it ended before their request arrived"),
                };
                match closed.abuse(shared.registry.max()) {
                    Some(why) => shared.log.info(format_args!(
                        "Closed the connection from {peer}: {why}{early}"
                    )),
                    None if ended_early > 0 => shared
                        .log
                        .info(format_args!("The connection from {peer} closed{early}")),
                    None => {}
                }
            };
            self.shared.tasks.spawn_on(serve, worker);
        }
    }

    /// Refuses a connection at the cap, saying why in an HTTP/2 GOAWAY,
    /// unless too many refusals are being written already.
    fn refuse(&self, mut tcp: tokio::net::TcpStream, worker: &tokio::runtime::Handle) {
        let max = self.shared.registry.max();
        self.shared.registry.refused();
        self.shared.log.info(format_args!(
            "Refused a connection: the server is at its limit of {max} connections"
        ));
        let Ok(permit) = Arc::clone(&self.shared.refusals).try_acquire_owned() else {
            return;
        };
        worker.spawn(async move {
            let _permit = permit;
            let goaway = refusal(max);
            // Written, then the client's own opening read and dropped until
            // it closes: closing with its bytes unread would reset the
            // connection, and the client might never read the reason.
            let refuse = async {
                tcp.write_all(&goaway).await?;
                tcp.shutdown().await?;
                let mut sink = [0; 1024];
                while tcp.read(&mut sink).await? > 0 {}
                Ok::<_, std::io::Error>(())
            };
            let _ = tokio::time::timeout(Duration::from_secs(1), refuse).await;
        });
    }

    /// Tells every connection to start no new calls (HTTP/2 GOAWAY), and
    /// to close once its calls are done.
    pub(crate) fn drain(&self) {
        self.shared.draining.cancel();
    }

    /// Closes every connection at once.
    pub(crate) fn close(&self) {
        self.shared.closing.cancel();
    }

    /// Waits until every connection has closed. Call it once no more are
    /// being accepted.
    pub(crate) async fn closed(&self) {
        self.shared.tasks.close();
        self.shared.tasks.wait().await;
    }

    /// Stops the connection threads, dropping what tasks they still have
    /// (calls whose connection has closed but that have not yet seen it),
    /// and waits for them; false if one did not stop in time. Call it once
    /// every connection has closed.
    pub(crate) async fn stop_threads(&self) -> bool {
        self.shared.workers.stop().await
    }
}

/// The bytes that refuse a connection: the server's SETTINGS (HTTP/2
/// requires them first), then GOAWAY with ENHANCE_YOUR_CALM and a reason.
fn refusal(max: usize) -> Vec<u8> {
    let reason = format!("the server is at its limit of {max} connections; try again later");
    let mut bytes = vec![0, 0, 0, 0x4, 0, 0, 0, 0, 0];
    let len = 8 + reason.len() as u32;
    bytes.extend_from_slice(&len.to_be_bytes()[1..]);
    bytes.extend_from_slice(&[0x7, 0, 0, 0, 0, 0]);
    bytes.extend_from_slice(&0u32.to_be_bytes()); // last stream id
    bytes.extend_from_slice(&0xbu32.to_be_bytes()); // ENHANCE_YOUR_CALM
    bytes.extend_from_slice(reason.as_bytes());
    bytes
}

/// The HTTP/2 settings for every connection.
fn http2_settings(config: &Config) -> h2::server::Builder {
    let mut builder = h2::server::Builder::new();
    builder
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_concurrent_streams(config.max_concurrent_streams)
        .max_send_buffer_size(if config.compress_responses {
            MAX_SEND_BUFFER_ENCODED
        } else {
            MAX_SEND_BUFFER
        })
        .max_header_list_size(MAX_HEADER_LIST)
        // hyper's limits on reset streams, which answer Rapid Reset.
        .max_local_error_reset_streams(Some(1024));
    builder
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_settings_then_a_goaway_that_says_why() {
        let bytes = refusal(7);
        assert_eq!(&bytes[..9], &[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        let goaway = &bytes[9..];
        let len = u32::from_be_bytes([0, goaway[0], goaway[1], goaway[2]]) as usize;
        assert_eq!(goaway[3], 0x7, "a GOAWAY frame");
        assert_eq!(goaway.len(), 9 + len);
        assert_eq!(&goaway[13..17], &[0, 0, 0, 0xb], "ENHANCE_YOUR_CALM");
        assert!(String::from_utf8_lossy(&goaway[17..]).contains("limit of 7 connections"));
    }
}
