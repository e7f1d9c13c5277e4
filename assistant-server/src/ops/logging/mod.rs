//! The server's logs: where they go, and how they read.
//!
//! Logs go to stderr, written by a thread of their own ([`init_logging`]), as
//! text lines ([`call_lines`]) or JSON objects.

mod call_lines;
mod entered;
mod fields;
mod rate;
#[cfg(test)]
mod sinks;
mod staged;
mod timestamp;
mod writer;

use std::{
    io::IsTerminal,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Duration,
};

use tracing::warn;
use tracing_subscriber::{EnvFilter, layer::SubscriberExt as _, util::SubscriberInitExt as _};

use self::{
    call_lines::CallLines,
    fields::LogFields,
    writer::{LogWriter, WriterGuard, log_writer},
};
pub(crate) use self::{
    rate::RateLimited,
    staged::{Staging, hand_over as hand_over_staged_lines},
};
use crate::config::LogFormat;

/// The writer of the process's logs, once they are set up: logging is
/// process-wide, and so is this.
static WRITER: std::sync::OnceLock<LogWriter> = std::sync::OnceLock::new();

/// How many log lines were dropped because stderr was not taking them: 0
/// if [`init_logging`] did not set up the logs.
pub(crate) fn dropped_lines() -> u64 {
    WRITER.get().map_or(0, LogWriter::dropped_lines)
}

/// Stages the lines the current thread logs, while the guard is held, and
/// hands them to the log writer a few kilobytes at a time: for a thread
/// that logs many lines, and calls [`hand_over_staged_lines`] before it
/// waits for work (see [`staged`]). `None` if [`init_logging`] did not set
/// up the logs, as under a test's own subscriber.
pub(crate) fn stage_lines() -> Option<Staging> {
    WRITER.get().map(LogWriter::stage_here)
}

/// How often the count of dropped lines is looked at.
const DROP_CHECK: Duration = Duration::from_secs(1);

/// Flushes the logs when dropped (waiting a second at most), after saying
/// how many lines were dropped, if any; hold it until the server has
/// stopped.
#[derive(Debug)]
pub struct LogGuard {
    stop: Arc<AtomicBool>,
    /// The thread that watches the count of dropped lines, and gives it
    /// back when it stops; or the count itself, had the thread not started.
    monitor: Option<Result<thread::JoinHandle<Dropped>, Dropped>>,
    _writer: WriterGuard,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let dropped = match self.monitor.take() {
            Some(Ok(monitor)) => {
                monitor.thread().unpark();
                monitor.join().ok()
            }
            Some(Err(dropped)) => Some(dropped),
            None => None,
        };
        if let Some(mut dropped) = dropped {
            dropped.report_any();
        }
    }
}

/// The count of lines dropped because stderr was not taking them, and how
/// many of them have been reported.
#[derive(Debug)]
struct Dropped {
    counter: LogWriter,
    reported: u64,
}

impl Dropped {
    /// Reports lines dropped since the last report, if any, unless stderr
    /// is failing: the report would be one more line lost.
    fn report_any(&mut self) {
        if self.counter.failing() {
            return;
        }
        let dropped = self.counter.dropped_lines();
        if dropped > self.reported {
            warn!(
                dropped = dropped - self.reported,
                "{} log lines were dropped: stderr was not taking them, and logging never \
                 holds up serving",
                dropped - self.reported
            );
            self.reported = dropped;
        }
    }

    /// Watches the count until `stop`, and reports what was dropped once
    /// stderr takes lines again (no line dropped for a whole check).
    fn watch(mut self, stop: &AtomicBool) -> Self {
        let mut seen = self.counter.dropped_lines();
        while !stop.load(Ordering::Relaxed) {
            thread::park_timeout(DROP_CHECK);
            let now = self.counter.dropped_lines();
            if now == seen {
                self.report_any();
            }
            seen = now;
        }
        self
    }
}

