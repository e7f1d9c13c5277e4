//! `assistant-server`: parses flags, sets up logging, and runs the server.

use std::{io::IsTerminal, process::ExitCode};

use assistant_server::{
    Config, LogFormat,
    log_format::{CallLines, LogFields},
};
use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // The story logs a line per chunk: writing each with its own syscall on
    // the calling thread would cost most of the server's throughput. A
    // writer thread batches the lines instead (it flushes whenever it runs
    // out of lines to write), and blocks callers rather than drop lines if
    // it ever falls behind. The guard flushes what is left at exit.
    let (writer, _flush_at_exit) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("log-writer")
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match config.log_format {
        // A call's context once, then its number: see `log_format`.
        LogFormat::Text => logs
            .with_ansi(std::io::stderr().is_terminal())
            .event_format(CallLines)
            .fmt_fields(LogFields)
            .init(),
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }

    match assistant_server::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}
