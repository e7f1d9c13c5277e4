//! Batching against a socket that records each write.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Wake, Waker},
};

use super::*;

/// A socket that records each write it takes, and can be told to take
/// nothing, or only so many bytes per write.
#[derive(Default)]
struct Socket {
    writes: Vec<Vec<u8>>,
    full: bool,
    per_write: Option<usize>,
    shut: bool,
}

impl Socket {
    fn bytes(&self) -> Vec<u8> {
        self.writes.concat()
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.full {
            return Poll::Pending;
        }
        let n = buf.len().min(self.per_write.unwrap_or(usize::MAX));
        self.writes.push(buf[..n].to_vec());
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.shut = true;
        Poll::Ready(Ok(()))
    }
}

/// Counts its wakes.
#[derive(Default)]
struct Wakes(AtomicUsize);

impl Wake for Wakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

struct Harness {
    io: Batching<Socket>,
    wakes: Arc<Wakes>,
    waker: Waker,
}

impl Harness {
    fn new() -> Self {
        let wakes = Arc::new(Wakes::default());
        Self {
            io: Batching::new(Socket::default(), Default::default()),
            waker: Waker::from(wakes.clone()),
            wakes,
        }
    }

    fn wakes(&self) -> usize {
        self.wakes.0.load(Ordering::SeqCst)
    }

    fn write(&mut self, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(&mut Context::from_waker(&self.waker), buf)
    }

    fn write_vectored(&mut self, bufs: &[&[u8]]) -> Poll<io::Result<usize>> {
        let slices: Vec<_> = bufs.iter().map(|buf| io::IoSlice::new(buf)).collect();
        Pin::new(&mut self.io).poll_write_vectored(&mut Context::from_waker(&self.waker), &slices)
    }

    fn flush(&mut self) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(&mut Context::from_waker(&self.waker))
    }

    fn shutdown(&mut self) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(&mut Context::from_waker(&self.waker))
    }

    fn socket(&mut self) -> &mut Socket {
        &mut self.io.io
    }
}

fn ready<T>(poll: Poll<io::Result<T>>) -> T {
    match poll {
        Poll::Ready(Ok(value)) => value,
        Poll::Ready(Err(err)) => panic!("failed: {err}"),
        Poll::Pending => panic!("pending"),
    }
}

/// Distinct bytes, so that order and loss show.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn frames_written_in_one_turn_go_out_in_one_write() {
    let mut h = Harness::new();
    let frames: Vec<_> = (0..3).map(|i| pattern(16 * 1024 + 9, i)).collect();
    for frame in &frames {
        assert_eq!(ready(h.write(&frame[..9])), 9);
        assert_eq!(ready(h.write(&frame[9..])), 16 * 1024);
        // h2 flushes after each large frame: put off, with a wake.
        ready(h.flush());
    }
    assert!(h.socket().writes.is_empty(), "nothing written yet");
    assert_eq!(h.wakes(), 3);

    // The task's next turn flushes with nothing new: the batch goes.
    ready(h.flush());
    assert_eq!(h.socket().writes.len(), 1);
    assert_eq!(h.socket().bytes(), frames.concat());
    assert_eq!(h.io.buffered(), 0);
    assert_eq!(h.io.out.capacity(), 0, "an idle connection holds no buffer");
}

#[test]
fn vectored_writes_are_copied_in_order() {
    let mut h = Harness::new();
    assert!(h.io.is_write_vectored());
    let (head, body) = (pattern(9, 1), pattern(1000, 2));
    assert_eq!(ready(h.write_vectored(&[&head, &body])), 1009);
    ready(h.flush());
    ready(h.flush());
    assert_eq!(h.socket().bytes(), [head, body].concat());
}

#[test]
fn a_full_batch_is_written_before_more_is_taken() {
    let mut h = Harness::new();
    let first = pattern(BATCH - 100, 1);
    let second = pattern(200, 2);
    ready(h.write(&first));
    assert!(h.socket().writes.is_empty());
    ready(h.write(&second));
    assert_eq!(h.socket().writes, vec![first.clone()]);
    ready(h.flush());
    ready(h.flush());
    assert_eq!(h.socket().bytes(), [first, second].concat());
}

