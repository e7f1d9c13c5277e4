//! Which streams' last frames have left HTTP/2's queue.
//!
//! h2 takes a stream's last frame (trailers, or DATA with END_STREAM) into
//! the stream's send queue and says nothing more: it gives no sign of when
//! the frame, and the response queued before it, is written. But a call
//! should hold its place under `--max-calls`, with its deadline and its
//! stall watched, until its response has left the server's queues, or a
//! client that never reads could leave a whole story queued for every
//! stream it opens, counted by no limit of ours.
//!
//! So the connection's writes are read as they pass: every HTTP/2 frame
//! begins with a 9-byte header giving its length, type, flags and stream.
//! [`FrameReader`] follows the headers through the bytes
//! [`super::batching::Batching`] takes from HTTP/2 (a few operations a
//! frame: payloads are skipped, not read), and when a frame that ends a
//! stream goes by, tells the connection's [`StreamEnds`], where the
//! stream's task waits on a [`LastFrame`]. Bytes taken by the batching
//! layer are as good as written: it holds at most one batch a connection,
//! and HTTP/2 queues nothing more while it is full. When the connection
//! closes with a stream's last frame still queued, h2 drops the frame
//! without a word to the stream: the batching layer, dropped with the
//! connection, says so instead ([`StreamEnds::close`]).

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll, Waker},
};

/// The length of an HTTP/2 frame header.
const HEADER_LEN: usize = 9;
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const END_STREAM: u8 = 0x1;

/// One connection's streams whose tasks wait for their last frame.
#[derive(Debug, Default)]
pub(super) struct StreamEnds {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    waiting: HashMap<u32, Waiting>,
    /// The connection closed: nothing more will be written.
    closed: bool,
}

/// What became of a stream's last frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ended {
    /// Written, with all the stream's frames before it.
    Written,
    /// Dropped unwritten: the connection closed.
    Dropped,
}

#[derive(Debug)]
enum Waiting {
    Queued(Option<Waker>),
    Written,
}

impl StreamEnds {
    /// Watches for the last frame of stream `id`, before that frame is
    /// given to HTTP/2 (so it cannot pass unseen).
    pub(super) fn expect(self: &Arc<Self>, id: u32) -> LastFrame {
        self.lock().waiting.insert(id, Waiting::Queued(None));
        LastFrame {
            ends: Arc::clone(self),
            id,
        }
    }

    /// The last frame of stream `id` was written.
    fn ended(&self, id: u32) {
        let mut inner = self.lock();
        if let Some(entry) = inner.waiting.get_mut(&id)
            && let Waiting::Queued(waker) = std::mem::replace(entry, Waiting::Written)
            && let Some(waker) = waker
        {
            waker.wake();
        }
    }

