//! Turning `--server` into a connected gRPC channel, with errors a user can
//! act on.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::ClientError;

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

/// Parses `--server`: a URL such as `http://127.0.0.1:50051`, or a bare
/// `host:port` as the tutorial writes it, taken as plaintext HTTP/2.
pub fn endpoint(server: &str) -> Result<Endpoint, ClientError> {
    let url = url(server);
    let bad = |reason: String| ClientError::BadAddress {
        server: server.to_owned(),
        reason,
    };
    let endpoint = Endpoint::from_shared(url).map_err(|e| bad(e.to_string()))?;
    match endpoint.uri().scheme_str() {
        Some("http") => {}
        Some(other) => {
            return Err(bad(format!(
                "the scheme `{other}` is not supported; use http://"
            )));
        }
        None => return Err(bad("it has no scheme".into())),
    }
    if endpoint.uri().host().is_none_or(str::is_empty) {
        return Err(bad("it has no host".into()));
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
pub async fn connect(server: &str, timeout: Option<Duration>) -> Result<Channel, ClientError> {
    let limit = timeout.map_or(CONNECT_TIMEOUT, |timeout| timeout.min(CONNECT_TIMEOUT));
    let endpoint = endpoint(server)?.connect_timeout(limit);
    endpoint
        .connect()
        .await
        .map_err(|err| ClientError::Unreachable {
            server: url(server),
            reason: root_cause(&err),
        })
}

/// The innermost cause, which is the one that names what went wrong
/// ("Connection refused"), where the outer ones say "transport error".
fn root_cause(err: &tonic::transport::Error) -> String {
    let mut cause: &dyn std::error::Error = err;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_host_and_port_means_plaintext() {
        let bare = endpoint("localhost:50051").unwrap();
        assert_eq!(bare.uri().to_string(), "http://localhost:50051/");
        let full = endpoint("http://127.0.0.1:50051").unwrap();
        assert_eq!(full.uri().port_u16(), Some(50051));
    }

    #[test]
    fn unusable_addresses_are_rejected_clearly() {
        for bad in ["", "ftp://host:1", "http://", "exa mple:1"] {
            let err = endpoint(bad).unwrap_err();
            assert!(
                matches!(err, ClientError::BadAddress { .. }),
                "{bad:?}: {err}"
            );
        }
    }
}
