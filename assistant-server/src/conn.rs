//! Accepted connections that the server can close on its own terms.
//!
//! tonic serves each connection in a task of its own, out of our reach. Two
//! things need a hand on the socket itself:
//!
//! - **Shutdown.** A call whose client has stopped reading is parked on
//!   HTTP/2 flow control, where no response body is polled and nothing in
//!   the call can notice shutdown. Once the grace period is over, the
//!   server [kills](Killer::kill) every connection: reads and writes fail,
//!   and tonic's task for the connection ends.
//! - **Silent peers.** A TCP connection that never sends a byte would be
//!   held forever: HTTP/2 keepalive only starts after the handshake. Each
//!   connection must send its first bytes within the handshake timeout.
//!
//! Accept errors such as running out of file descriptors are logged and
//! retried after a pause, instead of spinning.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    time::Sleep,
};
use tokio_stream::Stream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::transport::server::{Connected, TcpConnectInfo, TcpIncoming};
use tracing::warn;

/// How long to wait before accepting again after an accept error.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Closes every connection accepted by an [`Incoming`].
#[derive(Debug, Clone, Default)]
pub struct Killer {
    token: CancellationToken,
}

impl Killer {
    /// Closes every open connection now, and every one accepted later.
    pub fn kill(&self) {
        self.token.cancel();
    }
}

/// The server's accepted connections, as a stream for tonic.
pub struct Incoming {
    inner: TcpIncoming,
    killer: Killer,
    handshake_timeout: Duration,
    paused: Option<Pin<Box<Sleep>>>,
}

impl Incoming {
    /// Wraps `inner`; `killer` closes what it accepts, and each connection
    /// must speak within `handshake_timeout`.
    pub fn new(inner: TcpIncoming, killer: Killer, handshake_timeout: Duration) -> Self {
        Self {
            inner,
            killer,
            handshake_timeout,
            paused: None,
        }
    }
}

impl Stream for Incoming {
    type Item = io::Result<Conn>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(pause) = &mut self.paused {
            ready!(pause.as_mut().poll(cx));
            self.paused = None;
        }
        match ready!(Pin::new(&mut self.inner).poll_next(cx)) {
            Some(Ok(io)) => {
                let killed = self.killer.token.child_token().cancelled_owned();
                let handshake = tokio::time::sleep(self.handshake_timeout);
                Poll::Ready(Some(Ok(Conn {
                    io,
                    killed: Box::pin(killed),
                    handshake: Some(Box::pin(handshake)),
                })))
            }
            Some(Err(err)) => {
                // EMFILE and friends persist until some connection closes;
                // accepting again at once would spin a core.
                warn!(error = %err, "Cannot accept a connection; pausing before the next");
                self.paused = Some(Box::pin(tokio::time::sleep(ACCEPT_ERROR_PAUSE)));
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            None => Poll::Ready(None),
        }
    }
}

/// One accepted connection.
pub struct Conn {
    io: TcpStream,
    /// Ready once the server kills its connections. A child token per
    /// connection, so polling it contends with no other connection.
    killed: Pin<Box<WaitForCancellationFutureOwned>>,
    /// Until the peer's first bytes arrive: when they must have arrived by.
    handshake: Option<Pin<Box<Sleep>>>,
}

impl Conn {
    /// Fails if the connection has been killed. Polled before each read and
    /// write, so a killed connection fails at its next use, and before
    /// returning `Pending`, so that waiting on a read is cut short too.
    fn poll_killed(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        match self.killed.as_mut().poll(cx) {
            Poll::Ready(()) => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the server closed the connection while shutting down",
            )),
            Poll::Pending => Ok(()),
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.poll_killed(cx)?;
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.handshake = None;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                if let Some(handshake) = &mut this.handshake
                    && handshake.as_mut().poll(cx).is_ready()
                {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the peer sent nothing within the handshake timeout",
                    )));
                }
                Poll::Pending
            }
            other => other,
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_killed(cx)?;
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_killed(cx)?;
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_killed(cx)?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl Connected for Conn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}
