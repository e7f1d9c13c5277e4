//! From sockets to HTTP/2: the accept loop, each connection's task, TLS,
//! and write batching.
//!
//! Each accepted connection is served in a task of its own ([`connection`]),
//! tracked so that shutdown can wait for them all. The server holds two
//! hands on every connection: one asks it to drain (HTTP/2 GOAWAY: start
//! no new calls, close once the calls in flight are done), the other closes
//! it at once, by dropping the connection's future in its task.
//!
//! Accept errors, such as running out of file descriptors, are logged and
//! retried after a pause instead of spinning.

mod batching;
mod connection;
mod handshake;
mod listen;
mod tls;

use std::{sync::Arc, time::Duration};

use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tonic::{service::Routes, transport::server::Connected};
use tracing::warn;

pub(crate) use self::listen::listen;
use crate::{call::CallService, config::Config};

/// How long to wait before accepting again after an accept error.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The server's connections: how each is served, and a hand on all of
/// them. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Connections {
    shared: Arc<Shared>,
}

struct Shared {
    http2: http2::Builder<TokioExecutor>,
    service: CallService<Routes>,
    tls: Option<TlsAcceptor>,
    handshake_timeout: Duration,
    /// Every connection's task.
    tasks: TaskTracker,
    /// Cancelled when the connections should drain.
    draining: CancellationToken,
    /// Cancelled when the connections should close at once.
    closing: CancellationToken,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections")
            .field("tls", &self.tls.is_some())
            .field("open", &self.tasks.len())
            .finish_non_exhaustive()
    }
}

impl Connections {
    /// Connections served as `config` says, each call through `service`;
    /// `closing` closes them all at once.
    pub(crate) fn new(
        config: &Config,
        service: CallService<Routes>,
        closing: CancellationToken,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            shared: Arc::new(Shared {
                http2: http2_settings(config),
                service,
                tls: tls::acceptor(config)?,
                handshake_timeout: config.handshake_timeout,
                tasks: TaskTracker::new(),
                draining: CancellationToken::new(),
                closing,
            }),
        })
    }

    /// Whether connections are served over TLS.
    pub(crate) fn tls(&self) -> bool {
        self.shared.tls.is_some()
    }

    /// Accepts connections from `listener` forever, serving each in a task
    /// of its own. Dropping the future closes the listening socket.
    pub(crate) async fn accept(&self, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let info = stream.connect_info();
                    // gRPC's small messages must not wait for Nagle's
                    // algorithm (about 40 ms per call, measured).
                    let _ = stream.set_nodelay(true);
                    let shared = Arc::clone(&self.shared);
                    self.shared
                        .tasks
                        .spawn(connection::serve(shared, stream, info));
                }
                Err(err) => {
                    // EMFILE and friends persist until some connection
                    // closes; accepting again at once would spin a core.
                    warn!(error = %err, "Cannot accept a connection; pausing before the next");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            }
        }
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
}

/// The HTTP/2 settings for every connection.
fn http2_settings(config: &Config) -> http2::Builder<TokioExecutor> {
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(config.max_concurrent_streams)
        .keep_alive_interval(config.keepalive_interval)
        .keep_alive_timeout(config.keepalive_timeout);
    builder
}
