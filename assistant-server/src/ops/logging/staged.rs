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
//! A thread's lines stay in the order it logged them, and so do a call's:
//! a call is served on its connection's thread alone. Lines of different
//! threads are written in the order they were handed over, so they may
//! be out of time order by up to one thread's stage.
//!
//! A thread busy without pause, and logging nothing more, holds the few
//! lines it has staged until it waits for work; a warning never waits.
//!
//! Measured with h2load against a server logging at INFO to a file,
//! alternating: CPU per call 2–3% lower on a quiet machine, and a quarter
//! lower in an hour when the machine was slow and the lock's cost with it.

use std::{cell::RefCell, sync::Arc};

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

/// A thread's staged lines, and the queue they go to.
struct Staged {
    queue: Arc<Queue>,
    lines: Vec<u8>,
}

impl Staged {
    fn hand_over(&mut self) {
        if !self.lines.is_empty() {
            self.queue.push(&self.lines);
            self.lines.clear();
            if self.lines.capacity() > STAGE_KEPT {
                self.lines = Vec::with_capacity(STAGE);
            }
        }
    }
}

impl Drop for Staged {
    /// Also when the thread ends without dropping its [`Staging`].
    fn drop(&mut self) {
        self.hand_over();
    }
}

/// Stages the current thread's lines for `queue` while held; dropping it
/// hands over what is staged, and stops staging.
#[derive(Debug)]
#[must_use = "lines are staged only while this is held"]
pub(crate) struct Staging(());

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
    let previous = STAGED.try_with(|staged| {
        let mut staged = staged.try_borrow_mut().ok()?;
        staged.replace(Staged {
            queue: Arc::clone(queue),
            lines: Vec::with_capacity(STAGE),
        })
    });
    // Lines staged for another queue go there first.
    drop(previous);
    Staging(())
}

/// Stages `line` if this thread stages its lines for `queue`, handing the
/// stage over once it is full; `false` if the caller must push it.
pub(super) fn stage(queue: &Arc<Queue>, line: &[u8]) -> bool {
    STAGED
        .try_with(|staged| {
            // Taken only if a push logged, which it does not.
            let Ok(mut staged) = staged.try_borrow_mut() else {
                return false;
            };
            match staged.as_mut() {
                Some(staged) if Arc::ptr_eq(&staged.queue, queue) => {
                    staged.lines.extend_from_slice(line);
                    if staged.lines.len() >= STAGE {
                        staged.hand_over();
                    }
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
        if let Ok(mut staged) = staged.try_borrow_mut()
            && let Some(staged) = staged.as_mut()
        {
            staged.hand_over();
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
        // reached the queue beyond the first few would be dropped.
        let sink = Stuck::default();
        let (writer, _writing) = log_writer(sink.clone(), 32).unwrap();
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
        // Pushed one by one: the writer thread takes the queue once (three
        // lines at most) and blocks, three more fit, the rest are dropped.
        for _ in 0..10 {
            writer.make_writer().write_all(b"unstaged\n").unwrap();
        }
        assert!(
            writer.dropped_lines() > 50,
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
