//! Serving one connection, from its TLS handshake to its last frame.
//!
//! The connection's HTTP/2 is driven here, in the connection's own task,
//! beside the server's two signals: draining sends GOAWAY and lets the
//! calls in flight finish; closing drops the connection, which closes the
//! socket and ends every call on it, as tonic's forceful shutdown does.
//!
//! Each call gets a task of its own ([`super::stream`]). The connection
//! pings a client that has sent nothing for `--keepalive-interval`, and
//! closes it if the ping is not answered within `--keepalive-timeout`.

use std::{sync::Arc, time::Duration};

use h2::{Ping, PingPong};
use tokio::{
    io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _},
    net::TcpStream,
    time::Instant,
};
use tonic::transport::server::TcpConnectInfo;

use crate::{call::CallService, services::Router, wire::Chunk};

use super::{
    Shared,
    batching::Batching,
    ends::StreamEnds,
    handshake::{Handshake, Reads},
    registry::{Closed, Entry},
    stream,
};

/// Serves `tcp` until it closes, or the server closes it; says why it
/// ended, and how many of its calls ended before their request arrived.
pub(super) async fn serve(
    shared: Arc<Shared>,
    tcp: TcpStream,
    info: TcpConnectInfo,
    entry: Arc<Entry>,
) -> (Closed, u64) {
    // A token of its own, so that waiting on it contends with no other
    // connection.
    let closing = shared.closing.child_token();
    let service = shared.service.for_connection(info);
    let closed = tokio::select! {
        biased;
        closed = handshake_then_http2(&shared, tcp, &service, &entry) => closed,
        () = closing.cancelled() => Closed::ByServer,
        () = entry.evicted() => Closed::Evicted,
    };
    (closed, service.ended_before_request())
}

async fn handshake_then_http2(
    shared: &Shared,
    tcp: TcpStream,
    service: &CallService<Router>,
    entry: &Entry,
) -> Closed {
    // One deadline for the whole handshake: TLS, the HTTP/2 preface and
    // the client's first SETTINGS frame.
    let deadline = Instant::now() + shared.handshake_timeout;
    let Some(tls) = &shared.tls else {
        let io = Handshake::new(tcp, deadline, Arc::clone(&entry.reads));
        return http2(shared, io, service, entry).await;
    };
    match tokio::time::timeout_at(deadline, tls.accept(tcp).into_fallible()).await {
        Ok(Ok(stream)) => {
            let io = Handshake::new(stream, deadline, Arc::clone(&entry.reads));
            http2(shared, io, service, entry).await
        }
        Ok(Err((err, mut tcp))) => {
            // TLS's alert (a missing client certificate, say) is written.
            // Closed with the client's next bytes unread, the connection
            // would be reset, and the client might never read why.
            let linger = async {
                tcp.shutdown().await?;
                let mut sink = [0; 1024];
                while tcp.read(&mut sink).await? > 0 {}
                Ok::<_, std::io::Error>(())
            };
            let until = deadline.min(Instant::now() + TLS_ALERT_LINGER);
            let _ = tokio::time::timeout_at(until, linger).await;
            Closed::Tls(err.to_string())
        }
        Err(_) => Closed::HandshakeTimeout,
    }
}

/// How long a connection whose TLS handshake failed is kept, at most, for
/// its client to read the alert.
const TLS_ALERT_LINGER: Duration = Duration::from_secs(1);

/// Serves HTTP/2 on `io` until the connection closes; drains it when the
/// server says so.
async fn http2<I>(shared: &Shared, io: I, service: &CallService<Router>, entry: &Entry) -> Closed
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let reads = Arc::clone(&entry.reads);
    // Batching sits right under HTTP/2, above TLS: see its module docs.
    let ends = Arc::new(StreamEnds::default());
    let io = Batching::new(io, Arc::clone(&ends));
    let handshake = shared.http2.handshake::<_, Chunk>(io);
    let mut connection = match handshake.await {
        Ok(connection) => connection,
        Err(err) => return Closed::from_h2(&err, &reads),
    };
    let pings = connection.ping_pong();
    let draining = shared.draining.child_token();
    let mut drained = false;
    let keepalive = keepalive(pings, &reads, shared.keepalive);
    let mut keepalive = std::pin::pin!(keepalive);
    loop {
        tokio::select! {
            biased;
            () = draining.cancelled(), if !drained => {
                drained = true;
                connection.graceful_shutdown();
            }
            () = &mut keepalive => return Closed::KeepaliveTimeout,
            accepted = connection.accept() => match accepted {
                Some(Ok((request, respond))) => {
                    tokio::spawn(stream::serve(service.clone(), request, respond, Arc::clone(&ends)));
                }
                Some(Err(err)) => return Closed::from_h2(&err, &reads),
                None => return Closed::Done,
            },
        }
    }
}

/// When to ping a quiet client, and how long to wait for its answer.
#[derive(Debug, Clone, Copy)]
pub(super) struct Keepalive {
    pub(super) interval: Duration,
    pub(super) timeout: Duration,
}

/// Completes when the client fails to answer a ping: every interval in
/// which it sent nothing, it is pinged.
async fn keepalive(pings: Option<PingPong>, reads: &Reads, settings: Keepalive) {
    let Some(mut pings) = pings else {
        return std::future::pending().await;
    };
    if settings.interval.is_zero() {
        return std::future::pending().await;
    }
    let mut heard = reads.bytes();
    loop {
        tokio::time::sleep(settings.interval).await;
        let now = reads.bytes();
        if now != heard {
            heard = now;
            continue;
        }
        match tokio::time::timeout(settings.timeout, pings.ping(Ping::opaque())).await {
            Ok(Ok(_pong)) => heard = reads.bytes(),
            // The connection is closing; its driver will say why.
            Ok(Err(_)) => return std::future::pending().await,
            Err(_) => return,
        }
    }
}
