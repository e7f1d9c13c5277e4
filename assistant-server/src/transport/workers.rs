//! The threads that serve connections: one a core, each a single-threaded
//! tokio runtime, and each connection, with all its calls, served on one
//! of them.
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

use tokio::{net::TcpStream, runtime::Handle};
use tokio_util::sync::CancellationToken;

/// How long a thread's runtime waits, once told to stop, for work on its
/// blocking threads (a read stuck on a hung disk, say) before it goes.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// The threads, and which one takes the next connection. Dropping it
/// tells them to stop: each drops the tasks it still has, and goes.
#[derive(Debug)]
pub(super) struct Workers {
    handles: Vec<Handle>,
    next: AtomicUsize,
    stop: CancellationToken,
}

impl Workers {
    /// Starts `count` threads (at least one).
    pub(super) fn start(count: usize) -> io::Result<Self> {
        let stop = CancellationToken::new();
        let mut handles = Vec::with_capacity(count.max(1));
        for i in 0..count.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(runtime.handle().clone());
            let stopped = stop.clone();
            // Logs go where the starting thread's go: a server started
            // under a scoped subscriber (as tests do) logs to it.
            let logs = tracing::dispatcher::get_default(tracing::Dispatch::clone);
            let started = std::thread::Builder::new()
                .name(format!("connections-{i}"))
                .spawn(move || {
                    tracing::dispatcher::with_default(&logs, || {
                        runtime.block_on(stopped.cancelled());
                        runtime.shutdown_timeout(STOP_GRACE);
                    });
                });
            if let Err(err) = started {
                // The threads already started stop as `stop` is dropped.
                stop.cancel();
                return Err(err);
            }
        }
        Ok(Self {
            handles,
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
        &self.handles[i % self.handles.len()]
    }

    /// Moves `tcp` to `worker`'s runtime, whose thread then waits on its
    /// readiness.
    pub(super) fn adopt(worker: &Handle, tcp: TcpStream) -> io::Result<TcpStream> {
        let tcp = tcp.into_std()?;
        let _in_worker = worker.enter();
        TcpStream::from_std(tcp)
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
}
