//! The log writer: every line goes into one shared buffer, in the order it
//! was logged, and a thread of its own writes the buffer out whole.
//!
//! The story logs a line per chunk. tracing-appender's non-blocking writer
//! hands each line to its thread as an allocation of its own, down a
//! channel with a slot for each of 128,000 lines (4 MB, set up front). Here
//! a line costs a lock and a copy, and the writer thread takes everything
//! logged since its last write in one swap of buffers: at once while lines
//! come slowly, and on a busy server after letting them gather for a
//! moment, as waking the thread for every few lines cost more than the
//! channel did.
//!
//! Logging never holds up serving: when the buffer is full, because stderr
//! is not taking lines, a line is dropped and counted instead.
//!
//! A connection thread does not take the lock for every line: it stages
//! its lines and hands them over a few kilobytes at a time
//! ([`super::staged`]), and the writer thread sweeps up what a busy or
//! stuck thread has staged.
//!
//! On a busy server lines wait up to 10 ms ([`GATHER`]) to be written, and
//! lines staged by a thread that is busy without pause up to a second
//! ([`SWEEP`]), so something written to stderr directly (a panic's
//! message) may come out ahead of lines logged just before it.

use std::{
    io::{self, Write},
    sync::{
        Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc,
    },
    thread,
    time::Duration,
};

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

use super::staged::{self, Stage};

/// How long the writer thread lets lines gather before writing them, once
/// its last batch was [`BUSY`]: waking it for every few lines would cost a
/// wake-up per few lines on a busy server.
const GATHER: Duration = Duration::from_millis(10);

/// A batch this big says lines are coming fast: the next one gathers.
const BUSY: usize = 4 * 1024;

/// How many bytes of lines are written without waiting for [`GATHER`].
const BATCH: usize = 128 * 1024;

/// How often the writer thread sweeps up staged lines while nothing else
/// wakes it: an idle server's writer thread wakes this often, as the
/// thread that watches for dropped lines does.
const SWEEP: Duration = Duration::from_secs(1);

/// A batch buffer bigger than this is given back after its write, so that
/// one burst does not keep its memory for the life of the process.
const KEEP: usize = 256 * 1024;

/// Lines logged and not yet written, shared by the threads that log them
/// and the thread that writes them.
#[derive(Debug)]
pub(super) struct Queue {
    state: Mutex<State>,
    /// Wakes the writer thread when lines arrive or the queue closes.
    ready: Condvar,
    /// Lines dropped because the buffer was full or stderr failed, counted
    /// by their line breaks (a message with a line break in it is two). A
    /// thread's stage that does not fit is dropped whole.
    dropped: AtomicU64,
    /// Whether the last write to stderr failed: then there is no point in
    /// saying lines were dropped, as that would be dropped too.
    failing: AtomicBool,
    /// The most the buffer holds, in bytes.
    limit: usize,
    /// The stages of the threads that stage their lines, for the writer
    /// thread to sweep; a stage whose thread has ended drops out.
    stages: Mutex<Vec<Weak<Stage>>>,
}

#[derive(Debug)]
struct State {
    lines: Vec<u8>,
    /// How many bytes of lines wake the writer thread: one line while it
    /// has nothing to write, a batch while it lets lines gather, never
    /// while it is writing.
    wake_at: usize,
    closed: bool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A thread that panicked holding the lock left whole lines: a line
        // is copied in one call.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds whole lines (the logging layer writes each line whole, and a
    /// thread hands over its staged lines whole), or counts them dropped if
    /// they do not fit.
    pub(super) fn push(&self, lines: &[u8]) {
        let mut state = self.lock();
        if state.lines.len() + lines.len() > self.limit {
            drop(state);
            self.dropped.fetch_add(line_count(lines), Ordering::Relaxed);
            return;
        }
        state.lines.extend_from_slice(lines);
        let wake = state.lines.len() >= state.wake_at;
        if wake {
            state.wake_at = usize::MAX;
        }
        // Woken with the lock held, the writer would only wait for it.
        drop(state);
        if wake {
            self.ready.notify_one();
        }
    }

