//! The assistant gRPC server as a library.
//!
//! The binary is a thin shell over [`run`]; tests use [`Server`] directly
//! to bind an ephemeral port and drive a real server in-process:
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use assistant_server::{Config, Server};
//!
//! let config = Config { addr: "127.0.0.1:0".parse()?, ..Config::default() };
//! let server = Server::bind(config).await?;
//! let addr = server.local_addr();
//! // ... point a client at `addr` ...
//! server.serve(std::future::pending()).await?;
//! # Ok(()) }
//! ```
//!
//! # What it serves
//! On one port: `assistant.AssistantService`, `hello_world.Greeter` and
//! `messages.ChatService`; the standard health service
//! `grpc.health.v1.Health`, SERVING for `""` and for each service; and
//! server reflection (`grpc.reflection.v1` and `v1alpha`) describing all of
//! them, so tools such as grpcurl need no `.proto` files.
//!
//! # Shutdown
//! [`Server::serve`] runs until its `shutdown` future completes. Then:
//! 1. health turns NOT_SERVING, the server stops accepting connections and
//!    tells clients (HTTP/2 GOAWAY) to start no new calls, and health
//!    watches and reflection streams end;
//! 2. calls in flight get `--shutdown-grace` to finish;
//! 3. calls still running are ended with UNAVAILABLE `server shutting
//!    down`, after the bytes they already sent;
//! 4. connections still open, such as those whose client stopped reading,
//!    are closed;
//! 5. it logs how many calls finished and how many it ended, and returns.
//!
//! tonic's own graceful shutdown would wait for every open stream with no
//! limit; each step above is bounded.

pub mod assistant;
pub mod batching;
pub mod calls;
pub mod chat;
pub mod config;
pub mod conn;
pub mod greeter;
pub mod library;
pub mod log_format;
pub mod middleware;
pub mod shutdown;
pub mod story;
#[cfg(feature = "test-util")]
pub mod test_util;
pub mod tls;
pub mod validate;

use std::{
    future::Future,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use anyhow::Context;
use assistant_proto::{
    assistant::assistant_service_server::AssistantServiceServer,
    hello_world::greeter_server::GreeterServer, messages::chat_service_server::ChatServiceServer,
};
use hyper::server::conn::http2;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_stream::StreamExt;
use tonic::{
    codec::CompressionEncoding,
    server::NamedService,
    transport::server::{Connected, TcpIncoming},
};
use tonic_health::ServingStatus;
use tracing::{debug, info, warn};

pub use crate::{
    assistant::Assistant,
    calls::{CallContext, Calls},
    chat::Chat,
    config::{Config, Finish, LogFormat},
    greeter::Greeting,
    library::Library,
    story::Story,
};
use crate::{
    batching::Batching,
    conn::{Incoming, Killer},
    middleware::{CallService, Endings},
    validate::MAX_REQUEST_BYTES,
};

/// A generated service that accepts gzip and zstd requests, and answers in
/// whichever of them the client accepts. (The generated servers share no
/// trait for this.)
macro_rules! compressible {
    ($service:expr) => {
        $service
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd)
            .send_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Zstd)
    };
}

/// How long shutdown waits for ended calls to flush their last bytes and
/// for connections to close by themselves, before closing them.
pub const SHUTDOWN_FLUSH: Duration = Duration::from_secs(1);

/// A server bound to its address, ready to serve.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    config: Config,
    library: Library,
    calls: Calls,
    killer: Killer,
}

impl Server {
    /// Loads the story and binds the listening socket.
    ///
    /// Fails, naming the cause, if the story file cannot be read or the
    /// address cannot be bound.
    pub async fn bind(config: Config) -> anyhow::Result<Self> {
        let library = match (&config.story, &config.stories_dir) {
            (Some(path), _) => Library::One(Story::load(path)?),
            (None, Some(dir)) => Library::dir(dir)?,
            (None, None) => Library::One(Story::alice()),
        };
        let listener = listen(config.addr).await?;
        Ok(Self {
            listener,
            config,
            library,
            calls: Calls::default(),
            killer: Killer::default(),
        })
    }

