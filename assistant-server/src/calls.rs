//! Counting the calls in flight, and noticing the ones a client abandons.
//!
//! Every call holds a [`Call`] for as long as it runs, however it ends:
//! finished, failed, or dropped because the client went away. The count is
//! observable, so shutdown, operators and tests can wait for it to reach
//! zero instead of guessing with sleeps.

use std::sync::Arc;

use tokio::sync::watch;
use tracing::info;

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
    /// Counts a new call from `client` (a name or an address, for the logs)
    /// until the returned [`Call`] is dropped.
    pub fn start(&self, client: impl Into<String>) -> Call {
        self.active.send_modify(|n| *n += 1);
        Call {
            active: Arc::clone(&self.active),
            client: client.into(),
            bytes_sent: 0,
            ended: false,
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

/// One call in flight.
///
/// Dropping it before [`Call::end`] means the transport dropped the call's
/// handler or stream: the client went away (cancelled, disconnected, or
/// timed out). That is logged as `Client went away: {client} after {n}
/// bytes`.
#[derive(Debug)]
pub struct Call {
    active: Arc<watch::Sender<usize>>,
    client: String,
    bytes_sent: u64,
    ended: bool,
}

impl Call {
    /// Counts `bytes` more of payload as handed to the transport.
    pub fn sent(&mut self, bytes: usize) {
        self.bytes_sent += bytes as u64;
    }

    /// Marks the call as ended by the server, not abandoned by the client.
    pub fn end(&mut self) {
        self.ended = true;
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if !self.ended {
            info!(
                "Client went away: {} after {} bytes",
                self.client, self.bytes_sent
            );
        }
        self.active.send_modify(|n| *n -= 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_calls_until_they_drop() {
        let calls = Calls::default();
        let mut first = calls.start("a");
        let second = calls.start("b");
        assert_eq!(calls.active(), 2);
        first.end();
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
