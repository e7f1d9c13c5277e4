//! The server's logs: where they go, and how they read.
//!
//! Logs go to stderr, written by a thread of their own ([`init_logging`]), as
//! text lines ([`call_lines`]) or JSON objects.

mod call_lines;
mod fields;
mod rate;
mod timestamp;

use std::io::IsTerminal;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

pub(crate) use self::rate::RateLimited;
use self::{call_lines::CallLines, fields::LogFields};
use crate::config::LogFormat;

/// Flushes the logs when dropped; hold it until the server has stopped.
#[derive(Debug)]
pub struct LogGuard {
    _worker: WorkerGuard,
}

/// Sends the process's logs to stderr in `format`, filtered by `RUST_LOG`
/// (default `info`).
///
/// The story logs a line per chunk: writing each with its own system call
/// on the calling thread would cost most of the server's throughput. A
/// writer thread batches the lines instead (it flushes whenever it runs out
/// of lines to write), and blocks callers rather than drop lines if it ever
/// falls behind.
pub fn init_logging(format: LogFormat) -> LogGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, worker) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("log-writer")
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        // A call's context once, then its number.
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
    LogGuard { _worker: worker }
}
