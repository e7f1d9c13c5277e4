//! Turning `--server` into a connected gRPC channel, plaintext or TLS, with
//! errors a user can act on.

use std::{path::PathBuf, time::Duration};

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::{CallOptions, ClientError, call::WireBytes};

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

/// The TLS files the client was given.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    /// The CA to trust, instead of the system's roots.
    pub ca_cert: Option<PathBuf>,
    /// A client certificate, for mutual TLS.
    pub cert: Option<PathBuf>,
    /// The client certificate's private key.
    pub key: Option<PathBuf>,
}

impl TlsFiles {
    fn any(&self) -> bool {
        self.ca_cert.is_some() || self.cert.is_some()
    }

    /// The TLS settings for a server called `host`.
    fn config(&self, host: &str) -> Result<ClientTlsConfig, ClientError> {
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
}

/// Parses `--server`: a URL such as `http://127.0.0.1:50051` or
/// `https://assistant.example:443`, or a bare `host:port` as the tutorial
/// writes it, taken as plaintext HTTP/2.
pub fn endpoint(server: &str, tls: &TlsFiles) -> Result<Endpoint, ClientError> {
    let bad = |reason: String| ClientError::BadAddress {
        server: server.to_owned(),
        reason,
    };
    let mut endpoint = Endpoint::from_shared(url(server)).map_err(|e| bad(e.to_string()))?;
    let host = match endpoint.uri().host() {
        Some(host) if !host.is_empty() => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        _ => return Err(bad("it has no host".into())),
    };
    match endpoint.uri().scheme_str() {
        Some("http") if tls.any() => {
            return Err(bad(
                "TLS flags (--ca-cert, --cert) need an https:// server".into()
            ));
        }
        Some("http") => {}
        Some("https") => {
            endpoint = endpoint
                .tls_config(tls.config(&host)?)
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

/// `--server` as a URL: a bare `host:port` gets `http://` in front.
fn url(server: &str) -> String {
    if server.contains("://") {
        server.to_owned()
    } else {
        format!("http://{server}")
    }
}

/// Connects to `--server`, failing with one line that says what to do.
/// A `timeout` shorter than [`CONNECT_TIMEOUT`] bounds the wait too.
///
/// Bytes received on the connection are counted in `options.wire`.
pub async fn connect(
    server: &str,
    tls: &TlsFiles,
    options: &CallOptions,
) -> Result<Channel, ClientError> {
    let limit = options
        .timeout
        .map_or(CONNECT_TIMEOUT, |timeout| timeout.min(CONNECT_TIMEOUT));
    let endpoint = endpoint(server, tls)?.connect_timeout(limit);
    let wire = options.wire.clone();
    let connector = tower::service_fn(move |uri: http::Uri| {
        let wire = wire.clone();
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
    endpoint
        .connect_with_connector(connector)
        .await
        .map_err(|err| {
            let server = url(server);
            match tls_error(&err) {
                Some(reason) => ClientError::Tls { server, reason },
                None => ClientError::Unreachable {
                    server,
                    reason: root_cause(&err),
                },
            }
        })
}

/// A TCP stream that counts the bytes it reads.
struct Counted {
    stream: tokio::net::TcpStream,
    wire: WireBytes,
}

impl tokio::io::AsyncRead for Counted {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.stream).poll_read(cx, buf);
        self.wire.add(buf.filled().len() - before);
        polled
    }
}

impl tokio::io::AsyncWrite for Counted {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_shutdown(cx)
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
pub fn tls_error(err: &(dyn std::error::Error + 'static)) -> Option<String> {
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
        let bare = endpoint("localhost:50051", &TlsFiles::default()).unwrap();
        assert_eq!(bare.uri().to_string(), "http://localhost:50051/");
        let full = endpoint("http://127.0.0.1:50051", &TlsFiles::default()).unwrap();
        assert_eq!(full.uri().port_u16(), Some(50051));
    }

    #[test]
    fn unusable_addresses_are_rejected_clearly() {
        let with_ca = TlsFiles {
            ca_cert: Some("ca.pem".into()),
            ..TlsFiles::default()
        };
        for (bad, tls) in [
            ("", TlsFiles::default()),
            ("ftp://host:1", TlsFiles::default()),
            ("http://", TlsFiles::default()),
            ("exa mple:1", TlsFiles::default()),
            ("http://localhost:1", with_ca),
        ] {
            let err = endpoint(bad, &tls).unwrap_err();
            assert!(
                matches!(err, ClientError::BadAddress { .. }),
                "{bad:?}: {err}"
            );
        }
    }
}