    /// The connection closed: every stream still waiting has lost its last
    /// frame.
    pub(super) fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        for entry in inner.waiting.values_mut() {
            if let Waiting::Queued(waker) = entry
                && let Some(waker) = waker.take()
            {
                waker.wake();
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Nothing panics while holding the lock; a poisoned map is whole.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Completes once the last frame of its stream is written; stops watching
/// when dropped.
#[derive(Debug)]
pub(super) struct LastFrame {
    ends: Arc<StreamEnds>,
    id: u32,
}

impl Future for LastFrame {
    type Output = Ended;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Ended> {
        let mut inner = self.ends.lock();
        let closed = inner.closed;
        match inner.waiting.get_mut(&self.id) {
            Some(Waiting::Written) => Poll::Ready(Ended::Written),
            Some(Waiting::Queued(_)) | None if closed => Poll::Ready(Ended::Dropped),
            Some(Waiting::Queued(waker)) => {
                if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
            // Taken only by dropping this.
            None => Poll::Ready(Ended::Dropped),
        }
    }
}

impl Drop for LastFrame {
    fn drop(&mut self) {
        self.ends.lock().waiting.remove(&self.id);
    }
}

/// Follows the frame headers in a connection's outgoing bytes.
#[derive(Debug, Default)]
pub(super) struct FrameReader {
    /// A header read in part.
    header: [u8; HEADER_LEN],
    have: usize,
    /// Payload bytes of the current frame still to pass.
    skip: usize,
}

impl FrameReader {
    /// Reads `bytes`, the next the connection writes, and tells `ends` of
    /// each stream whose last frame begins in them.
    pub(super) fn read(&mut self, mut bytes: &[u8], ends: &StreamEnds) {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (HEADER_LEN - self.have).min(bytes.len());
            self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have < HEADER_LEN {
                return;
            }
            self.have = 0;
            let [l0, l1, l2, kind, flags, s0, s1, s2, s3] = self.header;
            self.skip = u32::from_be_bytes([0, l0, l1, l2]) as usize;
            let id = u32::from_be_bytes([s0 & 0x7f, s1, s2, s3]);
            let ends_stream = match kind {
                DATA | HEADERS => flags & END_STREAM != 0,
                RST_STREAM => true,
                _ => false,
            };
            if ends_stream && id != 0 {
                ends.ended(id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::atomic::Ordering, task::Wake};

    use super::*;

    fn frame(kind: u8, flags: u8, id: u32, payload: usize) -> Vec<u8> {
        let mut bytes = (payload as u32).to_be_bytes()[1..].to_vec();
        bytes.extend_from_slice(&[kind, flags]);
        bytes.extend_from_slice(&id.to_be_bytes());
        bytes.extend(std::iter::repeat_n(0xAA, payload));
        bytes
    }

    struct Flag(std::sync::atomic::AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    fn poll(last: &mut LastFrame, flag: &Arc<Flag>) -> Poll<Ended> {
        let waker = Waker::from(Arc::clone(flag));
        Pin::new(last).poll(&mut Context::from_waker(&waker))
    }

    #[test]
    fn a_stream_ends_when_its_end_stream_frame_passes_in_pieces_of_any_size() {
        for end in [
            frame(HEADERS, END_STREAM | 0x4, 3, 40),
            frame(DATA, END_STREAM, 3, 0),
            frame(RST_STREAM, 0, 3, 4),
        ] {
            let mut bytes = frame(0x4, 0, 0, 12); // SETTINGS
            bytes.extend(frame(DATA, 0, 3, 70_000)); // not the end
            bytes.extend(frame(HEADERS, END_STREAM, 5, 10)); // another stream's
            let before = bytes.len();
            bytes.extend(end);
            bytes.extend(frame(DATA, 0, 7, 100));
            for piece in [1, 2, 5, 9, 10, 4096, usize::MAX] {
                let ends = Arc::new(StreamEnds::default());
                let mut last = ends.expect(3);
                let flag = Arc::new(Flag(false.into()));
                assert!(poll(&mut last, &flag).is_pending());
                let mut reader = FrameReader::default();
                let mut at = 0;
                while at < bytes.len() {
                    let to = at.saturating_add(piece).min(bytes.len());
                    reader.read(&bytes[at..to], &ends);
                    if to < before + HEADER_LEN {
                        assert!(
                            poll(&mut last, &flag).is_pending(),
                            "piece {piece}, at {to}"
                        );
                    }
                    at = to;
                }
                assert!(flag.0.load(Ordering::SeqCst), "woken, piece {piece}");
                assert_eq!(poll(&mut last, &flag), Poll::Ready(Ended::Written));
                ends.close();
                assert_eq!(poll(&mut last, &flag), Poll::Ready(Ended::Written));
            }
        }
    }

    #[test]
    fn a_dropped_watch_leaves_nothing_behind() {
        let ends = Arc::new(StreamEnds::default());
        let last = ends.expect(1);
        assert_eq!(ends.lock().waiting.len(), 1);
        drop(last);
        assert!(ends.lock().waiting.is_empty());
        // An end nobody waits for is ignored.
        FrameReader::default().read(&frame(HEADERS, END_STREAM, 1, 0), &ends);
        assert!(ends.lock().waiting.is_empty());
    }

    #[test]
    fn a_closed_connection_drops_the_last_frames_still_queued() {
        let ends = Arc::new(StreamEnds::default());
        let mut last = ends.expect(1);
        let flag = Arc::new(Flag(false.into()));
        assert!(poll(&mut last, &flag).is_pending());
        ends.close();
        assert!(flag.0.load(Ordering::SeqCst), "woken");
        assert_eq!(poll(&mut last, &flag), Poll::Ready(Ended::Dropped));
        // A stream that ends after its connection closed never waits.
        assert_eq!(
            poll(&mut ends.expect(3), &flag),
            Poll::Ready(Ended::Dropped)
        );
    }
}