#[test]
fn a_write_of_a_whole_batch_goes_straight_through_after_what_is_buffered() {
    let mut h = Harness::new();
    let small = pattern(10, 1);
    let big = pattern(BATCH + 1, 2);
    ready(h.write(&small));
    ready(h.write(&big));
    assert_eq!(h.socket().writes.len(), 2);
    assert_eq!(h.socket().bytes(), [small, big].concat());
    assert_eq!(h.io.buffered(), 0);
}

#[test]
fn a_full_socket_makes_writes_wait_and_loses_nothing() {
    let mut h = Harness::new();
    h.socket().full = true;
    let first = pattern(BATCH, 1);
    // The buffer takes one batch; the socket takes nothing.
    ready(h.write(&first[..BATCH / 2]));
    ready(h.write(&first[BATCH / 2..]));
    assert!(h.write(b"more").is_pending());
    assert!(
        h.flush().is_ready(),
        "the first flush after new bytes is put off"
    );
    assert!(h.flush().is_pending());
    assert!(h.shutdown().is_pending());

    // The socket takes a little at a time now.
    h.socket().full = false;
    h.socket().per_write = Some(1000);
    assert_eq!(ready(h.write(b"more")), 4);
    ready(h.flush());
    ready(h.flush());
    assert_eq!(h.socket().bytes(), [first, b"more".to_vec()].concat());
}

#[test]
fn a_steady_trickle_is_held_back_for_only_so_many_flushes() {
    let mut h = Harness::new();
    for i in 0..MAX_DEFERRALS {
        ready(h.write(&[i]));
        ready(h.flush());
        assert!(h.socket().writes.is_empty());
    }
    ready(h.write(b"!"));
    ready(h.flush());
    assert_eq!(h.socket().writes.len(), 1);
    assert_eq!(h.socket().bytes().len(), usize::from(MAX_DEFERRALS) + 1);
}

#[test]
fn shutdown_writes_what_is_buffered_first() {
    let mut h = Harness::new();
    ready(h.write(b"GOAWAY"));
    ready(h.flush());
    ready(h.shutdown());
    assert_eq!(h.socket().bytes(), b"GOAWAY");
    assert!(h.socket().shut);
}

#[test]
fn a_socket_that_takes_zero_bytes_is_an_error() {
    let mut h = Harness::new();
    h.socket().per_write = Some(0);
    ready(h.write(b"x"));
    ready(h.flush());
    match h.flush() {
        Poll::Ready(Err(err)) => assert_eq!(err.kind(), io::ErrorKind::WriteZero),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn slices_of_a_shared_buffer_go_by_reference_in_their_places() {
    let story = crate::wire::Registered::new(pattern(3 * SHARED_MIN, 7).into());
    let run = |k: usize| &story.bytes()[k * SHARED_MIN..(k + 1) * SHARED_MIN];
    let (head, small) = (pattern(9, 1), &story.bytes()[..SHARED_MIN - 1]);
    let mut expected = Vec::new();
    for socket_takes in [None, Some(1000)] {
        let mut h = Harness::new();
        h.socket().per_write = socket_takes;
        // Frames as h2 hands them over: a head, then a run, vectored or not.
        assert_eq!(ready(h.write_vectored(&[&head, run(0)])), 9 + SHARED_MIN);
        assert_eq!(ready(h.write(&head)), 9);
        assert_eq!(ready(h.write(run(2))), SHARED_MIN);
        assert_eq!(
            ready(h.write_vectored(&[&head, small, run(1)])),
            9 + 2 * SHARED_MIN - 1
        );
        // Only the heads and the short slice are copied.
        assert_eq!(h.io.out.len(), 3 * 9 + SHARED_MIN - 1);
        assert_eq!(h.io.buffered(), 3 * 9 + 4 * SHARED_MIN - 1);
        ready(h.flush());
        ready(h.flush());
        assert_eq!(h.io.buffered(), 0);
        expected = [&head, run(0), &head, run(2), &head, small, run(1)].concat();
        assert_eq!(
            h.socket().bytes(),
            expected,
            "socket takes {socket_takes:?}"
        );
    }
    // A copy of the same bytes is copied.
    let mut h = Harness::new();
    ready(h.write(&expected));
    assert_eq!(h.io.out.len(), expected.len());
}
