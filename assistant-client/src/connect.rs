//! Turning `--server` into a connected gRPC channel, plaintext or TLS, with
//! errors a user can act on.

use std::{
    path::PathBuf,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::ClientError;

/// The server the client calls by default: the tutorial's.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:50051";

/// How long to wait for the TCP connection before giving up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The HTTP/2 flow-control window for each call, in bytes.
///
/// This is how much the server may send ahead of what the client has read.
/// hyper's default is 2 MiB, which would swallow a whole story at once and
/// hide backpressure; 64 KiB is HTTP/2's own default and where gRPC's other
/// implementations start, so a slow reader slows the server down after
/// about 64 chunks.
pub const STREAM_WINDOW: u32 = 64 * 1024;

/// Where the server is, and how to trust it: flags every subcommand takes.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectArgs {
    /// The server: a URL such as http://127.0.0.1:50051 (https:// for
    /// TLS), or a bare host:port.
    #[arg(
        long,
        global = true,
        default_value = DEFAULT_SERVER,
        value_name = "URL"
    )]
    pub server: String,

    /// For an https:// server: trust only this PEM CA, instead of the
    /// system's roots.
    #[arg(long, global = true, value_name = "PEM")]
    pub ca_cert: Option<PathBuf>,

    /// For mutual TLS: this PEM client certificate; needs --key.
    #[arg(long, global = true, value_name = "PEM", requires = "key")]
    pub cert: Option<PathBuf>,

    /// The PEM private key of --cert.
    #[arg(long, global = true, value_name = "PEM", requires = "cert")]
    pub key: Option<PathBuf>,
}

impl Default for ConnectArgs {
    fn default() -> Self {
        Self {
            server: DEFAULT_SERVER.into(),
            ca_cert: None,
            cert: None,
            key: None,
        }
    }
}

impl ConnectArgs {
    /// The flags for `server`, with no TLS files.
    pub fn to(server: impl Into<String>) -> Self {
        Self {
            server: server.into(),
            ..Self::default()
        }
    }

    fn any_tls(&self) -> bool {
        self.ca_cert.is_some() || self.cert.is_some()
    }

    /// The TLS settings for a server called `host`.
    fn tls_config(&self, host: &str) -> Result<ClientTlsConfig, ClientError> {
        let read = |path: &PathBuf| {
            std::fs::read(path)
                .map_err(|err| ClientError::Setup(format!("cannot read {}: {err}", path.display())))
        };
        let mut config = ClientTlsConfig::new().domain_name(host);
        config = match &self.ca_cert {
            Some(ca) => config.ca_certificate(Certificate::from_pem(read(ca)?)),
            None => config.with_native_roots(),
        };
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        Ok(config)
    }

    /// `--server` as a URL: a bare `host:port` gets `http://` in front.
    fn url(&self) -> String {
        if self.server.contains("://") {
            self.server.clone()
        } else {
            format!("http://{}", self.server)
        }
    }

    /// Parses `--server`: a URL such as `http://127.0.0.1:50051` or
    /// `https://assistant.example:443`, or a bare `host:port` as the
    /// tutorial writes it, taken as plaintext HTTP/2.
    pub fn endpoint(&self) -> Result<Endpoint, ClientError> {
        let bad = |reason: String| ClientError::BadAddress {
            server: self.server.clone(),
            reason,
        };
        let mut endpoint = Endpoint::from_shared(self.url()).map_err(|e| bad(e.to_string()))?;
        let host = match endpoint.uri().host() {
            Some(host) if !host.is_empty() => host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            _ => return Err(bad("it has no host".into())),
        };
        match endpoint.uri().scheme_str() {
            Some("http") if self.any_tls() => {
                return Err(bad(
                    "TLS flags (--ca-cert, --cert) need an https:// server".into()
                ));
            }
            Some("http") => {}
            Some("https") => {
                endpoint = endpoint
                    .tls_config(self.tls_config(&host)?)
                    .map_err(|e| bad(e.to_string()))?;
            }
            Some(other) => {
                return Err(bad(format!(
                    "the scheme `{other}` is not supported; use http:// or https://"
                )));
            }
            None => return Err(bad("it has no scheme".into())),
        }
        Ok(endpoint
            .connect_timeout(CONNECT_TIMEOUT)
            .initial_stream_window_size(STREAM_WINDOW)
            .tcp_nodelay(true))
    }
}

