//! The assistant gRPC client as a library.
//!
//! The binary is a thin shell over [`run`]. Each subcommand's call lives in
//! its own module under [`commands`], and takes its output writer and an
//! interrupt future as arguments, so tests can drive it in-process against
//! a real server and inspect exactly what it printed.
//!
//! The modules depend only downward: [`cli`] gathers the flags and picks a
//! command; each command makes its call through `call` (deadlines, Ctrl-C,
//! how a call ended), on a channel from [`connect`]; the story types its
//! text with `typing`.

pub mod cli;
pub mod commands;
pub mod connect;
pub mod terminal;

mod call;
mod error;
mod flow;
mod reassembly;
mod typing;

use std::future::Future;

use tokio::io::AsyncWrite;

pub use crate::{
    call::{CallArgs, Compression, Ending},
    cli::{Cli, Command},
    error::ClientError,
    flow::FlowArgs,
};

/// Runs the command `cli` describes, writing its output to `out`, until it
/// ends or `interrupt` completes.
pub async fn run<W: AsyncWrite + Unpin>(
    cli: Cli,
    out: W,
    interrupt: impl Future<Output = ()>,
) -> Result<Ending, ClientError> {
    use commands::{bench, chat, health, hello, list, story};

    let Cli {
        connect, options, ..
    } = &cli;
    // Connects when a call needs it: the bench opens its own connections.
    let connection = async || connect::connect(connect, options.timeout).await;
    match cli.call() {
        Command::Story(args) => {
            story::tell_story(connection().await?, &args, options, out, interrupt).await
        }
        Command::List => list::list_stories(connection().await?, options, out, interrupt).await,
        Command::Bench(args) => bench::run(connect, options, &args, out, interrupt).await,
        Command::Health { service } => {
            health::check_health(connection().await?, service, options, out, interrupt).await
        }
        Command::Hello { name } => {
            hello::say_hello(connection().await?, name, options, out, interrupt).await
        }
        Command::ChatStream { text } => {
            chat::chat_stream(connection().await?, text, options, out, interrupt).await
        }
        Command::Collect { texts, method } => {
            let texts = tokio_stream::iter(texts);
            chat::collect(connection().await?, &method, texts, options, out, interrupt).await
        }
        Command::Chat { texts, send_delay } => {
            let texts = chat::paced(texts, send_delay);
            chat::chat(connection().await?, texts, options, out, interrupt).await
        }
    }
}
