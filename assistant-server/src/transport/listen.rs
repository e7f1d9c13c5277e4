//! Binding the listening socket.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use anyhow::Context;
use tokio::net::TcpListener;
use tracing::warn;

/// Binds `addr`. On a host without IPv6, the unspecified IPv6 address
/// `[::]` (the default) falls back to its IPv4 twin `0.0.0.0`.
pub(crate) async fn listen(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    match TcpListener::bind(addr).await {
        Ok(listener) => Ok(listener),
        Err(err) if addr.ip() == Ipv6Addr::UNSPECIFIED && may_work_on_ipv4(&err) => {
            let v4 = SocketAddr::from((Ipv4Addr::UNSPECIFIED, addr.port()));
            warn!("IPv6 is not available ({err}); listening on {v4} instead");
            TcpListener::bind(v4)
                .await
                .with_context(|| format!("cannot listen on {v4}"))
        }
        Err(err) => Err(err).with_context(|| format!("cannot listen on {addr}")),
    }
}

/// Whether a failed bind of `[::]` may work on IPv4. A port in use or a
/// privileged port would fail the same way there, and the first error
/// explains it better.
fn may_work_on_ipv4(err: &std::io::Error) -> bool {
    !matches!(
        err.kind(),
        std::io::ErrorKind::AddrInUse | std::io::ErrorKind::PermissionDenied
    )
}
