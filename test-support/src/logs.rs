//! Capturing what the code under test logs.

use std::{
    io,
    sync::{Arc, Mutex},
};

use tracing::subscriber::DefaultGuard;
use tracing_subscriber::fmt::MakeWriter;

/// Collects formatted log lines in memory.
///
/// Installed with [`LogCapture::install`] as the current thread's default
/// subscriber, so use it with a current-thread runtime (the default for
/// `#[tokio::test]`), where the server's tasks run on the test's thread,
/// and install it before starting the server: the server's connection
/// threads log to the subscriber that was the default when it started.
#[derive(Debug, Clone, Default)]
pub struct LogCapture {
    buf: Arc<Mutex<Vec<u8>>>,
    /// Woken at each line written.
    written: Arc<tokio::sync::Notify>,
}

impl LogCapture {
    /// Starts capturing INFO and above until the guard is dropped.
    pub fn install() -> (Self, DefaultGuard) {
        Self::install_at(tracing::Level::INFO)
    }

    /// Starts capturing `level` and above until the guard is dropped.
    pub fn install_at(level: tracing::Level) -> (Self, DefaultGuard) {
        // tracing caches, per callsite, whether any subscriber wants it. A
        // test thread with no capture can cache "never" for a callsite just
        // as another thread's capture is being set up, and that capture
        // then misses lines. A global subscriber that always answers
        // "ask me each time" keeps every callsite asking the current
        // thread's subscriber.
        static ASK_EACH_TIME: std::sync::Once = std::sync::Once::new();
        ASK_EACH_TIME.call_once(|| {
            let _ = tracing::subscriber::set_global_default(AskEachTime);
        });
        let capture = Self::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(capture.clone())
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .with_max_level(level)
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        (capture, guard)
    }

    /// Everything logged so far.
    pub fn contents(&self) -> String {
        let buf = self.buf.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// The logged messages, one per line, without their level or the
    /// spans they were logged in (such as `call{method=.. peer=..}: `).
    pub fn messages(&self) -> Vec<String> {
        self.contents().lines().map(message_of).collect()
    }

    /// Waits until a message that `matches` is logged, and returns how
    /// many such messages there are then.
    ///
    /// # Panics
    /// If none is logged within [`PATIENCE`](crate::PATIENCE).
    pub async fn wait_for(&self, matches: impl Fn(&str) -> bool) -> usize {
        self.wait_for_lines(1, matches).await
    }

    /// Waits until `n` messages that `matches` are logged, and returns how
    /// many such messages there are then.
    ///
    /// # Panics
    /// If fewer are logged within [`PATIENCE`](crate::PATIENCE).
    pub async fn wait_for_lines(&self, n: usize, matches: impl Fn(&str) -> bool) -> usize {
        let waiting = async {
            loop {
                // Registered before looking, so a line written in between
                // still wakes us.
                let written = self.written.notified();
                let found = self.messages().iter().filter(|m| matches(m)).count();
                if found >= n {
                    return found;
                }
                written.await;
            }
        };
        match tokio::time::timeout(crate::PATIENCE, waiting).await {
            Ok(found) => found,
            Err(_) => panic!("not enough such lines were logged:\n{}", self.contents()),
        }
    }
}

/// The message of one formatted log line: without its level, and without
/// the `call{..}: ` span prefix of lines logged inside a call.
fn message_of(line: &str) -> String {
    let line = line.trim_start();
    let rest = line
        .split_once(' ')
        .map_or(line, |(_level, rest)| rest.trim_start());
    rest.strip_prefix("call{")
        .and_then(|fields| fields.split_once("}: "))
        .map_or(rest, |(_, message)| message)
        .to_owned()
}

impl io::Write for LogCapture {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut buf = self.buf.lock().unwrap_or_else(|e| e.into_inner());
        buf.extend_from_slice(data);
        drop(buf);
        self.written.notify_waiters();
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogCapture {
    type Writer = Self;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// A global subscriber that records nothing and keeps callsite interest
/// from being cached; see [`LogCapture::install`].
struct AskEachTime;

impl tracing::Subscriber for AskEachTime {
    fn register_callsite(
        &self,
        _: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }

    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        false
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, _: &tracing::Event<'_>) {}

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}
