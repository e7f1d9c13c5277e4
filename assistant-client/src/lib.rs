//! The assistant gRPC client as a library.
//!
//! The binary is a thin shell over [`run`]. Each call lives in its own
//! module, and takes its output writer and an interrupt future as
//! arguments, so tests can drive it in-process against a real server and
//! inspect exactly what it printed.

pub mod bench;
pub mod call;
pub mod chat;
pub mod cli;
pub mod connect;
pub mod hello;
pub mod story;
pub mod typing;

use std::future::Future;

use tokio::io::AsyncWrite;

pub use assistant_proto::codes::code_name;

pub use crate::{
    call::{CallOptions, Ending},
    cli::{Cli, Command},
    story::StoryRequest,
};

/// Why the client could not do what it was asked. Each one displays as a
/// single line for the user.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `--server` is not an address we can use.
    #[error("invalid --server `{server}`: {reason}")]
    BadAddress {
        /// What the user gave.
        server: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Nothing answered at the server's address.
    #[error(
        "cannot reach the server at {server}: {reason}. Is it running? Start it with `assistant-server`."
    )]
    Unreachable {
        /// The address tried.
        server: String,
        /// The underlying cause, such as "Connection refused".
        reason: String,
    },
    /// The TLS handshake failed: the server's certificate is not trusted,
    /// is for another host, or has expired; or the server refused ours.
    #[error(
        "TLS with {server} failed: {reason}. Check the server's certificate and --ca-cert (--cert, --key)."
    )]
    Tls {
        /// The address tried.
        server: String,
        /// What TLS said.
        reason: String,
    },
    /// A file the flags name cannot be used.
    #[error("{0}")]
    Setup(String),
    /// Writing to stdout failed for a reason other than it closing.
    #[error("cannot write the story: {0}")]
    Output(#[source] std::io::Error),
}

/// Runs the command `cli` describes, writing its output to `out`, until it
/// ends or `interrupt` completes.
pub async fn run<W: AsyncWrite + Unpin>(
    cli: Cli,
    out: W,
    interrupt: impl Future<Output = ()>,
) -> Result<Ending, ClientError> {
    let options = cli.global.options();
    let tls = cli.global.tls();
    // Connects when a call needs it: the bench opens its own connections.
    let channel = async || connect::connect(&cli.global.server, &tls, &options).await;
    match cli.call() {
        Command::Story(args) => {
            story::tell_story(channel().await?, &args.request(), &options, out, interrupt).await
        }
        Command::List => story::list_stories(channel().await?, &options, out, interrupt).await,
        Command::Bench(args) => {
            bench::run(&cli.global.server, &tls, &options, &args, out, interrupt).await
        }
        Command::Health { service } => {
            hello::check_health(channel().await?, service, &options, out, interrupt).await
        }
        Command::Hello { name } => {
            hello::say_hello(channel().await?, name, &options, out, interrupt).await
        }
        Command::ChatStream { text } => {
            chat::chat_stream(channel().await?, text, &options, out, interrupt).await
        }
        Command::Collect { texts } => {
            chat::collect(
                channel().await?,
                tokio_stream::iter(texts),
                &options,
                out,
                interrupt,
            )
            .await
        }
        Command::Chat { texts, send_delay } => {
            chat::chat(
                channel().await?,
                chat::paced(texts, send_delay),
                &options,
                out,
                interrupt,
            )
            .await
        }
    }
}
