//! Sinks for the log writer's tests: one that takes nothing until it is
//! opened, and one that fails every write.

use std::{
    io::{self, Write},
    sync::{
        Arc, Condvar, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

/// A sink that takes nothing until it is opened, as a pipe nobody
/// reads, and keeps what it is given.
#[derive(Clone, Default)]
pub(super) struct Stuck(Arc<Sink>);

#[derive(Default)]
struct Sink {
    /// Whether it is open, and what it has taken.
    state: Mutex<(bool, Vec<u8>)>,
    opened: Condvar,
    /// Writes waiting for it to open.
    waiting: AtomicUsize,
}

impl Stuck {
    pub(super) fn open(&self) {
        self.0.state.lock().unwrap().0 = true;
        self.0.opened.notify_all();
    }

    /// How many writes are waiting for it to open.
    pub(super) fn waiting(&self) -> usize {
        self.0.waiting.load(Ordering::SeqCst)
    }

    pub(super) fn taken(&self) -> Vec<u8> {
        self.0.state.lock().unwrap().1.clone()
    }

    /// What it has taken once that is `len` bytes, waiting as long as
    /// a test may.
    pub(super) fn taken_once(&self, len: usize) -> Vec<u8> {
        let state = self.0.state.lock().unwrap();
        let (state, _) = self
            .0
            .opened
            .wait_timeout_while(state, Duration::from_secs(10), |state| state.1.len() < len)
            .unwrap();
        state.1.clone()
    }
}

impl Write for Stuck {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut state = self.0.state.lock().unwrap();
        if !state.0 {
            self.0.waiting.fetch_add(1, Ordering::SeqCst);
            while !state.0 {
                state = self.0.opened.wait(state).unwrap();
            }
            self.0.waiting.fetch_sub(1, Ordering::SeqCst);
        }
        state.1.extend_from_slice(buf);
        self.0.opened.notify_all();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A sink that fails every write, as a pipe whose reader is gone.
pub(super) struct Broken;

impl Write for Broken {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::ErrorKind::BrokenPipe.into())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
