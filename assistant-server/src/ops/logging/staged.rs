//! Lines staged on the thread that logs them, and handed to the log
//! writer's queue ([`super::writer`]) a few kilobytes at a time.
//!
//! A story call logs a line per chunk, on its connection's thread
//! (`transport::workers`). With each line taken to the shared queue under
//! its lock, two connection threads logging at once took turns at that
//! lock and at the buffer behind it, and moved both from core to core
//! every few lines. A connection thread stages its lines instead, and
//! hands them over:
//!
//! - once it has [`STAGE`] bytes of them, about 50 story lines;
//! - when it is about to wait for work (tokio's `on_thread_park`), so a
//!   line logged on an idle server is written at once, as before;
//! - before a warning or an error, which goes to the queue as it is
//!   logged;
//! - when the thread stops staging, or ends.
//!
//! And the writer thread sweeps every stage each time it wakes, and at
//! least once a second, and once more when the logs are closed: a thread
//! busy without pause (tokio does not call `on_thread_park` while work is
//! pending), or stuck, does not hold its last lines for longer.
//!
//! A thread's lines stay in the order it logged them, and so do a call's:
//! a call is served on its connection's thread alone. Lines of different
//! threads are written in the order they were handed over, so they may
//! be out of time order by up to one thread's stage, or a second.
//!
//! Measured with h2load against a server logging at INFO to a file,
//! alternating: CPU per call 2–3% lower on a quiet machine, and a quarter
//! lower in an hour when the machine was slow and the lock's cost with it.
//! Each stage has a lock of its own, for the sweep: taken by its thread
//! alone but for a sweep, it cost about 1% of a call (8 alternating
//! rounds, 99.0 against 98.5 µs).

