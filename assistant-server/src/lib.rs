//! The assistant gRPC server as a library.
//!
//! The binary is a thin shell over [`run`]; tests and embedders use
//! [`Server`] directly, to bind an ephemeral port and drive a real server
//! in-process:
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
//! With `--web-addr`, on a second listener: a page that tells the story in
//! a browser, and gRPC-Web (`TellStory` and `ListStories`) for it, over
//! HTTP/1.1 and HTTP/2.
//!
//! # Layout
//! - `services/`: the gRPC services, one file each. Where an RPC goes.
//! - `library/`: the stories the server can tell.
//! - `call/`: what runs around every call: its span, limits, deadline,
//!   record and the count of calls in flight.
//! - `transport/`: the accept loop, each connection's task, TLS and write
//!   batching.
//! - `ops/`: the shutdown sequence and its signals, the logs and the
//!   metrics.
//! - `web/`: the web listener: the story page and gRPC-Web. The page's
//!   source is in `assistant-server/web/`.
//! - `config.rs`: the flags; `server.rs`: how the pieces are put together.
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
//! 5. it logs how many calls it served, and how many of them it ended,
//!    and returns.
//!
//! tonic's own graceful shutdown would wait for every open stream with no
//! limit; each step above is bounded.

mod call;
mod config;
mod library;
mod ops;
mod server;
mod services;
mod transport;
mod web;
mod wire;

pub use crate::{
    call::Calls,
    config::{Config, Finish, LogFormat},
    ops::logging::{LogGuard, init_logging},
    server::{Handle, Server, run},
};

/// For tests that hold a future's size down: the size of what a function
/// returns, without calling it.
#[cfg(test)]
mod sizes {
    /// The size of what `f`, of three arguments, returns.
    pub(crate) fn returned_size_3<A, B, C, R>(_: impl FnOnce(A, B, C) -> R) -> usize {
        std::mem::size_of::<R>()
    }

    /// The size of what `f`, of four arguments, returns.
    pub(crate) fn returned_size_4<A, B, C, D, R>(_: impl FnOnce(A, B, C, D) -> R) -> usize {
        std::mem::size_of::<R>()
    }
}
