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

use tokio::{sync::watch, time::Instant};
use tokio_util::sync::CancellationToken;

use super::{
    connection::ConnectionCalls,
    count::Count,
    room::{AwaitingRequest, Room, StalledGuard},
};

/// A shared count of calls in flight. Cloning it shares the count.
#[derive(Debug, Clone, Default)]
pub struct Calls {
    active: Arc<Count>,
    /// Calls that have ended, however: the server's total so far.
    ended: Arc<AtomicU64>,
    ended_by_shutdown: Arc<AtomicU64>,
    /// The calls a full server may end to make room for a new one.
    room: Room,
}

impl Calls {
    /// Counts a new call, unless `max` calls are running already. The call
    /// counts until the returned gauge is dropped.
    pub(crate) fn enter(&self, max: usize) -> Option<Gauge> {
        self.active.add_below(max).then(|| Gauge {
            active: Arc::clone(&self.active),
        })
    }

    /// Counts a new call even past `max`, if another call can be ended to
    /// make room; the count runs over until it has. The one told to end is
    /// a call whose request has not come or, failing that, one stalled on
    /// a client that does not read, as [`Room::admit`] chooses, weighing
    /// the call's connection against `entering`, the new call's.
    ///
    /// The new call, `id`, is registered as waiting for its request, since
    /// `now`, before another can look for room: under the same lock, so
    /// that no call is ever counted and yet out of reach.
    pub(crate) fn enter_making_room(
        &self,
        max: usize,
        entering: Option<&Arc<ConnectionCalls>>,
        id: u64,
        now: Instant,
    ) -> Option<(Gauge, AwaitingRequest)> {
        self.room.admit(
            id,
            now,
            entering,
            || self.enter(max),
            || {
                self.active.add();
                Gauge {
                    active: Arc::clone(&self.active),
                }
            },
        )
    }

    /// Registers call `call` of `connection` as stalled on its client, so
    /// that a full server may end it to make room; see [`Room::stalled`].
    pub(crate) fn stalled(
        &self,
        connection: Arc<ConnectionCalls>,
        call: u64,
        place_taken: &CancellationToken,
    ) -> StalledGuard {
        self.room.stalled(connection, call, place_taken)
    }

    /// How many calls wait now for a client that is not reading.
    pub(crate) fn stalled_now(&self) -> usize {
        self.room.stalled_now()
    }

    /// How many calls are running now.
    pub fn active(&self) -> usize {
        self.active.get()
    }

    /// Waits until no call is running.
    pub async fn idle(&self) {
        self.wait_for(|active| active == 0).await;
    }

    /// Waits until the number of calls running satisfies `ready`.
    pub async fn wait_for(&self, ready: impl FnMut(usize) -> bool) {
        self.active.wait_for(ready).await;
    }

    /// Follows whether the server is full: true from `full_at` calls in
    /// flight until fewer than `again_below` are. Unlike
    /// [`wait_for`](Self::wait_for), it is told only of those two changes,
    /// not of every call.
    pub(crate) fn fullness(&self, full_at: usize, again_below: usize) -> watch::Receiver<bool> {
        self.active.fullness(full_at, again_below)
    }

    /// How many calls have ended, however they ended. Calls whose request
    /// never arrived are not counted: no work of theirs began.
    pub fn ended(&self) -> u64 {
        self.ended.load(Ordering::Relaxed)
    }

    pub(crate) fn count_ended(&self) {
        self.ended.fetch_add(1, Ordering::Relaxed);
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
    active: Arc<Count>,
}

impl Drop for Gauge {
    fn drop(&mut self) {
        self.active.sub();
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
