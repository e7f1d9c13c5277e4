//! Helpers for tests in this workspace: capturing what the server logs.

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
/// `#[tokio::test]`), where the server's tasks run on the test's thread.
#[derive(Debug, Clone, Default)]
pub struct LogCapture {
    buf: Arc<Mutex<Vec<u8>>>,
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

/// A server running in the background on an ephemeral loopback port.
#[derive(Debug)]
pub struct TestServer {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// Its count of calls in flight.
    pub calls: crate::Calls,
    killer: crate::conn::Killer,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestServer {
    /// Binds `127.0.0.1:0` (whatever `config.addr` says) and serves
    /// `config` in a background task. The port is bound when this returns,
    /// so clients may connect at once.
    pub async fn start(config: crate::Config) -> anyhow::Result<Self> {
        Self::start_at(std::net::SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    /// Like [`TestServer::start`], on `addr`: to restart a server where an
    /// earlier one was, so its clients can come back.
    pub async fn start_at(
        addr: std::net::SocketAddr,
        config: crate::Config,
    ) -> anyhow::Result<Self> {
        let config = crate::Config { addr, ..config };
        let server = crate::Server::bind(config).await?;
        let addr = server.local_addr();
        let calls = server.calls();
        let killer = server.killer();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(async {
            let _ = stopped.await;
        }));
        Ok(Self {
            addr,
            calls,
            killer,
            stop: Some(stop),
            task,
        })
    }

    /// The server's URL for `--server`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Begins shutdown, as a signal would, without waiting for it.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Waits for the server to stop (after [`TestServer::begin_shutdown`]).
    pub async fn stopped(&mut self) -> anyhow::Result<()> {
        (&mut self.task).await?
    }

    /// Begins shutdown and waits for the server to stop.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.begin_shutdown();
        self.stopped().await
    }

    /// Closes every connection at once, as if the server had crashed.
    pub fn kill_connections(&self) {
        self.killer.kill();
    }
}
/// The greeting the tests' usual caller, Peter S from SUSTech, expects,
/// written out rather than computed by the code under test.
pub const GREETING: &str = "Hi Peter S from SUSTech! Here's your story:\n\n";

/// The ending every story call is expected to close with.
pub const ENDING: &str = "\nThat's it! Hope you like the story~\n";

/// Everything a whole `alice.txt` call is expected to carry for Peter S
/// from SUSTech: greeting, story and ending, byte for byte.
pub fn whole_story() -> Vec<u8> {
    [
        GREETING.as_bytes(),
        crate::Story::alice().text(),
        ENDING.as_bytes(),
    ]
    .concat()
}

/// The tutorials' settings without their pauses: no think-time and no
/// delays between messages, so a whole story takes milliseconds.
pub fn fast_config() -> crate::Config {
    crate::Config {
        think_time: std::time::Duration::ZERO,
        chunk_delay: std::time::Duration::ZERO,
        chat_stream_delay: std::time::Duration::ZERO,
        chat_reply_delay: std::time::Duration::ZERO,
        ..crate::Config::default()
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

/// A directory under the system's temporary directory that removes itself.
#[derive(Debug)]
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    /// A new, empty directory; `tag` shows which test made it.
    pub fn new(tag: &str) -> Self {
        use std::hash::{BuildHasher, RandomState};
        let unique = RandomState::new().hash_one(std::time::SystemTime::now());
        let path =
            std::env::temp_dir().join(format!("assistant-{tag}-{}-{unique:x}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    /// Writes `text` to the file `name` in the directory, and returns its path.
    pub fn write(&self, name: &str, text: impl AsRef<[u8]>) -> std::path::PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
