//! Counting the calls in flight, and what a handler tells the server about
//! its call.
//!
//! [`Calls`] counts application calls (not health checks or reflection)
//! from the moment the server accepts them until their last byte is sent or
//! the client leaves. The count is observable, so shutdown, operators and
//! tests can wait for it to reach zero instead of guessing with sleeps.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
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

/// What a handler tells the server about its call: who the caller is, and
/// how much it has sent them. The server's call layer puts one in each
/// request's extensions, and logs from it when the call ends.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    inner: Arc<ContextInner>,
}

#[derive(Debug, Default)]
struct ContextInner {
    peer: OnceLock<SocketAddr>,
    user: Mutex<Option<String>>,
    payload_bytes: AtomicU64,
}

impl CallContext {
    /// The context of `request`; a detached one if the request did not come
    /// through the call layer (as in a unit test of a handler).
    pub fn of<T>(request: &tonic::Request<T>) -> Self {
        request
            .extensions()
            .get::<Self>()
            .cloned()
            .unwrap_or_default()
    }

    /// Names the caller, for the logs: the call's span gets a `user` field.
    pub fn identify(&self, user: &str) {
        tracing::Span::current().record("user", tracing::field::display(user));
        *self.inner.user.lock().unwrap_or_else(|e| e.into_inner()) = Some(user.to_owned());
    }

    /// Counts `bytes` more of payload (story text, reply text) as sent.
    pub fn sent(&self, bytes: usize) {
        self.inner
            .payload_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn identify_peer(&self, peer: SocketAddr) {
        let _ = self.inner.peer.set(peer);
    }

    /// The caller as the logs name them: the user if known, else the peer
    /// address.
    pub(crate) fn client(&self) -> String {
        if let Some(user) = &*self.inner.user.lock().unwrap_or_else(|e| e.into_inner()) {
            return user.clone();
        }
        self.inner
            .peer
            .get()
            .map_or_else(|| "unknown client".to_owned(), SocketAddr::to_string)
    }

    /// The payload bytes counted by [`CallContext::sent`].
    pub(crate) fn payload_bytes(&self) -> u64 {
        self.inner.payload_bytes.load(Ordering::Relaxed)
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

    #[test]
    fn the_client_is_the_user_once_known_else_the_peer() {
        let context = CallContext::default();
        assert_eq!(context.client(), "unknown client");
        context.identify_peer("127.0.0.1:9".parse().unwrap());
        assert_eq!(context.client(), "127.0.0.1:9");
        context.identify("Peter S");
        assert_eq!(context.client(), "Peter S");
    }
}