    /// The address the server listens on; with port 0, the port the system
    /// picked.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound TCP listener has a local address")
    }

    /// The count of application calls in flight.
    pub fn calls(&self) -> Calls {
        self.calls.clone()
    }

    /// Closes every connection at once, as a crash would (but without
    /// ending the process): for tests of what clients do when a server
    /// dies.
    pub fn killer(&self) -> Killer {
        self.killer.clone()
    }

    /// Serves until `shutdown` completes, then shuts down as the
    /// [crate docs](crate#shutdown) describe.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Self {
            listener,
            config,
            library,
            calls,
            killer,
        } = self;
        let port = listener.local_addr()?.port();
        let endings = Endings::default();

        let (health, health_service) = tonic_health::server::health_reporter();
        let services = [
            AssistantServiceServer::<Assistant>::NAME,
            GreeterServer::<Greeting>::NAME,
            ChatServiceServer::<Chat>::NAME,
        ];
        for service in services {
            health
                .set_service_status(service, ServingStatus::Serving)
                .await;
        }

        let routes = tonic::service::Routes::new(health_service)
            .add_service(reflection_v1()?)
            .add_service(reflection_v1alpha()?)
            .add_service(compressible!(AssistantServiceServer::new(Assistant::new(
                library, &config
            ))))
            .add_service(compressible!(GreeterServer::new(Greeting)))
            .add_service(compressible!(ChatServiceServer::new(Chat::new(&config))))
            .prepare();
        let service = CallService::new(
            routes,
            calls.clone(),
            config.max_calls,
            MAX_REQUEST_BYTES,
            endings.clone(),
        );
        let incoming = Incoming::new(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            killer.clone(),
            config.handshake_timeout,
        );
        let tls = tls::acceptor(&config)?;
        let graceful = GracefulShutdown::new();
        let connections = Connections {
            http2: http2(&config),
            service,
            tls: tls.clone(),
            handshake_timeout: config.handshake_timeout,
        };
        let mut accepting = Box::pin(accept(incoming, connections, &graceful));
        info!("Server started on port {port}");
        if tls.is_some() {
            let clients = if config.client_ca.is_some() {
                "required"
            } else {
                "not required"
            };
            info!("Serving TLS; client certificates {clients}");
        }

        tokio::select! {
            () = &mut accepting => unreachable!("the listener never runs dry"),
            () = shutdown => {}
        }

        // 1. Refuse new work, and let health watches and reflection go.
        let in_flight = calls.active();
        info!(
            calls_in_flight = in_flight,
            grace_s = config.shutdown_grace.as_secs_f64(),
            "Shutting down: accepting no new calls"
        );
        health
            .set_service_status("", ServingStatus::NotServing)
            .await;
        for service in services {
            health
                .set_service_status(service, ServingStatus::NotServing)
                .await;
        }
        // Dropping the accept loop closes the listening socket; the
        // connections hear GOAWAY, and close once their calls are done.
        drop(accepting);
        let mut closed = std::pin::pin!(graceful.shutdown());
        endings.infrastructure.cancel();

        // 2. and 3. The grace period, then end what is left.
        if tokio::time::timeout(config.shutdown_grace, calls.idle())
            .await
            .is_err()
        {
            info!(
                calls_in_flight = calls.active(),
                "Grace period over: ending the calls still running"
            );
            endings.application.cancel();
            let _ = tokio::time::timeout(SHUTDOWN_FLUSH, calls.idle()).await;
        }

        // 4. Close what is still open, such as connections stuck on a
        // client that stopped reading.
        if tokio::time::timeout(SHUTDOWN_FLUSH, &mut closed)
            .await
            .is_err()
        {
            warn!("Closing connections that are still open");
            endings.application.cancel();
            killer.kill();
            let _ = tokio::time::timeout(SHUTDOWN_FLUSH, &mut closed).await;
        }

        // 5. Account for every call that was in flight.
        let ended = calls.ended_by_shutdown();
        let finished = (in_flight as u64).saturating_sub(ended);
        info!(
            finished,
            ended, "Server stopped: {finished} calls finished, {ended} ended by shutdown"
        );
        Ok(())
    }
}

