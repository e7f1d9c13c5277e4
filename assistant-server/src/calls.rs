//! Counting the calls in flight.
//!
//! Every call holds a [`CallGuard`] for as long as it runs, however it ends:
//! finished, failed, or dropped because the client went away. The count is
//! observable, so shutdown, operators and tests can wait for it to reach
//! zero instead of guessing with sleeps.

use std::sync::Arc;

use tokio::sync::watch;

/// A shared count of calls in flight. Cloning it shares the count.
#[derive(Debug, Clone)]
pub struct Calls {
    active: Arc<watch::Sender<usize>>,
}

impl Default for Calls {
    fn default() -> Self {
        Self {
            active: Arc::new(watch::channel(0).0),
        }
    }
}

impl Calls {
    /// Counts a new call until the returned guard is dropped.
    pub fn start(&self) -> CallGuard {
        self.active.send_modify(|n| *n += 1);
        CallGuard {
            active: Arc::clone(&self.active),
        }
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
}

/// Marks one call as running; dropping it marks the call as ended.
#[derive(Debug)]
pub struct CallGuard {
    active: Arc<watch::Sender<usize>>,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.active.send_modify(|n| *n -= 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_calls_until_their_guards_drop() {
        let calls = Calls::default();
        let first = calls.start();
        let second = calls.start();
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
