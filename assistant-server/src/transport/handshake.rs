//! Watching what a connection reads: its HTTP/2 handshake, and whether it
//! is still talking.
//!
//! [`Handshake`] sits on the plaintext side of a connection (under HTTP/2,
//! above TLS) and follows the first bytes the client sends: the 24-byte
//! HTTP/2 preface, then the client's first SETTINGS frame. Until both are
//! in, the connection has a deadline: one byte, or half a preface, no
//! longer keeps a connection open. Once they are in, it marks the
//! connection established, and only counts what it reads, for keepalive.

use std::{
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::{Instant, Sleep},
};

/// The HTTP/2 client connection preface (RFC 9113, section 3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A frame header: 3 bytes of length, type, flags, 4 bytes of stream id.
const FRAME_HEADER: usize = 9;

/// The SETTINGS frame type.
const SETTINGS: u8 = 0x4;

/// What a connection has read, shared with its keepalive and the
/// connection registry.
#[derive(Debug, Default)]
pub(super) struct Reads {
    /// Bytes read so far.
    bytes: AtomicU64,
    /// Whether the preface and the first SETTINGS frame are in.
    established: AtomicBool,
}

impl Reads {
    /// Bytes read so far.
    pub(super) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Whether the client has sent its preface and first SETTINGS frame.
    pub(super) fn established(&self) -> bool {
        self.established.load(Ordering::Acquire)
    }

    #[cfg(test)]
    pub(super) fn mark_established(&self) {
        self.established.store(true, Ordering::Release);
    }
}

/// Where the client is in its handshake.
#[derive(Debug)]
enum State {
    /// Reading the preface and the first frame's header: this many bytes
    /// of the 33 so far, kept.
    Start {
        seen: [u8; 24 + FRAME_HEADER],
        len: usize,
    },
    /// Reading the SETTINGS payload: this many bytes left.
    Settings {
        left: u64,
    },
    Established,
}

/// An I/O object whose client must complete its HTTP/2 handshake by a
/// deadline; see the [module docs](self).
#[derive(Debug)]
pub(super) struct Handshake<T> {
    io: T,
    state: State,
    deadline: Option<Pin<Box<Sleep>>>,
    reads: Arc<Reads>,
}

impl<T> Handshake<T> {
    /// Wraps `io`, whose client must be established by `deadline`.
    pub(super) fn new(io: T, deadline: Instant, reads: Arc<Reads>) -> Self {
        Self {
            io,
            state: State::Start {
                seen: [0; 24 + FRAME_HEADER],
                len: 0,
            },
            deadline: Some(Box::pin(tokio::time::sleep_until(deadline))),
            reads,
        }
    }

    /// Follows the handshake through `data`, just read.
    fn follow(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            match &mut self.state {
                State::Start { seen, len } => {
                    let take = (seen.len() - *len).min(data.len());
                    seen[*len..*len + take].copy_from_slice(&data[..take]);
                    *len += take;
                    data = &data[take..];
                    if *len < PREFACE.len() {
                        if seen[..*len] != PREFACE[..*len] {
                            return Err(not_http2());
                        }
                        continue;
                    }
                    if seen[..PREFACE.len()] != PREFACE[..] {
                        return Err(not_http2());
                    }
                    if *len < seen.len() {
                        continue;
                    }
                    let header = &seen[PREFACE.len()..];
                    if header[3] != SETTINGS {
                        return Err(not_http2());
                    }
                    let left = u64::from(u32::from_be_bytes([0, header[0], header[1], header[2]]));
                    self.state = State::Settings { left };
                }
                State::Settings { left } => {
                    let take = (*left).min(data.len() as u64);
                    *left -= take;
                    data = &data[usize::try_from(take).unwrap_or(data.len())..];
                }
                State::Established => return Ok(()),
            }
            self.establish_if_done();
        }
        self.establish_if_done();
        Ok(())
    }

    /// Marks the connection established once the SETTINGS frame is in.
    fn establish_if_done(&mut self) {
        if matches!(self.state, State::Settings { left: 0 }) {
            self.state = State::Established;
            self.deadline = None;
            self.reads.established.store(true, Ordering::Release);
        }
    }
}

fn not_http2() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "the client did not open with the HTTP/2 preface",
    )
}

impl<T: AsyncRead + Unpin> AsyncRead for Handshake<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let read = &buf.filled()[before..];
                this.reads
                    .bytes
                    .fetch_add(read.len() as u64, Ordering::Relaxed);
                if !matches!(this.state, State::Established) {
                    this.follow(read)?;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                if let Some(deadline) = &mut this.deadline
                    && deadline.as_mut().poll(cx).is_ready()
                {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no HTTP/2 handshake within the handshake timeout",
                    )));
                }
                Poll::Pending
            }
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Handshake<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handshake() -> Handshake<()> {
        Handshake {
            io: (),
            state: State::Start {
                seen: [0; 24 + FRAME_HEADER],
                len: 0,
            },
            deadline: None,
            reads: Arc::default(),
        }
    }

    /// A client's opening: the preface, and a SETTINGS frame of `payload`.
    fn opening(payload: &[u8]) -> Vec<u8> {
        let mut bytes = PREFACE.to_vec();
        let len = payload.len() as u32;
        bytes.extend_from_slice(&len.to_be_bytes()[1..]);
        bytes.extend_from_slice(&[SETTINGS, 0, 0, 0, 0, 0]);
        bytes.extend_from_slice(payload);
        bytes
    }

    #[test]
    fn established_only_once_the_preface_and_whole_settings_frame_are_in() {
        let bytes = opening(&[0, 3, 0, 0, 0, 100, 0, 4, 0, 1, 0, 0]);
        for split in [1, 5, 24, 30, 33, bytes.len()] {
            let mut h = handshake();
            let mut pieces = bytes.chunks(split).peekable();
            while let Some(piece) = pieces.next() {
                h.follow(piece).unwrap();
                assert_eq!(
                    h.reads.established(),
                    pieces.peek().is_none(),
                    "pieces of {split}"
                );
            }
        }
    }

    #[test]
    fn an_empty_settings_frame_establishes_and_later_bytes_are_not_looked_at() {
        let mut bytes = opening(&[]);
        bytes.extend_from_slice(b"anything at all");
        let mut h = handshake();
        h.follow(&bytes).unwrap();
        assert!(h.reads.established());
    }

    #[test]
    fn anything_but_the_preface_then_settings_is_refused() {
        for bad in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"PRI * HTTP/2.0\r\n\r\nXX",
            &[0x16, 0x03, 0x01],
        ] {
            assert!(handshake().follow(bad).is_err(), "{bad:?}");
        }
        // The preface, then a frame that is not SETTINGS.
        let mut bytes = PREFACE.to_vec();
        bytes.extend_from_slice(&[0, 0, 0, 0x1, 0, 0, 0, 0, 1]);
        assert!(handshake().follow(&bytes).is_err());
    }
}
