//! The server's settings, parsed from command-line flags.
//!
//! The defaults reproduce the tutorial's server exactly, so `Config::default()`
//! and a bare `assistant-server` behave the same.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Parser, ValueEnum};

/// The largest `--chunk-size`: well under gRPC's usual 4 MiB message limit,
/// so every client can decode every chunk.
pub(crate) const MAX_CHUNK_SIZE: usize = 1024 * 1024;

/// Settings for one server process.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "assistant-server",
    version,
    about = "Serves the assistant gRPC service: greets each caller, then streams a story back in chunks.",
    after_help = "Durations are seconds, written as decimal numbers: 0.05, 3, or 0 for no wait.\n\
                  Logs go to stderr; set RUST_LOG (for example RUST_LOG=debug) to change how much is logged."
)]
pub struct Config {
    /// Address to listen on. `[::]` accepts IPv4 and IPv6 on most systems.
    #[arg(long, default_value = "[::]:50051", value_name = "HOST:PORT")]
    pub addr: SocketAddr,

    /// Serve Prometheus metrics at http://HOST:PORT/metrics, on a listener
    /// of their own. Without this flag there is no metrics listener.
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_addr: Option<SocketAddr>,

    /// Serve the story page at http://HOST:PORT/, and gRPC-Web (TellStory
    /// and ListStories) for it, on a listener of its own, over HTTP/1.1 and
    /// HTTP/2. Without this flag there is no web listener. It serves
    /// plain HTTP even with --tls-cert, and cannot be combined with
    /// --client-ca, which it would bypass.
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "client_ca")]
    pub web_addr: Option<SocketAddr>,

    /// Let pages from ORIGIN (such as https://example.com) call the web
    /// listener's gRPC-Web (CORS); repeat it for more, or give `*` for
    /// any. Without it, only the server's own page may call it.
    #[arg(long = "web-allow-origin", value_name = "ORIGIN", requires = "web_addr", value_parser = origin)]
    pub web_allow_origins: Vec<String>,

    /// Serve this text file instead of the built-in `alice.txt`. It is read
    /// once, at start.
    #[arg(long, value_name = "PATH", conflicts_with = "stories_dir")]
    pub story: Option<PathBuf>,

    /// Serve every `*.txt` file in this directory, by file name; files
    /// added later are served without a restart. Without it (or --story),
    /// the built-in `alice.txt` is the library.
    #[arg(long, value_name = "DIR")]
    pub stories_dir: Option<PathBuf>,

    /// The largest story served, in bytes; a bigger file is refused with
    /// FAILED_PRECONDITION.
    #[arg(long, allow_negative_numbers = true, default_value_t = 64 * 1024 * 1024, value_name = "BYTES")]
    pub max_story_size: u64,

    /// Bytes of stories from --stories-dir kept in memory between calls;
    /// past it, the story used longest ago is let go (and read again when
    /// asked for).
    #[arg(long, allow_negative_numbers = true, default_value_t = 256 * 1024 * 1024, value_name = "BYTES")]
    pub story_cache: u64,

    /// Pause after the greeting, standing in for story generation.
    #[arg(long, allow_negative_numbers = true, default_value = "3", value_name = "SECONDS", value_parser = assistant_proto::seconds::parse)]
    pub think_time: Duration,

    /// Bytes of story per streamed message.
    #[arg(long, allow_negative_numbers = true, default_value_t = 1024, value_name = "BYTES",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=MAX_CHUNK_SIZE as u64))]
    pub chunk_size: usize,

    /// Pause after each story chunk. The tutorial suggests 3 to watch a
    /// client wait for the server.
    #[arg(long, allow_negative_numbers = true, default_value = "0.05", value_name = "SECONDS", value_parser = assistant_proto::seconds::parse)]
    pub chunk_delay: Duration,

    /// `ChatStream` (server streaming): pause after each message.
    #[arg(long, allow_negative_numbers = true, default_value = "1", value_name = "SECONDS", value_parser = assistant_proto::seconds::parse)]
    pub chat_stream_delay: Duration,

    /// `Chat` (bidirectional): pause after each reply.
    #[arg(long, allow_negative_numbers = true, default_value = "1", value_name = "SECONDS", value_parser = assistant_proto::seconds::parse)]
    pub chat_reply_delay: Duration,

    /// On SIGINT or SIGTERM, how long calls in flight may take to finish
    /// before the server ends them with UNAVAILABLE.
    #[arg(long, allow_negative_numbers = true, default_value = "10", value_name = "SECONDS", value_parser = assistant_proto::seconds::parse)]
    pub shutdown_grace: Duration,

    /// Calls at most, at once, across all connections; past it calls are
    /// refused with RESOURCE_EXHAUSTED. Health checks and reflection are
    /// exempt.
    #[arg(long, allow_negative_numbers = true, default_value_t = 16_384, value_name = "CALLS",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_calls: usize,

    /// Connections at most at once. Past it, a new connection takes the
    /// place of the oldest one still in its handshake, or is refused with
    /// an HTTP/2 GOAWAY saying why. By default: 10000, or fewer if the
    /// limit on open files is lower.
    #[arg(long, allow_negative_numbers = true, value_name = "CONNECTIONS",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_connections: Option<usize>,

    /// Calls at most, at once, on one connection: its share of
    /// --max-calls. Past it, the connection's calls are refused with
    /// RESOURCE_EXHAUSTED. Health checks and reflection are exempt.
    #[arg(long, allow_negative_numbers = true, default_value_t = 1024, value_name = "CALLS",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_calls_per_connection: usize,

    /// How long a call whose request is one message (all but CollectStream
    /// and Chat) may take for that message to arrive.
    #[arg(long, allow_negative_numbers = true, default_value = "5", value_name = "SECONDS", value_parser = assistant_proto::seconds::parse)]
    pub request_timeout: Duration,

    /// Threads that serve the gRPC port's connections, each connection
    /// with all its calls on one of them. By default, one per core. On a
    /// machine whose cores are shared with the load (a load generator on
    /// the same machine, say), fewer threads can serve more calls: see
    /// docs/BENCHMARKS.md. At most 512: the threads share 512 threads for
    /// blocking work (story file reads) between them.
    #[arg(long, allow_negative_numbers = true, value_name = "THREADS",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=512))]
    pub threads: Option<usize>,

    /// HTTP/2 streams (calls) at most on one connection at once; clients
    /// wait for a free one, and a stream past it is refused.
    #[arg(long, allow_negative_numbers = true, default_value_t = 1024, value_name = "STREAMS",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent_streams: u32,

    /// Messages at most in one client stream (`CollectStream`, `Chat`).
    #[arg(
        long,
        allow_negative_numbers = true,
        default_value_t = 10_000,
        value_name = "MESSAGES"
    )]
    pub max_stream_messages: u64,

    /// Bytes of text at most in one client stream (`CollectStream`, `Chat`).
    #[arg(long, allow_negative_numbers = true, default_value_t = 1024 * 1024, value_name = "BYTES")]
    pub max_stream_bytes: u64,

    /// Ping each connection this often (HTTP/2 keepalive) to find dead
    /// peers.
    #[arg(long, allow_negative_numbers = true, default_value = "60", value_name = "SECONDS", value_parser = assistant_proto::seconds::parse)]
    pub keepalive_interval: Duration,

    /// Close a connection whose peer does not answer a keepalive ping in
    /// this long.
    #[arg(long, allow_negative_numbers = true, default_value = "20", value_name = "SECONDS", value_parser = assistant_proto::seconds::parse)]
    pub keepalive_timeout: Duration,

    /// Close a connection that has not finished its handshake (TLS, the
    /// HTTP/2 preface and its first SETTINGS frame) this long after it
    /// opens.
    #[arg(long, allow_negative_numbers = true, default_value = "10", value_name = "SECONDS", value_parser = assistant_proto::seconds::parse)]
    pub handshake_timeout: Duration,

    /// Serve TLS with this PEM certificate (chain); needs --tls-key.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Require client certificates signed by this PEM CA (mutual TLS);
    /// needs --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub client_ca: Option<PathBuf>,

    /// Compress responses (gzip or zstd, whichever the client accepts).
    /// Off by default: grpcio and grpc-js ask for gzip on every call, and
    /// compressing a story costs far more CPU than sending it. Compressed
    /// requests are accepted either way.
    #[arg(long)]
    pub compress_responses: bool,

    /// How logs are written to stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// How a finished story ends the call: `cancel` (status CANCELLED, as
    /// in the tutorial) or `ok`.
    #[arg(long, value_enum, default_value_t = Finish::Cancel)]
    pub finish: Finish,
}

