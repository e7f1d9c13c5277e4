//! Write batching: many HTTP/2 frames to the socket in one system call.
//!
//! h2 writes a large DATA frame on its own and flushes it before it
//! buffers the next one, so an unpaced story leaves the server as one
//! `writev` per 16 KiB frame (the most a stock client accepts in a frame).
//! On loopback and on fast links those system calls, and the kernel's work
//! per write, were about half of what an unpaced call cost the server.
//!
//! [`Batching`] copies writes into a buffer of up to [`BATCH`] bytes and
//! sends them when the buffer is full, or when a flush finds that nothing
//! was written since the last one. A flush that comes straight after new
//! writes is put off: it wakes the task and reports success, so that
//! HTTP/2 goes on to queue its next frames, and the task's next flush, with
//! nothing new, sends the batch. A frame is held back for at most one more
//! turn of the task, or [`MAX_DEFERRALS`] flushes under a steady trickle.
//!
//! # What it relies on
//! That the writer flushes again when its task is woken. h2 0.4 does:
//! every poll of an HTTP/2 connection that has nothing more to do ends in
//! `Streams::poll_complete`, which flushes the codec, even when nothing
//! was queued (h2 0.4.20, `proto/connection.rs`). It is why `Batching`
//! sits right under HTTP/2 (above TLS), and not under a TLS handshake,
//! which flushes only after it writes. h2 is held to 0.4 in `Cargo.toml`
//! for this reason, and the tests in `batching/over_h2.rs` drive a real
//! h2 connection through the layer: if h2 stopped flushing that
//! way, a response's last frames would stay buffered and those tests
//! would fail.
//!
//! # Why it exists, and when it goes
//! h2 holds at most one pending DATA frame and flushes it before taking
//! the next: [hyperium/h2#902](https://github.com/hyperium/h2/issues/902).
//! [hyperium/h2#903](https://github.com/hyperium/h2/pull/903) queues many
//! frames for one vectored write instead. When h2 coalesces DATA frames
//! itself, this layer has nothing left to do and should be removed.
//!
//! A slice of a buffer that many streams send from (a story's framing,
//! see [`crate::wire::Framing`]) is taken by reference instead, and the
//! batch goes out as one vectored write: a run of a story's messages is
//! then copied once, by the kernel, as a file server's would be.
//!
//! Every byte taken is also read by a [`FrameReader`], which tells the
//! connection's [`StreamEnds`] when a stream's last frame has left HTTP/2.
//!
//! Flow control is untouched: h2 only hands over frames its windows
//! allow, and a socket that takes nothing makes writes wait (`Pending`)
//! once the buffer is full, as the socket itself would.

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::ends::{FrameReader, StreamEnds};

/// How many bytes are gathered before they are written (loopback's
/// largest segment); a single write this large goes straight through.
pub(super) const BATCH: usize = 64 * 1024;

/// The shortest slice looked up among the shared buffers: a story's runs
/// are about 16 KiB, and a paced story's messages, which are not in one,
/// about 1 KiB.
const SHARED_MIN: usize = 4096;

/// The most slices one vectored write takes: a batch of shared runs has
/// about ten.
const MAX_SLICES: usize = 64;

/// How many flushes in a row may be put off while new frames keep coming,
/// which bounds how long a frame waits under a steady trickle of writes.
pub(super) const MAX_DEFERRALS: u8 = 8;

/// An I/O object whose writes are batched; reads pass through.
#[derive(Debug)]
pub(super) struct Batching<T> {
    io: T,
    /// Bytes accepted and copied.
    out: Vec<u8>,
    /// Bytes accepted by reference, each with where it goes in `out`.
    shared: Vec<(usize, Bytes)>,
    /// The batch's length, copied and shared, and how much is written.
    len: usize,
    written: usize,
    /// Whether bytes were accepted since the last flush.
    fresh: bool,
    /// Flushes put off in a row.
    deferrals: u8,
    /// The frames taken, followed for the ends of streams.
    frames: FrameReader,
    ends: Arc<StreamEnds>,
}

impl<T> Batching<T> {
    /// Wraps `io`. The buffer is allocated at the first write and freed
    /// whenever it has been sent, so an idle connection holds none.
    /// The ends of streams written are told to `ends`.
    pub(super) fn new(io: T, ends: Arc<StreamEnds>) -> Self {
        Self {
            io,
            out: Vec::new(),
            shared: Vec::new(),
            len: 0,
            written: 0,
            fresh: false,
            deferrals: 0,
            frames: FrameReader::default(),
            ends,
        }
    }

