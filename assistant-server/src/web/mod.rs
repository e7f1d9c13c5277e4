//! The story page, for browsers (`--web-addr`): `GET /` serves a page that
//! tells the story as the terminal client does, and the same listener
//! answers gRPC-Web for it (`TellStory` and `ListStories`), over HTTP/1.1
//! and HTTP/2. Browsers cannot speak gRPC itself; gRPC-Web is how they
//! stream from a gRPC service.
//!
//! - [`page`]: the page's files, built into the binary.
//! - [`service`]: what each request is answered with; calls go through
//!   the same call layer as on the gRPC port.
//! - [`watch`]: ending a call whose client stopped reading, at its
//!   deadline, at shutdown or to make room, as the gRPC port does.
//!
//! The listener has the gRPC port's bounds, where HTTP/1.1 has them too:
//! at most `--max-connections` connections of its own (past it, a new one
//! is closed at once; there is no eviction), `--handshake-timeout` for a
//! connection's first request and for each HTTP/1.1 request's headers, the
//! same HTTP/2 settings, and calls that count against the same
//! `--max-calls` and end at their deadline, at shutdown or to make room
//! even when their client does not read. Its connections drain and close
//! with the rest at shutdown. It speaks plain HTTP only.

mod page;
mod service;
mod watch;

use std::{
    net::SocketAddr,
    pin::pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::conn::auto,
    service::TowerToHyperService,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::{
    call::CallService, config::Config, ops::logging::RateLimited, services::Router,
    transport::Hands,
};

/// The largest HTTP/1.1 request head, and the most HTTP/1.1 bytes buffered
/// either way.
const MAX_HTTP1_BUFFER: usize = 64 * 1024;

/// How long to wait before accepting again after an accept error.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The web listener's connections. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Web {
    shared: Arc<Shared>,
}

struct Shared {
    http: auto::Builder<Tracked>,
    service: CallService<Router>,
    origins: Vec<String>,
    max_connections: usize,
    open: AtomicUsize,
    handshake_timeout: Duration,
    hands: Hands,
    log: RateLimited,
}

impl std::fmt::Debug for Web {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Web")
            .field("open", &self.shared.open.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Web {
    /// The web listener's connections, as `config` says, each call through
    /// `service`, tracked, drained and closed by `hands` with the gRPC
    /// port's.
    pub(crate) fn new(
        config: &Config,
        service: CallService<Router>,
        max_connections: usize,
        hands: Hands,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                http: http_settings(config, hands.tasks.clone()),
                service,
                origins: config.web_allow_origins.clone(),
                max_connections,
                open: AtomicUsize::new(0),
                handshake_timeout: config.handshake_timeout,
                hands,
                log: RateLimited::new(),
            }),
        }
    }

    /// Accepts connections from `listener` until dropped, serving each in
    /// a task of its own.
    pub(crate) async fn accept(&self, listener: &TcpListener) {
        loop {
            let tcp = match listener.accept().await {
                Ok((tcp, _)) => tcp,
                Err(err) => {
                    self.shared.log.warn(format_args!(
                        "Cannot accept a web connection ({err}); pausing before the next"
                    ));
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            };
            let max = self.shared.max_connections;
            if self.shared.open.fetch_add(1, Ordering::Relaxed) >= max {
                self.shared.open.fetch_sub(1, Ordering::Relaxed);
                self.shared.log.info(format_args!(
                    "Refused a web connection: the web listener is at its limit of {max} connections"
                ));
                continue;
            }
            let _ = tcp.set_nodelay(true);
            let shared = Arc::clone(&self.shared);
            self.shared.hands.tasks.spawn(async move {
                let info = tcp.connect_info();
                let peer = info.remote_addr();
                let timed_out = serve(&shared, tcp, info).await;
                shared.open.fetch_sub(1, Ordering::Relaxed);
                if timed_out {
                    let peer = peer
                        .map_or_else(|| "an unknown peer".into(), |p: SocketAddr| p.to_string());
                    shared.log.info(format_args!(
                        "Closed the web connection from {peer}: no request within {:?}",
                        shared.handshake_timeout
                    ));
                }
            });
        }
    }
}

/// Serves one connection until it closes or the server closes it; says
/// whether it was closed for sending no request in time.
async fn serve(shared: &Shared, tcp: TcpStream, info: TcpConnectInfo) -> bool {
    let first_request = CancellationToken::new();
    let site = service::site(
        shared.service.for_connection(info),
        &shared.origins,
        first_request.clone(),
    );
    let mut connection = pin!(
        shared
            .http
            .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(site))
    );
    let mut handshake = pin!(tokio::time::sleep(shared.handshake_timeout));
    let (draining, closing) = (&shared.hands.draining, &shared.hands.closing);
    let (mut waiting, mut drained) = (true, false);
    loop {
        tokio::select! {
            biased;
            // Dropping the connection closes it, and ends its calls.
            () = closing.cancelled() => return false,
            () = draining.cancelled(), if !drained => {
                drained = true;
                connection.as_mut().graceful_shutdown();
            }
            () = &mut handshake, if waiting => {
                if !first_request.is_cancelled() {
                    return true;
                }
                waiting = false;
            }
            _ = connection.as_mut() => return false,
        }
    }
}

/// Runs hyper's HTTP/2 stream tasks where shutdown waits for them: with
/// the connections' own, so that no call's last line is cut off.
#[derive(Debug, Clone)]
struct Tracked(TaskTracker);

impl<F> hyper::rt::Executor<F> for Tracked
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        self.0.spawn(future);
    }
}

/// HTTP/1.1 and HTTP/2 as the gRPC port has them, where both have them.
fn http_settings(config: &Config, tasks: TaskTracker) -> auto::Builder<Tracked> {
    let mut builder = auto::Builder::new(Tracked(tasks));
    builder
        .http1()
        .timer(TokioTimer::new())
        // Each request's head, on a kept-alive connection too.
        .header_read_timeout(config.handshake_timeout)
        .max_buf_size(MAX_HTTP1_BUFFER);
    let http2 = crate::transport::LIMITS;
    let mut h2 = builder.http2();
    h2.timer(TokioTimer::new())
        .initial_stream_window_size(http2.stream_window)
        .initial_connection_window_size(http2.connection_window)
        .max_concurrent_streams(config.max_concurrent_streams)
        .max_send_buf_size(http2.send_buffer)
        .max_header_list_size(http2.max_header_list)
        .max_local_error_reset_streams(1024);
    if !config.keepalive_interval.is_zero() {
        h2.keep_alive_interval(config.keepalive_interval)
            .keep_alive_timeout(config.keepalive_timeout);
    }
    builder
}