impl Default for Config {
    fn default() -> Self {
        // The flags' defaults are the one source of truth.
        Self::parse_from(["assistant-server"])
    }
}

/// An origin as browsers send it: `*`, or a scheme and host with an
/// optional port, and nothing after.
fn origin(text: &str) -> Result<String, String> {
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"));
    let valid = text == "*"
        || rest.is_some_and(|host| {
            !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
        });
    if valid {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "`{text}` is not an origin: write it as a browser sends it, such as https://example.com or http://localhost:3000, or `*`"
        ))
    }
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, with the call's span fields.
    Json,
}

/// How the server ends a call once the whole story has been sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Finish {
    /// Status CANCELLED with the message `story finished`, as the tutorial's
    /// server does.
    Cancel,
    /// Status OK.
    Ok,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_tutorial() {
        let config = Config::default();
        assert_eq!(config.addr, "[::]:50051".parse().unwrap());
        assert_eq!(config.story, None);
        assert_eq!(config.stories_dir, None);
        assert_eq!(config.think_time, Duration::from_secs(3));
        assert_eq!(config.chunk_size, 1024);
        assert_eq!(config.chunk_delay, Duration::from_millis(50));
        assert_eq!(config.finish, Finish::Cancel);
        assert_eq!(config.chat_stream_delay, Duration::from_secs(1));
        assert_eq!(config.chat_reply_delay, Duration::from_secs(1));
        assert_eq!(config.shutdown_grace, Duration::from_secs(10));
        assert_eq!(config.max_stream_messages, 10_000);
        assert_eq!(config.max_stream_bytes, 1024 * 1024);
        assert_eq!(config.log_format, LogFormat::Text);
        assert!(!config.compress_responses);
        assert_eq!(config.web_addr, None);
        assert!(config.web_allow_origins.is_empty());
        assert_eq!(config.threads, None, "one per core");
    }

    #[test]
    fn web_origins_parse() {
        let config = Config::try_parse_from([
            "assistant-server",
            "--web-addr",
            "127.0.0.1:8080",
            "--web-allow-origin",
            "https://example.com",
            "--web-allow-origin",
            "http://[::1]:3000",
        ])
        .unwrap();
        assert_eq!(config.web_addr, Some("127.0.0.1:8080".parse().unwrap()));
        assert_eq!(
            config.web_allow_origins,
            ["https://example.com", "http://[::1]:3000"]
        );
    }

    #[test]
    fn flags_parse() {
        let config = Config::try_parse_from([
            "assistant-server",
            "--addr",
            "127.0.0.1:0",
            "--think-time",
            "0",
            "--chunk-delay",
            "3",
            "--chunk-size",
            "7",
            "--finish",
            "ok",
            "--threads",
            "3",
        ])
        .unwrap();
        assert_eq!(config.think_time, Duration::ZERO);
        assert_eq!(config.chunk_delay, Duration::from_secs(3));
        assert_eq!(config.chunk_size, 7);
        assert_eq!(config.finish, Finish::Ok);
        assert_eq!(config.threads, Some(3));
    }

    #[test]
    fn bad_flags_are_rejected() {
        for args in [
            &["--chunk-size", "0"][..],
            &["--chunk-size", "2000000"],
            &["--chunk-delay", "-1"],
            &["--think-time", "soon"],
            &["--addr", "nowhere"],
            &["--finish", "maybe"],
            &["--max-calls", "0"],
            &["--threads", "0"],
            &["--threads", "513"],
            &["--max-concurrent-streams", "0"],
            &["--log-format", "xml"],
            &["--story", "a.txt", "--stories-dir", "d"],
            &["--tls-cert", "c.pem"],
            &["--tls-key", "k.pem"],
            &["--client-ca", "ca.pem"],
            &["--web-allow-origin", "https://example.com"],
            &[
                "--web-addr",
                "127.0.0.1:0",
                "--web-allow-origin",
                "example.com",
            ],
            &[
                "--web-addr",
                "127.0.0.1:0",
                "--web-allow-origin",
                "https://example.com/",
            ],
            &[
                "--web-addr",
                "127.0.0.1:0",
                "--web-allow-origin",
                "https://",
            ],
        ] {
            let argv = std::iter::once("assistant-server").chain(args.iter().copied());
            assert!(
                Config::try_parse_from(argv).is_err(),
                "{args:?} should be rejected"
            );
        }
    }
}