/// A connected channel, and the count of bytes it has received.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The channel calls are made on.
    pub channel: Channel,
    /// Bytes received on the connection so far.
    pub wire: WireBytes,
}

/// A count of the bytes a connection has received, TLS and HTTP/2 framing
/// included. Cloning it shares the count.
#[derive(Debug, Clone, Default)]
pub struct WireBytes(Arc<AtomicU64>);

impl WireBytes {
    /// Bytes received so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn add(&self, bytes: usize) {
        self.0.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// Connects to the server `args` name, failing with one line that says
/// what to do. A `timeout` shorter than [`CONNECT_TIMEOUT`] bounds the wait
/// too.
pub async fn connect(
    args: &ConnectArgs,
    timeout: Option<Duration>,
) -> Result<Connection, ClientError> {
    let limit = timeout.map_or(CONNECT_TIMEOUT, |timeout| timeout.min(CONNECT_TIMEOUT));
    let endpoint = args.endpoint()?.connect_timeout(limit);
    let wire = WireBytes::default();
    let counted = wire.clone();
    let connector = tower::service_fn(move |uri: http::Uri| {
        let wire = counted.clone();
        async move {
            let host = uri
                .host()
                .unwrap_or_default()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri
                .port_u16()
                .unwrap_or(if uri.scheme_str() == Some("https") {
                    443
                } else {
                    80
                });
            let stream = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            stream.set_nodelay(true)?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(Counted { stream, wire }))
        }
    });
    let channel = endpoint
        .connect_with_connector(connector)
        .await
        .map_err(|err| {
            let server = args.url();
            match tls_error(&err) {
                Some(reason) => ClientError::Tls { server, reason },
                None => ClientError::Unreachable {
                    server,
                    reason: root_cause(&err),
                },
            }
        })?;
    Ok(Connection { channel, wire })
}

/// A TCP stream that counts the bytes it reads.
struct Counted {
    stream: tokio::net::TcpStream,
    wire: WireBytes,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        self.wire.add(buf.filled().len() - before);
        polled
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The innermost cause, which is the one that names what went wrong
/// ("Connection refused"), where the outer ones say "transport error".
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}

/// The TLS failure behind `err`, if it is one: a certificate that is not
/// trusted, is for another host, or has expired.
pub(crate) fn tls_error(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause = Some(err);
    while let Some(err) = cause {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if let Some(tls) = io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            {
                return Some(tls.to_string());
            }
            // Once a connection is up, h2 keeps only the kind and text of
            // an I/O error, so a TLS alert that arrives then (under TLS 1.3,
            // a refused client certificate) is known by rustls's text alone.
            let text = io.to_string();
            if io.kind() == std::io::ErrorKind::InvalidData
                && text.starts_with("received fatal alert")
            {
                return Some(text);
            }
        }
        cause = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_host_and_port_means_plaintext() {
        let bare = ConnectArgs::to("localhost:50051").endpoint().unwrap();
        assert_eq!(bare.uri().to_string(), "http://localhost:50051/");
        let full = ConnectArgs::to("http://127.0.0.1:50051")
            .endpoint()
            .unwrap();
        assert_eq!(full.uri().port_u16(), Some(50051));
    }

    #[test]
    fn unusable_addresses_are_rejected_clearly() {
        let with_ca = ConnectArgs {
            ca_cert: Some("ca.pem".into()),
            ..ConnectArgs::to("http://localhost:1")
        };
        for args in [
            ConnectArgs::to(""),
            ConnectArgs::to("ftp://host:1"),
            ConnectArgs::to("http://"),
            ConnectArgs::to("exa mple:1"),
            with_ca,
        ] {
            let err = args.endpoint().unwrap_err();
            assert!(
                matches!(err, ClientError::BadAddress { .. }),
                "{:?}: {err}",
                args.server
            );
        }
    }
}