    /// Takes every line logged so far in exchange for `batch` (empty):
    /// waits for a first line, for a [`SWEEP`] at most, then, if `gather`,
    /// lets more gather for [`GATHER`] unless a [`BATCH`] comes sooner.
    /// `false` if there were none: the queue is closed and empty, or the
    /// wait passed (or was woken for nothing: the writer only sweeps again).
    fn take(&self, batch: &mut Vec<u8>, gather: bool) -> bool {
        let mut state = self.lock();
        if state.lines.is_empty() && !state.closed {
            state.wake_at = 1;
            state = self
                .ready
                .wait_timeout(state, SWEEP)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        if gather && !state.closed && !state.lines.is_empty() && state.lines.len() < BATCH {
            state.wake_at = BATCH;
            state = self
                .ready
                .wait_timeout(state, GATHER)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        state.wake_at = usize::MAX;
        std::mem::swap(&mut state.lines, batch);
        !batch.is_empty()
    }

    fn closed(&self) -> bool {
        self.lock().closed
    }

    /// Sweeps `stage` too from now on.
    pub(super) fn sweep_from_now_on(&self, stage: &Arc<Stage>) {
        self.stages_lock().push(Arc::downgrade(stage));
    }

    /// Takes what every thread has staged.
    fn sweep(&self) {
        self.stages_lock().retain(|stage| match stage.upgrade() {
            Some(stage) => {
                stage.hand_over(self);
                true
            }
            None => false,
        });
    }

    fn stages_lock(&self) -> MutexGuard<'_, Vec<Weak<Stage>>> {
        self.stages.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
    }
}

/// How many lines `lines` holds: every line ends in a line break.
fn line_count(lines: &[u8]) -> u64 {
    lines.iter().filter(|&&b| b == b'\n').count() as u64
}

/// The handle the logging layer writes lines through; see the
/// [module docs](self).
#[derive(Debug, Clone)]
pub(super) struct LogWriter(Arc<Queue>);

impl LogWriter {
    /// Stages the lines this thread logs from now on, until the guard is
    /// dropped; see [`super::staged`].
    pub(super) fn stage_here(&self) -> staged::Staging {
        staged::stage_here(&self.0)
    }

    /// Whether the writer thread is waiting for a first line.
    #[cfg(test)]
    pub(super) fn waiting_for_lines(&self) -> bool {
        self.0.lock().wake_at == 1
    }

    /// How many lines have been dropped so far.
    pub(super) fn dropped_lines(&self) -> u64 {
        self.0.dropped.load(Ordering::Relaxed)
    }

    /// Whether the last write to stderr failed.
    pub(super) fn failing(&self) -> bool {
        self.0.failing.load(Ordering::Relaxed)
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            queue: &self.0,
            urgent: false,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        LineWriter {
            queue: &self.0,
            urgent: *meta.level() <= Level::WARN,
        }
    }
}

/// Writes one line: staged, if this thread stages its lines, unless it is
/// a warning or an error, which goes to the queue at once, after the lines
/// staged before it.
#[derive(Debug)]
pub(super) struct LineWriter<'a> {
    queue: &'a Arc<Queue>,
    urgent: bool,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        if self.urgent {
            staged::hand_over();
            self.queue.push(line);
        } else if !staged::stage(self.queue, line) {
            self.queue.push(line);
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Stops the writer thread when dropped, once it has written what was
/// logged before (waiting a second at most).
#[derive(Debug)]
pub(super) struct WriterGuard {
    queue: Arc<Queue>,
    /// Disconnects when the writer thread ends.
    finished: mpsc::Receiver<()>,
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        self.queue.close();
        let _ = self.finished.recv_timeout(Duration::from_secs(1));
    }
}

/// Starts a thread that writes lines to `out`, holding at most `limit`
/// bytes of them while `out` is not taking them.
pub(super) fn log_writer(
    out: impl Write + Send + 'static,
    limit: usize,
) -> io::Result<(LogWriter, WriterGuard)> {
    let queue = Arc::new(Queue {
        state: Mutex::new(State {
            lines: Vec::new(),
            wake_at: usize::MAX,
            closed: false,
        }),
        ready: Condvar::new(),
        dropped: AtomicU64::new(0),
        failing: AtomicBool::new(false),
        limit,
        stages: Mutex::new(Vec::new()),
    });
    let (done, finished) = mpsc::channel::<()>();
    let writing = Arc::clone(&queue);
    thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || {
            write_lines(&writing, out);
            drop(done);
        })?;
    Ok((
        LogWriter(Arc::clone(&queue)),
        WriterGuard { queue, finished },
    ))
}

