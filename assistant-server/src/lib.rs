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
//! # Shutdown
//! [`Server::serve`] runs until its `shutdown` future completes. Then the
//! server stops accepting connections and every call in flight ends with
//! UNAVAILABLE `server shutting down` after the bytes it already sent.
//! Calls whose client has stopped reading cannot be told, so the server
//! waits at most [`FORCE_EXIT_AFTER`] for them before returning anyway.

pub mod assistant;
pub mod calls;
pub mod chat;
pub mod config;
pub mod greeter;
pub mod shutdown;
pub mod story;
#[cfg(feature = "test-util")]
pub mod test_util;

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
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;
use tracing::{info, warn};

pub use crate::{
    assistant::Assistant,
    calls::Calls,
    chat::Chat,
    config::{Config, Finish},
    greeter::Greeting,
    story::Story,
};

/// How long [`Server::serve`] waits, once shutdown begins, for connections
/// whose calls cannot end because their client stopped reading.
pub const FORCE_EXIT_AFTER: Duration = Duration::from_secs(1);

/// A server bound to its address, ready to serve.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    assistant: Assistant,
    chat: Chat,
    calls: Calls,
    shutdown: CancellationToken,
}

impl Server {
    /// Loads the story and binds the listening socket.
    ///
    /// Fails, naming the cause, if the story file cannot be read or the
    /// address cannot be bound.
    pub async fn bind(config: Config) -> anyhow::Result<Self> {
        let story = match &config.story {
            Some(path) => Story::load(path)?,
            None => Story::alice(),
        };
        let listener = listen(config.addr).await?;
        let calls = Calls::default();
        let shutdown = CancellationToken::new();
        let assistant = Assistant::new(story, &config, calls.clone(), shutdown.clone());
        let chat = Chat::new(&config, calls.clone(), shutdown.clone());
        Ok(Self {
            listener,
            assistant,
            chat,
            calls,
            shutdown,
        })
    }

    /// The address the server listens on; with port 0, the port the system
    /// picked.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound TCP listener has a local address")
    }

    /// The count of calls in flight.
    pub fn calls(&self) -> Calls {
        self.calls.clone()
    }

    /// Serves until `shutdown` completes, then shuts down as the
    /// [crate docs](crate#shutdown) describe.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Self {
            listener,
            assistant,
            chat,
            calls,
            shutdown: token,
        } = self;
        info!("Server started on port {}", listener.local_addr()?.port());

        let signal = {
            let token = token.clone();
            async move {
                shutdown.await;
                info!(active_calls = calls.active(), "Shutting down");
                token.cancel();
            }
        };
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let server = tonic::transport::Server::builder()
            .add_service(AssistantServiceServer::new(assistant))
            .add_service(GreeterServer::new(Greeting))
            .add_service(ChatServiceServer::new(chat))
            .serve_with_incoming_shutdown(incoming, signal);

        tokio::select! {
            result = server => result.context("server failed")?,
            () = async {
                token.cancelled().await;
                tokio::time::sleep(FORCE_EXIT_AFTER).await;
            } => warn!("Connections still open after {FORCE_EXIT_AFTER:?}; closing them"),
        }
        info!("Server stopped");
        Ok(())
    }
}

/// Binds `addr`. On a host without IPv6, the unspecified IPv6 address
/// `[::]` (the default) falls back to its IPv4 twin `0.0.0.0`.
async fn listen(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    match TcpListener::bind(addr).await {
        Ok(listener) => Ok(listener),
        Err(err) if addr.ip() == Ipv6Addr::UNSPECIFIED && is_no_ipv6(&err) => {
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
fn is_no_ipv6(err: &std::io::Error) -> bool {
    !matches!(
        err.kind(),
        std::io::ErrorKind::AddrInUse | std::io::ErrorKind::PermissionDenied
    )
}

/// Runs a server with `config` until Ctrl-C or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    Server::bind(config).await?.serve(shutdown::signal()).await
}