/// The HTTP/2 settings for every connection.
fn http2(config: &Config) -> http2::Builder<TokioExecutor> {
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(config.max_concurrent_streams)
        .keep_alive_interval(config.keepalive_interval)
        .keep_alive_timeout(config.keepalive_timeout);
    builder
}

/// How each accepted connection is served.
struct Connections {
    http2: http2::Builder<TokioExecutor>,
    service: CallService<tonic::service::Routes>,
    tls: Option<TlsAcceptor>,
    handshake_timeout: Duration,
}

/// Accepts connections forever, serving each in a task of its own that
/// `graceful` can wind down. The TLS handshake, if any, runs in that task
/// too, so a slow one holds up no other connection.
async fn accept(incoming: Incoming, connections: Connections, graceful: &GracefulShutdown) {
    let mut incoming = std::pin::pin!(incoming);
    while let Some(conn) = incoming.next().await {
        // Accept errors are logged, and paced, by `Incoming`.
        let Ok(conn) = conn else { continue };
        let info = conn.connect_info();
        let service = TowerToHyperService::new(connections.service.for_connection(info.clone()));
        let http2 = connections.http2.clone();
        let watcher = graceful.watcher();
        let Some(tls) = connections.tls.clone() else {
            tokio::spawn(serve_connection(
                watcher,
                http2,
                TokioIo::new(Batching::new(conn)),
                service,
            ));
            continue;
        };
        let handshake_timeout = connections.handshake_timeout;
        tokio::spawn(async move {
            match tokio::time::timeout(handshake_timeout, tls.accept(conn)).await {
                Ok(Ok(stream)) => {
                    let io = TokioIo::new(Batching::new(stream));
                    serve_connection(watcher, http2, io, service).await
                }
                Ok(Err(err)) => {
                    info!(peer = ?info.remote_addr(), error = %err, "TLS handshake failed")
                }
                Err(_) => info!(peer = ?info.remote_addr(), "TLS handshake timed out"),
            }
        });
    }
}

/// Serves one connection's HTTP/2 until it closes.
async fn serve_connection<I>(
    watcher: hyper_util::server::graceful::Watcher,
    http2: http2::Builder<TokioExecutor>,
    io: I,
    service: TowerToHyperService<CallService<tonic::service::Routes>>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    if let Err(err) = watcher.watch(http2.serve_connection(io, service)).await {
        debug!(error = %err, "Connection ended with an error");
    }
}

/// gRPC server reflection, `grpc.reflection.v1`, describing every service
/// served, the health service included.
fn reflection_v1() -> anyhow::Result<
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(assistant_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("cannot build the reflection service")
}

/// The same as [`reflection_v1`], for tools that still speak `v1alpha`.
fn reflection_v1alpha() -> anyhow::Result<
    tonic_reflection::server::v1alpha::ServerReflectionServer<
        impl tonic_reflection::server::v1alpha::ServerReflection,
    >,
> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(assistant_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .context("cannot build the reflection service")
}

/// Binds `addr`. On a host without IPv6, the unspecified IPv6 address
/// `[::]` (the default) falls back to its IPv4 twin `0.0.0.0`.
async fn listen(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    match TcpListener::bind(addr).await {
        Ok(listener) => Ok(listener),
        Err(err) if addr.ip() == Ipv6Addr::UNSPECIFIED && may_work_on_ipv4(&err) => {
            let v4 = SocketAddr::from((Ipv4Addr::UNSPECIFIED, addr.port()));
            warn!("IPv6 is not available ({err}); listening on {v4} instead");
            TcpListener::bind(v4)
                .await
                .with_context(|| format!("cannot listen on {v4}"))
        }
        Err(err) => Err(err).with_context(|| format!("cannot listen on {addr}")),
    }
}

/// Whether a failed bind of `[::]` may work on IPv4. A port in use or a
/// privileged port would fail the same way there, and the first error
/// explains it better.
fn may_work_on_ipv4(err: &std::io::Error) -> bool {
    !matches!(
        err.kind(),
        std::io::ErrorKind::AddrInUse | std::io::ErrorKind::PermissionDenied
    )
}

/// Runs a server with `config` until Ctrl-C or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    Server::bind(config).await?.serve(shutdown::signal()).await
}
