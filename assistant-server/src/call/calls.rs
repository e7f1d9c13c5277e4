//! Counting the calls in flight.
//!
//! [`Calls`] counts application calls (not health checks or reflection)
//! from the moment the server accepts them until their last byte is sent or
//! the client leaves. The count is observable, so shutdown, operators and
//! tests can wait for it to reach zero instead of guessing with sleeps.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{sync::watch, time::Instant};
use tokio_util::sync::CancellationToken;

use super::{connection::ConnectionCalls, count::Count};

/// A shared count of calls in flight. Cloning it shares the count.
#[derive(Debug, Clone, Default)]
pub struct Calls {
    active: Arc<Count>,
    /// Calls that have ended, however: the server's total so far.
    ended: Arc<AtomicU64>,
    ended_by_shutdown: Arc<AtomicU64>,
    /// Calls whose request has not arrived yet, oldest first: the ones to
    /// end when a new call needs a place.
    awaiting_request: Arc<Mutex<BTreeMap<u64, Awaiting>>>,
    /// Calls stalled on a client that does not read, oldest first: the next
    /// ones to end, from the busiest connection.
    stalled: Arc<Mutex<Stalled>>,
}

/// The calls stalled on their clients, by when they stalled.
#[derive(Debug, Default)]
struct Stalled {
    next: u64,
    calls: BTreeMap<u64, StalledCall>,
}

/// How long a call must have waited for its request before a full server
/// may end it to make room. A request on its way, in the server's buffers
/// but not yet read, is not one that is not coming: without the grace, a
/// flood of new calls at a full server ends good calls a moment before
/// they read their request. A slowloris call waits far longer.
pub(crate) const REQUEST_GRACE: Duration = Duration::from_millis(100);

/// A call waiting for its request: since when, and how to end it.
#[derive(Debug)]
struct Awaiting {
    since: Instant,
    evict: CancellationToken,
}

#[derive(Debug)]
struct StalledCall {
    connection: Arc<ConnectionCalls>,
    evict: CancellationToken,
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
    /// the oldest call still waiting for its request, if it has waited
    /// [`REQUEST_GRACE`] by `now`, or, failing that, the longest stalled on
    /// a client that does not read, on the connection with the most calls,
    /// if that holds more than `entering` (the new call's connection): a
    /// connection cannot push out calls of one no busier than itself.
    ///
    /// The new call, `id`, is registered as waiting for its request, since
    /// `now`, before another can look for room: under the same lock, so
    /// that no call is ever counted and yet out of reach.
    pub(crate) fn enter_making_room(
        &self,
        max: usize,
        entering: Option<&ConnectionCalls>,
        id: u64,
        now: Instant,
    ) -> Option<(Gauge, AwaitingRequest)> {
        let mut awaiting = self
            .awaiting_request
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let gauge = match self.enter(max) {
            Some(gauge) => gauge,
            None => {
                let waited_long = awaiting.first_entry().filter(|oldest| {
                    now.saturating_duration_since(oldest.get().since) >= REQUEST_GRACE
                });
                let evicted = waited_long
                    .map(|oldest| oldest.remove().evict)
                    .or_else(|| {
                        let busier_than = entering.map_or(0, ConnectionCalls::active);
                        self.evict_stalled(busier_than)
                    })?;
                evicted.cancel();
                self.active.add();
                Gauge {
                    active: Arc::clone(&self.active),
                }
            }
        };
        let evict = CancellationToken::new();
        awaiting.insert(
            id,
            Awaiting {
                since: now,
                evict: evict.clone(),
            },
        );
        Some((
            gauge,
            AwaitingRequest {
                id,
                evict,
                registry: Arc::clone(&self.awaiting_request),
            },
        ))
    }

    /// Takes out the call to end among those stalled: on the connection
    /// with the most calls, more than `busier_than`; the oldest there.
    fn evict_stalled(&self, busier_than: usize) -> Option<CancellationToken> {
        let mut stalled = self.stalled.lock().unwrap_or_else(|e| e.into_inner());
        let (&key, _) = stalled
            .calls
            .iter()
            .map(|(key, call)| (key, call.connection.active()))
            .filter(|&(_, active)| active > busier_than)
            // The busiest; among its calls, the one stalled first.
            .max_by_key(|&(key, active)| (active, std::cmp::Reverse(*key)))?;
        stalled.calls.remove(&key).map(|call| call.evict)
    }