/// The writer thread: writes out whatever has been logged, until closed.
fn write_lines(queue: &Queue, mut out: impl Write) {
    let mut batch = Vec::new();
    let mut gather = false;
    loop {
        // Lines staged by a thread that has not handed them over: it is
        // busy, or stuck; or the logs are closing. Swept at least once a
        // [`SWEEP`], whether or not any thread staged when the writer last
        // looked: a thread may start staging while it waits.
        queue.sweep();
        if !queue.take(&mut batch, gather) {
            if queue.closed() {
                // What threads staged since the last sweep, then done.
                queue.sweep();
                if queue.lock().lines.is_empty() {
                    break;
                }
            }
            continue;
        }
        gather = batch.len() >= BUSY;
        let failed = out.write_all(&batch).and_then(|()| out.flush()).is_err();
        if failed {
            // Not knowing how much went out, count the batch as lost.
            queue
                .dropped
                .fetch_add(line_count(&batch), Ordering::Relaxed);
        }
        queue.failing.store(failed, Ordering::Relaxed);
        batch.clear();
        if batch.capacity() > KEEP {
            batch = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{
        super::sinks::{Broken, Stuck},
        *,
    };

    #[test]
    fn a_failing_sink_counts_its_lines_dropped() {
        let (writer, guard) = log_writer(Broken, 1 << 20).unwrap();
        writer.make_writer().write_all(b"one\ntwo\n").unwrap();
        writer.make_writer().write_all(b"three\n").unwrap();
        drop(guard);
        assert_eq!(writer.dropped_lines(), 3);
        assert!(writer.failing());
    }

    #[test]
    fn a_lone_line_is_written_while_the_writer_runs() {
        let sink = Stuck::default();
        sink.open();
        let (writer, _writing) = log_writer(sink.clone(), 1 << 20).unwrap();
        writer.make_writer().write_all(b"alone\n").unwrap();
        // No more lines and no close: the writer must wake for this one.
        assert_eq!(sink.taken_once(6), b"alone\n");
        writer.make_writer().write_all(b"later\n").unwrap();
        assert_eq!(sink.taken_once(12), b"alone\nlater\n");
        assert!(!writer.failing());
    }

    #[test]
    fn after_a_busy_batch_a_lone_line_still_comes_once_lines_have_gathered() {
        let sink = Stuck::default();
        sink.open();
        let (writer, _writing) = log_writer(sink.clone(), 1 << 20).unwrap();
        let busy = [b'x'; BUSY];
        writer.make_writer().write_all(&busy).unwrap();
        assert_eq!(sink.taken_once(BUSY).len(), BUSY);
        // The writer now lets lines gather, for a moment only.
        writer.make_writer().write_all(b"alone\n").unwrap();
        assert!(sink.taken_once(BUSY + 6).ends_with(b"alone\n"));
    }

    #[test]
    fn lines_logged_while_stderr_is_stuck_follow_once_it_takes_them() {
        let sink = Stuck::default();
        let (writer, _writing) = log_writer(sink.clone(), 1 << 20).unwrap();
        writer.make_writer().write_all(b"first\n").unwrap();
        writer.make_writer().write_all(b"second\n").unwrap();
        sink.open();
        assert_eq!(sink.taken_once(13), b"first\nsecond\n");
        assert_eq!(writer.dropped_lines(), 0);
    }
}
