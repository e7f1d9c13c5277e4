//! Counting the calls in flight.
//!
//! [`Calls`] counts application calls (not health checks or reflection)
//! from the moment the server accepts them until their last byte is sent or
//! the client leaves. The count is observable, so shutdown, operators and
//! tests can wait for it to reach zero instead of guessing with sleeps.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use tokio::sync::watch;

/// A shared count of calls in flight. Cloning it shares the count.
#[derive(Debug, Clone)]
pub struct Calls {
    active: Arc<watch::Sender<usize>>,
    ended_by_shutdown: Arc<AtomicU64>,
}

impl Default for Calls {
    fn default() -> Self {
        Self {
            active: Arc::new(watch::channel(0).0),
            ended_by_shutdown: Arc::default(),
        }
    }
}

impl Calls {
    /// Counts a new call, unless `max` calls are running already. The call
    /// counts until the returned gauge is dropped.
    pub(crate) fn enter(&self, max: usize) -> Option<Gauge> {
        let entered = self.active.send_if_modified(|active| {
            if *active >= max {
                return false;
            }
            *active += 1;
            true
        });
        entered.then(|| Gauge {
            active: Arc::clone(&self.active),
        })
    }

    /// How many calls are running now.
    pub fn active(&self) -> usize {
        *self.active.borrow()
    }

    /// Waits until no call is running.
    pub async fn idle(&self) {
        self.wait_for(|active| active == 0).await;
    }

    /// Waits until the number of calls running satisfies `ready`.
    pub async fn wait_for(&self, mut ready: impl FnMut(usize) -> bool) {
        let mut rx = self.active.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = rx.wait_for(|active| ready(*active)).await;
    }

    /// How many calls shutdown has ended, rather than let finish.
    pub fn ended_by_shutdown(&self) -> u64 {
        self.ended_by_shutdown.load(Ordering::Relaxed)
    }

    pub(crate) fn count_ended_by_shutdown(&self) {
        self.ended_by_shutdown.fetch_add(1, Ordering::Relaxed);
    }
}

/// Holds one place in the count of [`Calls`] until dropped.
#[derive(Debug)]
pub(crate) struct Gauge {
    active: Arc<watch::Sender<usize>>,
}

impl Drop for Gauge {
    fn drop(&mut self) {
        self.active.send_modify(|active| *active -= 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_calls_up_to_a_cap_until_their_gauges_drop() {
        let calls = Calls::default();
        let first = calls.enter(2).unwrap();
        let second = calls.enter(2).unwrap();
        assert!(calls.enter(2).is_none(), "a third call is over the cap");
        assert_eq!(calls.active(), 2);
        drop(first);
        assert_eq!(calls.active(), 1);

        let waiter = tokio::spawn({
            let calls = calls.clone();
            async move { calls.idle().await }
        });
        drop(second);
        waiter.await.unwrap();
        assert_eq!(calls.active(), 0);
    }
}