    /// Registers a call of `connection` as stalled on its client; the
    /// token is cancelled if the call must make room for another.
    pub(crate) fn stalled(&self, connection: Arc<ConnectionCalls>) -> StalledGuard {
        let evict = CancellationToken::new();
        let mut stalled = self.stalled.lock().unwrap_or_else(|e| e.into_inner());
        let key = stalled.next;
        stalled.next += 1;
        stalled.calls.insert(
            key,
            StalledCall {
                connection,
                evict: evict.clone(),
            },
        );
        StalledGuard {
            key,
            evict,
            registry: Arc::clone(&self.stalled),
        }
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

    /// How many calls wait now for a client that is not reading.
    pub(crate) fn stalled_now(&self) -> usize {
        self.stalled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .calls
            .len()
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

/// A call waiting for its request, until dropped.
#[derive(Debug)]
pub(crate) struct AwaitingRequest {
    id: u64,
    /// Cancelled when the call must make room for another.
    pub(crate) evict: CancellationToken,
    registry: Arc<Mutex<BTreeMap<u64, Awaiting>>>,
}

impl AwaitingRequest {
    /// Takes the call off the list, as its request has arrived: true, or
    /// false if the server took it off first to make room. Then the call
    /// must end all the same: the call that took its place was counted in
    /// its stead, and the count stays over the limit until this one ends.
    pub(crate) fn arrived(&self) -> bool {
        self.registry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id)
            .is_some()
    }
}

impl Drop for AwaitingRequest {
    fn drop(&mut self) {
        self.arrived();
    }
}

/// A call stalled on its client, until dropped.
#[derive(Debug)]
pub(crate) struct StalledGuard {
    key: u64,
    /// Cancelled when the call must make room for another.
    pub(crate) evict: CancellationToken,
    registry: Arc<Mutex<Stalled>>,
}

impl StalledGuard {
    /// Takes the call off the list, as its client reads again: true, or
    /// false if the server took it off first to make room. Then the call
    /// must end all the same, as with [`AwaitingRequest::arrived`].
    pub(crate) fn reading_again(&self) -> bool {
        self.registry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .calls
            .remove(&self.key)
            .is_some()
    }
}

impl Drop for StalledGuard {
    fn drop(&mut self) {
        self.reading_again();
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

    #[test]
    fn a_full_server_makes_room_by_ending_the_oldest_call_still_awaiting_its_request() {
        let calls = Calls::default();
        let start = Instant::now();
        let (_a, first_waiting) = calls.enter_making_room(2, None, 1, start).unwrap();
        let (_b, second_waiting) = calls.enter_making_room(2, None, 2, start).unwrap();
        // The newcomer waits for its request too, from the moment it is in.
        let later = start + REQUEST_GRACE;
        let (_c, third_waiting) = calls
            .enter_making_room(2, None, 3, later)
            .expect("room made");
        assert!(first_waiting.evict.is_cancelled());
        assert!(!second_waiting.evict.is_cancelled());
        assert_eq!(
            calls.active(),
            3,
            "over the cap until the evicted call ends"
        );
        // The evicted call's request was in, unread: it must end anyway.
        assert!(!first_waiting.arrived(), "taken off to make room");
        assert!(second_waiting.arrived());
        assert!(third_waiting.arrived(), "registered as it came in");
        assert!(
            calls.enter_making_room(2, None, 4, later).is_none(),
            "nobody left to end"
        );
    }

    #[test]
    fn a_call_whose_request_may_be_on_its_way_keeps_its_place() {
        let calls = Calls::default();
        let start = Instant::now();
        let (_a, waiting) = calls.enter_making_room(1, None, 1, start).unwrap();
        let too_soon = start + REQUEST_GRACE - Duration::from_millis(1);
        assert!(
            calls.enter_making_room(1, None, 2, too_soon).is_none(),
            "refused: the one call has not waited long enough to be ended"
        );
        assert!(!waiting.evict.is_cancelled());
        assert_eq!(calls.active(), 1);

        // Nor can it push out a stalled call of no busier a connection,
        // but one of a busier connection goes in its stead.
        let busy = Arc::new(ConnectionCalls::default());
        let _seats: Vec<_> = (0..2).map(|_| busy.enter(10).unwrap()).collect();
        let stalled = calls.stalled(Arc::clone(&busy));
        let (_b, newcomer) = calls
            .enter_making_room(1, None, 3, too_soon)
            .expect("room made");
        assert!(stalled.evict.is_cancelled());
        assert!(!waiting.evict.is_cancelled());
        assert!(waiting.arrived() && newcomer.arrived());
    }

    #[test]
    fn a_full_server_ends_a_stalled_call_of_the_busiest_connection_for_a_quieter_one() {
        let calls = Calls::default();
        let busy = Arc::new(ConnectionCalls::default());
        let quiet = Arc::new(ConnectionCalls::default());
        let _busy_seats: Vec<_> = (0..3).map(|_| busy.enter(10).unwrap()).collect();
        let _gauges: Vec<_> = (0..4).map(|_| calls.enter(4).unwrap()).collect();
        let quiet_seat = quiet.enter(10).unwrap();
        let quiet_stall = calls.stalled(Arc::clone(&quiet));
        let first = calls.stalled(Arc::clone(&busy));
        let second = calls.stalled(Arc::clone(&busy));

        // A call on a connection of its own (1 call) ends the busy one's
        // call that stalled first, not the quiet one's.
        let newcomer = Arc::new(ConnectionCalls::default());
        let _seat = newcomer.enter(10).unwrap();
        let (_gauge, newcomer_waiting) = calls
            .enter_making_room(4, Some(&newcomer), 1, Instant::now())
            .expect("room made");
        assert!(newcomer_waiting.arrived());
        assert!(first.evict.is_cancelled());
        assert!(!second.evict.is_cancelled() && !quiet_stall.evict.is_cancelled());
        // Had its client read on meanwhile, it must end all the same.
        assert!(!first.reading_again(), "taken off to make room");

        // A connection as busy as the busiest cannot push its calls out.
        let _more: Vec<_> = (0..3).map(|_| quiet.enter(10).unwrap()).collect();
        assert!(
            calls
                .enter_making_room(4, Some(&quiet), 2, Instant::now())
                .is_none()
        );
        assert!(second.reading_again(), "never taken off");
        drop(quiet_seat);
    }

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