use std::{
    cell::RefCell,
    marker::PhantomData,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use super::writer::Queue;

/// How many bytes of lines a thread stages before it hands them over.
const STAGE: usize = 4 * 1024;

/// The most a thread's stage keeps allocated between lines: a rare long
/// line should not stay with the thread.
const STAGE_KEPT: usize = 4 * STAGE;

thread_local! {
    /// This thread's staged lines, if it stages them.
    static STAGED: RefCell<Option<Staged>> = const { RefCell::new(None) };
}

/// A thread's staged lines. Its thread adds to them; the writer thread's
/// sweep takes them too, so that a thread that is busy or stuck does not
/// hold its lines for good. Its lock stays with its thread but for a
/// sweep, so it costs a line far less than the queue's lock did.
#[derive(Debug, Default)]
pub(super) struct Stage(Mutex<Vec<u8>>);

impl Stage {
    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        // Nothing panics holding it.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `line`, and hands the stage over to `queue` once it is full.
    fn add(&self, queue: &Queue, line: &[u8]) {
        let mut lines = self.lock();
        lines.extend_from_slice(line);
        if lines.len() >= STAGE {
            hand_over_lines(&mut lines, queue);
        }
    }

    /// Hands whatever is staged to `queue`.
    pub(super) fn hand_over(&self, queue: &Queue) {
        hand_over_lines(&mut self.lock(), queue);
    }
}

fn hand_over_lines(lines: &mut Vec<u8>, queue: &Queue) {
    if lines.is_empty() {
        return;
    }
    queue.push(lines);
    lines.clear();
    if lines.capacity() > STAGE_KEPT {
        *lines = Vec::with_capacity(STAGE);
    }
}

/// The current thread's stage, and the queue it goes to.
struct Staged {
    queue: Arc<Queue>,
    stage: Arc<Stage>,
}

impl Drop for Staged {
    /// Also when the thread ends without dropping its [`Staging`].
    fn drop(&mut self) {
        self.stage.hand_over(&self.queue);
    }
}

/// Stages the current thread's lines while held; dropping it hands over
/// what is staged, and stops staging. Held by the thread it stages for.
#[derive(Debug)]
#[must_use = "lines are staged only while this is held"]
pub(crate) struct Staging(PhantomData<*const ()>);

impl Drop for Staging {
    fn drop(&mut self) {
        // The thread-local is gone only if the thread is ending, and then
        // it has handed its lines over itself.
        let staged = STAGED.try_with(|staged| staged.try_borrow_mut().ok()?.take());
        drop(staged);
    }
}

/// Starts staging the current thread's lines for `queue`.
pub(super) fn stage_here(queue: &Arc<Queue>) -> Staging {
    let stage = Arc::new(Stage::default());
    queue.sweep_from_now_on(&stage);
    let previous = STAGED.try_with(|staged| {
        let mut staged = staged.try_borrow_mut().ok()?;
        staged.replace(Staged {
            queue: Arc::clone(queue),
            stage,
        })
    });
    // Lines staged for another queue go there first.
    drop(previous);
    Staging(PhantomData)
}

/// Stages `line` if this thread stages its lines for `queue`, handing the
/// stage over once it is full; `false` if the caller must push it.
pub(super) fn stage(queue: &Arc<Queue>, line: &[u8]) -> bool {
    STAGED
        .try_with(|staged| {
            // Taken only if a push logged, which it does not.
            let Ok(staged) = staged.try_borrow() else {
                return false;
            };
            match staged.as_ref() {
                Some(staged) if Arc::ptr_eq(&staged.queue, queue) => {
                    staged.stage.add(queue, line);
                    true
                }
                _ => false,
            }
        })
        .unwrap_or(false)
}

/// Hands the current thread's staged lines to their queue, if it has any.
pub(crate) fn hand_over() {
    let _ = STAGED.try_with(|staged| {
        if let Ok(staged) = staged.try_borrow()
            && let Some(staged) = staged.as_ref()
        {
            staged.stage.hand_over(&staged.queue);
        }
    });
}

#[cfg(test)]
mod tests {
    use std::{io::Write, thread};

    use tracing_subscriber::fmt::MakeWriter;

    use super::{
        super::{sinks::Stuck, writer::log_writer},
        *,
    };

    #[test]
    fn staged_lines_wait_for_the_hand_over_and_then_go_whole() {
        // Room for four lines, and a sink that takes none: every line that
        // reached the queue beyond the first few would be dropped. The
        // writer thread takes the first line and blocks on it, so it
        // sweeps no stage.
        let sink = Stuck::default();
        let (writer, _writing) = log_writer(sink.clone(), 32).unwrap();
        writer.make_writer().write_all(b"first\n").unwrap();
        while sink.waiting() == 0 {
            thread::yield_now();
        }
        let staging = writer.stage_here();
        for line in 0..50 {
            writer
                .make_writer()
                .write_all(format!("line {line:02}\n").as_bytes())
                .unwrap();
        }
        assert_eq!(writer.dropped_lines(), 0, "staged, not pushed");
        // 400 bytes handed over at once do not fit: all 50 are counted.
        hand_over();
        assert_eq!(writer.dropped_lines(), 50);
        drop(staging);
        // Pushed one by one: three fit, the rest are dropped.
        for _ in 0..10 {
            writer.make_writer().write_all(b"unstaged\n").unwrap();
        }
        assert_eq!(
            writer.dropped_lines(),
            57,
            "no longer staged once the guard is dropped"
        );
        sink.open();
    }

    #[test]
    fn a_thread_stages_only_for_its_own_queue() {
        let (writer, _writing) = log_writer(Stuck::default(), 1 << 20).unwrap();
        let _staging = writer.stage_here();
        let other = Stuck::default();
        other.open();
        let (to_other, _other_writing) = log_writer(other.clone(), 1 << 20).unwrap();
        writeln!(to_other.make_writer(), "elsewhere").unwrap();
        assert_eq!(other.taken_once(10), b"elsewhere\n");
    }

    /// The writer's own test of many threads, too: the unstaged threads
    /// push every line to it.
    #[test]
    fn staged_and_unstaged_threads_each_keep_their_order_and_lose_nothing() {
        let sink = Stuck::default();
        sink.open();
        let (writer, guard) = log_writer(sink.clone(), 1 << 20).unwrap();
        thread::scope(|s| {
            for t in 0..4 {
                let writer = writer.clone();
                s.spawn(move || {
                    // Half the threads stage, through several hand-overs.
                    let _staging = (t % 2 == 0).then(|| writer.stage_here());
                    for n in 0..1000 {
                        writer
                            .make_writer()
                            .write_all(format!("thread {t} line {n}\n").as_bytes())
                            .unwrap();
                    }
                });
            }
        });
        drop(guard);
        let text = String::from_utf8(sink.taken()).unwrap();
        let mut next = [0; 4];
        for line in text.lines() {
            let (t, n) = line
                .strip_prefix("thread ")
                .and_then(|rest| rest.split_once(" line "))
                .unwrap_or_else(|| panic!("not a whole line: {line:?}"));
            let t: usize = t.parse().unwrap();
            assert_eq!(n.parse::<usize>().unwrap(), next[t], "{line}");
            next[t] += 1;
        }
        assert_eq!(next, [1000; 4], "every line written, by the guard's drop");
        assert_eq!(writer.dropped_lines(), 0);
    }

    #[test]
    fn a_warning_goes_at_once_after_the_lines_staged_before_it() {
        let sink = Stuck::default();
        sink.open();
        let (writer, _writing) = log_writer(sink.clone(), 1 << 20).unwrap();
        let _staging = writer.stage_here();
        let subscriber = tracing_subscriber::fmt()
            .without_time()
            .with_ansi(false)
            .with_target(false)
            .with_writer(writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("staged");
            tracing::warn!("at once");
        });
        // Nothing hands the stage over but the warning.
        let said = sink.taken_once(27);
        assert_eq!(
            String::from_utf8(said).unwrap(),
            " INFO staged\n WARN at once\n"
        );
    }

    #[test]
    fn lines_a_busy_thread_staged_are_swept_up() {
        let sink = Stuck::default();
        sink.open();
        let (writer, _writing) = log_writer(sink.clone(), 1 << 20).unwrap();
        // Staged while the writer thread waits, and never handed over by
        // this thread: only a timed sweep can take it.
        while !writer.waiting_for_lines() {
            thread::yield_now();
        }
        let _staging = writer.stage_here();
        writer.make_writer().write_all(b"busy\n").unwrap();
        assert_eq!(sink.taken_once(5), b"busy\n");
    }

    #[test]
    fn closing_the_logs_sweeps_up_a_stuck_threads_lines() {
        let sink = Stuck::default();
        sink.open();
        let (writer, writing) = log_writer(sink.clone(), 1 << 20).unwrap();
        // Staged while the writer thread waits, after its last sweep: only
        // the sweep at close can take it.
        while !writer.waiting_for_lines() {
            thread::yield_now();
        }
        let _staging = writer.stage_here();
        writer.make_writer().write_all(b"last words\n").unwrap();
        drop(writing);
        assert_eq!(sink.taken(), b"last words\n");
    }

    #[test]
    fn a_thread_that_ends_staging_hands_its_lines_over() {
        let sink = Stuck::default();
        sink.open();
        let (writer, _writing) = log_writer(sink.clone(), 1 << 20).unwrap();
        thread::scope(|s| {
            s.spawn(|| {
                // Never dropped: the thread's end hands the lines over.
                std::mem::forget(writer.stage_here());
                writeln!(writer.make_writer(), "last words").unwrap();
            });
        });
        assert_eq!(sink.taken_once(11), b"last words\n");
    }
}
