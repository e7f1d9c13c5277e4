//! The threads that serve the gRPC port's connections: one a core, or as
//! many as `--threads` says, each a single-threaded tokio runtime, and each
//! connection, with all its calls, served on one of them. (The web
//! listener's connections, and everything else, run on the main runtime.)
//!
//! A connection's task and its calls' tasks wake one another at every
//! frame: a call's frame wakes the connection to write it, and room in the
//! window wakes the call. On one multi-threaded runtime those tasks moved
//! between threads, and every move woke a sleeping thread (a futex or an
//! eventfd write, and, on a virtual machine, an interrupt to another core).
//! On a thread of its own, a connection's tasks only take turns; and a
//! paced story's messages, which come due at one tick of the timer on one
//! thread, are written by their connection in one system call, not one
//! each. Connections are dealt to the threads in turn, so many connections
//! use every core; one connection uses one.
//!
//! Nothing a call does per message or per call may wake a task on another
//! thread, or that gain is lost: the count of calls in flight, for one,
//! announces its changes only to those who wait on them (`call::count`).
//! Its log lines, too, are staged on the thread and handed to the log
//! writer a few kilobytes at a time, and before the thread waits for work
//! (`ops::logging::stage_lines`).
//!
//! Measured against one multi-threaded runtime, alternating (see
//! docs/BENCHMARKS.md): 10,000 paced calls took less than half the CPU
//! time and about a quarter of the `sendto` calls; unpaced, a call took
//! 12–18% less CPU, and at concurrency 1 finished 17–25% sooner.

use std::{
    io,
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use tokio::{net::TcpStream, runtime::Handle, time::Instant};
use tokio_util::sync::CancellationToken;

/// How long a thread's runtime waits, once told to stop, for work on its
/// blocking threads (a read stuck on a hung disk, say) before it goes.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// Blocking threads (the story library's file reads) that the connection
/// threads' runtimes may start between them: tokio's default for one
/// runtime, as when every connection was served on one.
const BLOCKING_THREADS: usize = 512;

/// The threads, and which one takes the next connection. Dropping it
/// tells them to stop: each drops the tasks it still has, and goes;
/// [`Workers::stop`] also waits for that.
#[derive(Debug)]
pub(super) struct Workers {
    threads: Vec<Thread>,
    next: AtomicUsize,
    stop: CancellationToken,
}

#[derive(Debug)]
struct Thread {
    handle: Handle,
    /// Cancelled when the thread has ended.
    done: CancellationToken,
}

impl Workers {
    /// Starts `count` threads (at least one).
    pub(super) fn start(count: usize) -> io::Result<Self> {
        let count = count.max(1);
        let stop = CancellationToken::new();
        // If a thread cannot start, the ones started already stop.
        let stop_started = stop.clone().drop_guard();
        // Logs go where the starting thread's go: a server started under a
        // scoped subscriber (as tests do) logs to it.
        let logs = tracing::dispatcher::get_default(tracing::Dispatch::clone);
        let mut threads = Vec::with_capacity(count);
        for i in 0..count {
            let (started, handle) = std::sync::mpsc::sync_channel(1);
            let stopped = stop.clone();
            let done = CancellationToken::new();
            let ended = done.clone().drop_guard();
            let logs = logs.clone();
            // The runtime is built on its thread, and dropped there: a
            // runtime may not be dropped on a thread that runs async code,
            // as this one may.
            std::thread::Builder::new()
                .name(format!("connections-{i}"))
                .spawn(move || {
                    let _ended = ended;
                    // Dropped before `_ended`: the thread's last lines are
                    // with the log writer before `stop` returns.
                    let _staging = crate::ops::logging::stage_lines();
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .on_thread_park(crate::ops::logging::hand_over_staged_lines)
                        .max_blocking_threads((BLOCKING_THREADS / count).max(1))
                        .build();
                    let runtime = match runtime {
                        Ok(runtime) => runtime,
                        Err(err) => {
                            let _ = started.send(Err(err));
                            return;
                        }
                    };
                    let _ = started.send(Ok(runtime.handle().clone()));
                    tracing::dispatcher::with_default(&logs, || {
                        runtime.block_on(stopped.cancelled());
                        runtime.shutdown_timeout(STOP_GRACE);
                    });
                })?;
            let handle = handle
                .recv()
                .map_err(|_| io::Error::other("a connection thread ended as it started"))??;
            threads.push(Thread { handle, done });
        }
        stop_started.disarm();
        Ok(Self {
            threads,
            next: AtomicUsize::new(0),
            stop,
        })
    }

    /// As many threads as the machine has cores, as tokio's own runtime
    /// has workers.
    pub(super) fn per_core() -> io::Result<Self> {
        Self::start(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// The thread to serve the next connection on.
    pub(super) fn next(&self) -> &Handle {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        &self.threads[i % self.threads.len()].handle
    }

    /// Moves `tcp` to `worker`'s runtime, whose thread then waits on its
    /// readiness.
    pub(super) fn adopt(worker: &Handle, tcp: TcpStream) -> io::Result<TcpStream> {
        let tcp = tcp.into_std()?;
        let _in_worker = worker.enter();
        TcpStream::from_std(tcp)
    }

    /// Tells the threads to stop, and waits until they have, or until
    /// `STOP_GRACE` past the wait on their blocking work; false if one is
    /// still running then. Tasks still there are dropped, and so log how
    /// their calls ended before this returns.
    pub(super) async fn stop(&self) -> bool {
        self.stop.cancel();
        let until = Instant::now() + STOP_GRACE * 2;
        for thread in &self.threads {
            if tokio::time::timeout_at(until, thread.done.cancelled())
                .await
                .is_err()
            {
                return false;
            }
        }
        true
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        // Not joined: the last connection may end on one of the threads,
        // and drop this there.
        self.stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_are_dealt_to_the_threads_in_turn_and_each_keeps_its_tasks() {
        let workers = Workers::start(2).expect("threads");
        let mut names = Vec::new();
        for _ in 0..4 {
            let handle = workers.next().clone();
            // A task spawned from one of the threads' tasks stays there.
            let name = handle
                .spawn(async {
                    let outer = std::thread::current().name().map(String::from);
                    let inner =
                        tokio::spawn(async { std::thread::current().name().map(String::from) })
                            .await
                            .expect("inner task");
                    assert_eq!(outer, inner);
                    outer
                })
                .await
                .expect("task");
            names.push(name.expect("a named thread"));
        }
        assert_eq!(
            names,
            [
                "connections-0",
                "connections-1",
                "connections-0",
                "connections-1"
            ]
        );
    }

    #[tokio::test]
    async fn dropped_they_stop_and_drop_their_tasks() {
        let workers = Workers::start(1).expect("threads");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = workers.next().clone();
        // Never finishes on its own; its end drops `tx`.
        handle.spawn(async move {
            let _tx = tx;
            std::future::pending::<()>().await;
        });
        drop(workers);
        assert!(rx.await.is_err(), "the task was dropped");
    }

    #[tokio::test]
    async fn stopped_they_drop_their_tasks_before_the_wait_ends() {
        let workers = Workers::start(2).expect("threads");
        let mut dropped = Vec::new();
        for _ in 0..2 {
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            workers.next().spawn(async move {
                let _tx = tx;
                std::future::pending::<()>().await;
            });
            dropped.push(rx);
        }
        assert!(workers.stop().await, "both threads stopped");
        for mut rx in dropped {
            // Already dropped: no waiting.
            assert_eq!(
                rx.try_recv(),
                Err(tokio::sync::oneshot::error::TryRecvError::Closed)
            );
        }
    }
}
