//! What a handler tells the call layer about its call.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

/// What a handler tells the server about its call: who the caller is, and
/// how much it has sent them. The call layer puts one in each request's
/// extensions, and logs from it when the call ends.
#[derive(Debug, Clone, Default)]
pub(crate) struct CallContext {
    inner: Arc<ContextInner>,
}

#[derive(Debug, Default)]
struct ContextInner {
    peer: OnceLock<SocketAddr>,
    user: Mutex<Option<String>>,
    payload_bytes: AtomicU64,
    /// Whether the first request message is in.
    request_arrived: AtomicBool,
    /// Whether the client reset the call or its connection ended.
    client_gone: AtomicBool,
}

impl CallContext {
    /// The context of `request`; a detached one if the request did not come
    /// through the call layer (as in a unit test of a handler).
    pub(crate) fn of<T>(request: &tonic::Request<T>) -> Self {
        request
            .extensions()
            .get::<Self>()
            .cloned()
            .unwrap_or_default()
    }

    /// Names the caller, for the logs: the call's span gets a `user` field.
    pub(crate) fn identify(&self, user: &str) {
        tracing::Span::current().record("user", tracing::field::display(user));
        *self.inner.user.lock().unwrap_or_else(|e| e.into_inner()) = Some(user.to_owned());
    }

    /// Counts `bytes` more of payload (story text, reply text) as sent.
    pub(crate) fn sent(&self, bytes: usize) {
        self.inner
            .payload_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// The first request message is in: the call is a real one.
    pub(super) fn request_arrived(&self) {
        self.inner.request_arrived.store(true, Ordering::Relaxed);
    }

    /// Whether the first request message came in.
    pub(super) fn has_request(&self) -> bool {
        self.inner.request_arrived.load(Ordering::Relaxed)
    }

    /// The client reset the call, or its connection ended.
    pub(super) fn client_gone(&self) {
        self.inner.client_gone.store(true, Ordering::Relaxed);
    }

    /// Whether the client left before the call ended.
    pub(super) fn is_client_gone(&self) -> bool {
        self.inner.client_gone.load(Ordering::Relaxed)
    }

    pub(super) fn identify_peer(&self, peer: SocketAddr) {
        let _ = self.inner.peer.set(peer);
    }

    /// The caller as the logs name them: the user if known, else the peer
    /// address.
    pub(super) fn client(&self) -> String {
        if let Some(user) = &*self.inner.user.lock().unwrap_or_else(|e| e.into_inner()) {
            return user.clone();
        }
        self.inner
            .peer
            .get()
            .map_or_else(|| "unknown client".to_owned(), SocketAddr::to_string)
    }

    /// The payload bytes counted by [`CallContext::sent`].
    pub(super) fn payload_bytes(&self) -> u64 {
        self.inner.payload_bytes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
