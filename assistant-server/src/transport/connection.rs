//! Serving one connection, from its TLS handshake to its last frame.
//!
//! The connection's HTTP/2 future is driven here, in the connection's own
//! task, beside the server's two signals: draining sends GOAWAY and lets
//! the calls in flight finish, closing drops the future, which closes the
//! socket and ends every call on it, as tonic's forceful shutdown does.
//! Dropping is what reaches a call parked on HTTP/2 flow control, whose
//! client has stopped reading: nothing in such a call is polled, so
//! nothing in it could notice a signal.

use std::{pin::pin, sync::Arc};

use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
};
use tonic::transport::server::TcpConnectInfo;
use tracing::{debug, info};

use super::{Shared, batching::Batching, handshake::Handshake};
use crate::call::CallService;

/// Every call on a connection goes through the call layer to the routes.
type Service = TowerToHyperService<CallService<tonic::service::Routes>>;

/// Serves `stream` until it closes, or the server closes it.
pub(super) async fn serve(shared: Arc<Shared>, stream: TcpStream, info: TcpConnectInfo) {
    // A token of its own, so that waiting on it contends with no other
    // connection.
    let closing = shared.closing.child_token();
    tokio::select! {
        biased;
        () = handshake_then_http2(&shared, stream, info) => {}
        () = closing.cancelled() => debug!("Connection closed by the server"),
    }
}

async fn handshake_then_http2(shared: &Shared, stream: TcpStream, info: TcpConnectInfo) {
    let peer = info.remote_addr();
    let service = TowerToHyperService::new(shared.service.for_connection(info));
    let stream = Handshake::new(stream, shared.handshake_timeout);
    let Some(tls) = &shared.tls else {
        return http2(shared, stream, service).await;
    };
    match tokio::time::timeout(shared.handshake_timeout, tls.accept(stream)).await {
        Ok(Ok(stream)) => http2(shared, stream, service).await,
        Ok(Err(err)) => info!(peer = ?peer, error = %err, "TLS handshake failed"),
        Err(_) => info!(peer = ?peer, "TLS handshake timed out"),
    }
}

/// Serves HTTP/2 on `io` until the connection closes; drains it when the
/// server says so.
async fn http2<I>(shared: &Shared, io: I, service: Service)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Batching sits right under HTTP/2, above TLS: see its module docs.
    let io = TokioIo::new(Batching::new(io));
    let mut connection = pin!(shared.http2.serve_connection(io, service));
    let draining = shared.draining.child_token();
    let mut drain = pin!(draining.cancelled());
    let mut drained = false;
    loop {
        tokio::select! {
            biased;
            result = connection.as_mut() => {
                if let Err(err) = result {
                    debug!(error = %err, "Connection ended with an error");
                }
                return;
            }
            () = &mut drain, if !drained => {
                drained = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}