    /// How many accepted bytes have not reached the wrapped object yet.
    pub(super) fn buffered(&self) -> usize {
        self.len - self.written
    }

    /// Takes `buf` into the batch: by reference if it lies in a shared
    /// buffer, copied if not.
    fn take(&mut self, buf: &[u8]) {
        match (buf.len() >= SHARED_MIN)
            .then(|| crate::wire::find_shared(buf))
            .flatten()
        {
            Some(shared) => self.shared.push((self.out.len(), shared)),
            None => self.out.extend_from_slice(buf),
        }
        self.len += buf.len();
    }
}

/// The unwritten bytes of a batch, `out` with `shared` in their places,
/// as slices into `dst`: how many.
fn unwritten<'a>(
    out: &'a [u8],
    shared: &'a [(usize, Bytes)],
    written: usize,
    dst: &mut [io::IoSlice<'a>],
) -> usize {
    let copied_from = |i: usize| if i == 0 { 0 } else { shared[i - 1].0 };
    let last = copied_from(shared.len());
    let pieces = shared
        .iter()
        .enumerate()
        .flat_map(|(i, (to, bytes))| [&out[copied_from(i)..*to], &bytes[..]])
        .chain(std::iter::once(&out[last..]));
    let mut skip = written;
    let mut filled = 0;
    for piece in pieces {
        if filled == dst.len() {
            break;
        }
        if skip >= piece.len() {
            skip -= piece.len();
            continue;
        }
        dst[filled] = io::IoSlice::new(&piece[skip..]);
        skip = 0;
        filled += 1;
    }
    filled
}

impl<T: AsyncWrite + Unpin> Batching<T> {
    /// Writes out everything buffered.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.len {
            let n = if self.shared.is_empty() {
                ready!(Pin::new(&mut self.io).poll_write(cx, &self.out[self.written..]))?
            } else {
                let mut slices = [io::IoSlice::new(&[]); MAX_SLICES];
                let filled = unwritten(&self.out, &self.shared, self.written, &mut slices);
                ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..filled]))?
            };
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        // Freed rather than kept: an idle connection should cost nothing,
        // and one allocation per batch is noise next to the write.
        self.out = Vec::new();
        self.shared = Vec::new();
        self.len = 0;
        self.written = 0;
        self.deferrals = 0;
        Poll::Ready(Ok(()))
    }

    /// Makes room for `len` more bytes: `Ready(true)` if they should be
    /// buffered, `Ready(false)` if they are a batch on their own and
    /// should go straight to the wrapped object.
    fn poll_room(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<io::Result<bool>> {
        if self.len + len > BATCH {
            ready!(self.poll_drain(cx))?;
        }
        if len >= BATCH {
            return Poll::Ready(Ok(false));
        }
        if self.out.capacity() == 0 {
            self.out.reserve_exact(BATCH);
        }
        Poll::Ready(Ok(true))
    }
}

impl<T> Drop for Batching<T> {
    fn drop(&mut self) {
        // Dropped with its connection: what HTTP/2 still queued is lost.
        self.ends.close();
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Batching<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Batching<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if !ready!(this.poll_room(cx, buf.len()))? {
            let n = ready!(Pin::new(&mut this.io).poll_write(cx, buf))?;
            this.frames.read(&buf[..n], &this.ends);
            return Poll::Ready(Ok(n));
        }
        this.frames.read(buf, &this.ends);
        this.take(buf);
        this.fresh = true;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let len = bufs.iter().map(|buf| buf.len()).sum();
        if !ready!(this.poll_room(cx, len))? {
            let mut n = ready!(Pin::new(&mut this.io).poll_write_vectored(cx, bufs))?;
            let written = n;
            for buf in bufs {
                let taken = n.min(buf.len());
                this.frames.read(&buf[..taken], &this.ends);
                n -= taken;
            }
            return Poll::Ready(Ok(written));
        }
        for buf in bufs {
            this.frames.read(buf, &this.ends);
            this.take(buf);
        }
        this.fresh = true;
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        // Slices are taken into the batch, however many there are.
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.buffered() > 0 && this.fresh && this.deferrals < MAX_DEFERRALS {
            // More frames may be on their way in this turn; the wake makes
            // sure a later flush comes even if none do.
            this.fresh = false;
            this.deferrals += 1;
            cx.waker().wake_by_ref();
            return Poll::Ready(Ok(()));
        }
        this.fresh = false;
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod over_h2;
#[cfg(test)]
mod tests;
