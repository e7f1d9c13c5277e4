//! The calls of one connection: its share of the server's, how many of
//! them wait for their request, and how many ended before it arrived.

use std::sync::{
    Arc,
    atomic::{AtomicU64, AtomicUsize, Ordering},
};

/// The calls of one connection: how many are running, how many of them
/// wait for their request (a full server's sign of a connection that
/// holds places it does not use), and how many ended before their request
/// arrived (for the line logged when it closes).
#[derive(Debug, Default)]
pub(crate) struct ConnectionCalls {
    active: AtomicUsize,
    awaiting_request: AtomicUsize,
    ended_before_request: AtomicU64,
}

impl ConnectionCalls {
    /// Takes a place among this connection's calls, unless `max` are
    /// running already.
    pub(crate) fn enter(self: &Arc<Self>, max: usize) -> Option<ConnectionSeat> {
        self.active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |active| {
                (active < max).then_some(active + 1)
            })
            .ok()
            .map(|_| ConnectionSeat(Arc::clone(self)))
    }

    /// How many calls are running on the connection.
    pub(crate) fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// How many of the connection's calls wait for their request.
    pub(crate) fn awaiting_request(&self) -> usize {
        self.awaiting_request.load(Ordering::Acquire)
    }

    /// Counts a call that waits for its request, until
    /// [`has_request`](Self::has_request).
    pub(super) fn awaits_request(&self) {
        self.awaiting_request.fetch_add(1, Ordering::AcqRel);
    }

    /// A call counted by [`awaits_request`](Self::awaits_request) waits no
    /// more.
    pub(super) fn has_request(&self) {
        self.awaiting_request.fetch_sub(1, Ordering::AcqRel);
    }

    /// Counts a call that ended before its request arrived.
    pub(crate) fn ended_before_request(&self) {
        self.ended_before_request.fetch_add(1, Ordering::Relaxed);
    }

    /// How many calls ended before their request arrived.
    pub(crate) fn count_ended_before_request(&self) -> u64 {
        self.ended_before_request.load(Ordering::Relaxed)
    }
}

/// Holds one place among a connection's calls until dropped.
#[derive(Debug)]
pub(crate) struct ConnectionSeat(Arc<ConnectionCalls>);

impl ConnectionSeat {
    /// The connection's calls.
    pub(crate) fn connection(&self) -> &Arc<ConnectionCalls> {
        &self.0
    }
}

impl Drop for ConnectionSeat {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_takes_no_more_than_its_share() {
        let connection = Arc::new(ConnectionCalls::default());
        let first = connection.enter(2).unwrap();
        let _second = connection.enter(2).unwrap();
        assert!(connection.enter(2).is_none());
        drop(first);
        assert!(connection.enter(2).is_some());
    }
}