/// The most log text waiting for stderr, besides the batch being written:
/// about 100,000 story lines.
const LOG_BUFFER: usize = 8 * 1024 * 1024;

/// Sends the process's logs to stderr in `format`, filtered by `RUST_LOG`
/// (default `info`).
///
/// The story logs a line per chunk: writing each with its own system call
/// on the calling thread would cost most of the server's throughput. A
/// writer thread writes them in batches instead: everything logged since
/// its last write, in one call. If it falls behind by 8 MiB of lines,
/// because stderr is not taking them, lines are dropped and counted rather
/// than hold up the server; see the [module docs](self).
///
/// # Errors
/// If the writer thread cannot be started.
pub fn init_logging(format: LogFormat) -> std::io::Result<LogGuard> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, writing) = log_writer(std::io::stderr(), LOG_BUFFER)?;
    let counter = writer.clone();
    let _ = WRITER.set(counter.clone());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        // A call's context once, then its number.
        LogFormat::Text => {
            let (lines, entered_spans) = CallLines::with_entered_spans();
            logs.with_ansi(std::io::stderr().is_terminal())
                .event_format(lines)
                .fmt_fields(LogFields)
                .finish()
                .with(entered_spans)
                .init();
        }
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
    let stop = Arc::new(AtomicBool::new(false));
    let watching = Arc::clone(&stop);
    let dropped = Dropped {
        counter: counter.clone(),
        reported: 0,
    };
    // Without a thread to watch, the count is still reported at exit.
    let monitor = Some(
        thread::Builder::new()
            .name("log-monitor".into())
            .spawn(move || dropped.watch(&watching))
            .map_err(|_| Dropped {
                counter,
                reported: 0,
            }),
    );
    Ok(LogGuard {
        stop,
        monitor,
        _writer: writing,
    })
}

#[cfg(test)]
mod tests {
    use std::{io::Write, sync::Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::{
        sinks::{Broken, Stuck},
        *,
    };

    #[test]
    fn a_stuck_sink_drops_and_counts_lines_instead_of_blocking_then_says_so() {
        let sink = Stuck::default();
        // Room for four lines: the writer thread takes what is there and
        // blocks on it, four more fit, the rest are dropped, and nothing
        // here waits.
        let (writer, _writing) = log_writer(sink.clone(), 32).unwrap();
        for line in 0..50 {
            writer
                .make_writer()
                .write_all(format!("line {line:02}\n").as_bytes())
                .unwrap();
        }
        let mut dropped = Dropped {
            counter: writer.clone(),
            reported: 0,
        };
        assert!(dropped.counter.dropped_lines() >= 42);
        sink.open();

        let said = said_by(|| dropped.report_any());
        let count = dropped.counter.dropped_lines();
        assert!(
            said.contains(&format!("{count} log lines were dropped")),
            "{said}"
        );
        // Reported once: nothing new to say the next time.
        assert_eq!(dropped.reported, count);
    }

    #[test]
    fn nothing_is_said_of_dropped_lines_while_stderr_is_failing() {
        let (writer, writing) = log_writer(Broken, 1 << 20).unwrap();
        writeln!(writer.make_writer(), "lost").unwrap();
        drop(writing);
        let mut dropped = Dropped {
            counter: writer.clone(),
            reported: 0,
        };
        assert_eq!(dropped.counter.dropped_lines(), 1);
        let said = said_by(|| dropped.report_any());
        assert!(said.is_empty(), "a report no one can read: {said}");
        assert_eq!(dropped.reported, 0, "reported once stderr works again");
    }

    /// What `log` logs in tracing's default format.
    fn said_by(log: impl FnOnce()) -> String {
        let said = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::fmt()
            .with_writer({
                let said = Arc::clone(&said);
                move || Said(Arc::clone(&said))
            })
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        String::from_utf8(said.lock().unwrap().clone()).unwrap()
    }

    /// Collects what a subscriber writes.
    struct Said(Arc<Mutex<Vec<u8>>>);

    impl Write for Said {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
