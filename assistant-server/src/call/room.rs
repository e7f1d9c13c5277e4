//! Making room at a full server: the calls a newcomer may end.
//!
//! Two lists, oldest first: calls waiting for their request, and calls
//! stalled on a client that does not read. A full server ends the oldest
//! call that has waited [`REQUEST_GRACE`] for its request or, failing
//! that, a stalled call of its busiest connection (see
//! [`Calls::enter_making_room`](super::Calls::enter_making_room)).
//!
//! Ending a call here only takes it off its list and cancels its token:
//! the newcomer is counted at once, and the call ends itself when it sees
//! the token, wherever it waits. A call that was taken off must end even
//! if its request comes or its client reads on at that moment
//! ([`AwaitingRequest::arrived`], [`StalledGuard::reading_again`]), or the
//! count would stay over the limit.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::connection::ConnectionCalls;

/// How long a call must have waited for its request before a full server
/// may end it to make room. A request on its way, in the server's buffers
/// but not yet read, is not one that is not coming: without the grace, a
/// flood of new calls at a full server ends good calls a moment before
/// they read their request. A slowloris call waits far longer.
pub(crate) const REQUEST_GRACE: Duration = Duration::from_millis(100);

/// The lists of calls a full server may end, shared by its clones.
#[derive(Debug, Clone, Default)]
pub(super) struct Room {
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

/// A call waiting for its request: since when, on which connection, and
/// how to end it.
#[derive(Debug)]
struct Awaiting {
    since: Instant,
    connection: Option<Arc<ConnectionCalls>>,
    evict: CancellationToken,
}

#[derive(Debug)]
struct StalledCall {
    connection: Arc<ConnectionCalls>,
    evict: CancellationToken,
}

impl Room {
    /// Admits call `id` of connection `entering`, come in at `now`:
    /// counted by `enter` if there is room. Else a call is told to end, and
    /// the newcomer is counted all the same by `enter_over`: the oldest
    /// call waiting for its request, if it has waited [`REQUEST_GRACE`] or
    /// its connection has more calls than the newcomer's; or else the
    /// longest stalled of the connection with the most calls, if more than
    /// the newcomer's. A connection cannot push out calls of one no busier
    /// than itself, but for a request that is long in coming. Else `None`.
    /// The newcomer is registered as waiting for its request under the
    /// same lock.
    pub(super) fn admit<G>(
        &self,
        id: u64,
        now: Instant,
        entering: Option<&Arc<ConnectionCalls>>,
        enter: impl FnOnce() -> Option<G>,
        enter_over: impl FnOnce() -> G,
    ) -> Option<(G, AwaitingRequest)> {
        let mut awaiting = self
            .awaiting_request
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let gauge = match enter() {
            Some(gauge) => gauge,
            None => {
                // A call ended from the stalled list may still be on this
                // one, until it goes: it makes no room twice.
                while awaiting
                    .first_key_value()
                    .is_some_and(|(_, oldest)| oldest.evict.is_cancelled())
                {
                    awaiting.pop_first();
                }
                let busier_than = entering.map_or(0, |entering| entering.active());
                let may_end = awaiting.first_entry().filter(|oldest| {
                    let oldest = oldest.get();
                    now.saturating_duration_since(oldest.since) >= REQUEST_GRACE
                        || oldest
                            .connection
                            .as_ref()
                            .is_some_and(|connection| connection.active() > busier_than)
                });
                let evicted = may_end
                    .map(|oldest| oldest.remove().evict)
                    .or_else(|| self.evict_stalled(busier_than))?;
                evicted.cancel();
                enter_over()
            }
        };
        let evict = CancellationToken::new();
        awaiting.insert(
            id,
            Awaiting {
                since: now,
                connection: entering.cloned(),
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
            // Ended already, from the other list, and on its way out.
            .filter(|(_, call)| !call.evict.is_cancelled())
            .map(|(key, call)| (key, call.connection.active()))
            .filter(|&(_, active)| active > busier_than)
            // The busiest; among its calls, the one stalled first.
            .max_by_key(|&(key, active)| (active, std::cmp::Reverse(*key)))?;
        stalled.calls.remove(&key).map(|call| call.evict)
    }

    /// Registers a call of `connection` as stalled on its client; the
    /// token is cancelled if the call must make room for another. A call
    /// still waiting for its request too (Chat answers before it reads)
    /// gives the token of that list's entry, `place_taken`: ended from
    /// either list, it is then skipped on the other, not ended twice for
    /// two newcomers.
    pub(super) fn stalled(
        &self,
        connection: Arc<ConnectionCalls>,
        place_taken: Option<&CancellationToken>,
    ) -> StalledGuard {
        let evict = place_taken.cloned().unwrap_or_default();
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

    /// How many calls wait now for a client that is not reading.
    pub(super) fn stalled_now(&self) -> usize {
        self.stalled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .calls
            .len()
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
    /// false if the server ended it first to make room (from this list or
    /// the stalled one). Then the call must end all the same: the call
    /// that took its place was counted in its stead, and the count stays
    /// over the limit until this one ends.
    pub(crate) fn arrived(&self) -> bool {
        let removed = self
            .registry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id)
            .is_some();
        removed && !self.evict.is_cancelled()
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
    /// false if the server ended it first to make room (from this list or
    /// the other). Then the call must end all the same, as with
    /// [`AwaitingRequest::arrived`].
    pub(crate) fn reading_again(&self) -> bool {
        let removed = self
            .registry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .calls
            .remove(&self.key)
            .is_some();
        removed && !self.evict.is_cancelled()
    }
}

impl Drop for StalledGuard {
    fn drop(&mut self) {
        self.reading_again();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::{Calls, connection::ConnectionSeat};

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

    /// A connection with `calls` calls running, held by the seats.
    fn connection_of(calls: usize) -> (Arc<ConnectionCalls>, Vec<ConnectionSeat>) {
        let connection = Arc::new(ConnectionCalls::default());
        let seats = (0..calls)
            .map(|_| connection.enter(usize::MAX).unwrap())
            .collect();
        (connection, seats)
    }

    #[test]
    fn a_call_whose_request_may_be_on_its_way_keeps_its_place() {
        let calls = Calls::default();
        let start = Instant::now();
        let too_soon = start + REQUEST_GRACE - Duration::from_millis(1);
        // A good call, alone on its connection, its request on its way.
        let (good, _good_seat) = connection_of(1);
        let (_a, waiting) = calls.enter_making_room(1, Some(&good), 1, start).unwrap();
        // A flood's newcomer, of a connection with more calls, cannot end
        // it yet; nor can one of a connection as quiet.
        let (flood, _flood_seats) = connection_of(3);
        assert!(
            calls
                .enter_making_room(1, Some(&flood), 2, too_soon)
                .is_none()
        );
        let (other, _other_seat) = connection_of(1);
        assert!(
            calls
                .enter_making_room(1, Some(&other), 3, too_soon)
                .is_none()
        );
        assert!(!waiting.evict.is_cancelled());
        assert_eq!(calls.active(), 1);

        // Nor can the flood push out a stalled call of its own...
        let stalled = calls.stalled(Arc::clone(&flood), None);
        assert!(
            calls
                .enter_making_room(1, Some(&flood), 4, too_soon)
                .is_none()
        );
        // ...but a quieter connection's newcomer ends that one instead.
        let (_b, newcomer) = calls
            .enter_making_room(1, Some(&other), 5, too_soon)
            .expect("room made");
        assert!(stalled.evict.is_cancelled());
        assert!(!waiting.evict.is_cancelled());
        assert!(waiting.arrived() && newcomer.arrived());
    }

    #[test]
    fn a_quieter_connection_ends_a_busier_ones_call_awaiting_its_request_at_once() {
        let calls = Calls::default();
        let start = Instant::now();
        let (flood, _flood_seats) = connection_of(3);
        let (_a, flooding) = calls.enter_making_room(1, Some(&flood), 1, start).unwrap();
        let (good, _good_seat) = connection_of(1);
        let (_b, good_waiting) = calls
            .enter_making_room(1, Some(&good), 2, start)
            .expect("room made at once");
        assert!(flooding.evict.is_cancelled());
        assert!(good_waiting.arrived() && !flooding.arrived());
    }

    #[test]
    fn a_call_on_both_lists_makes_room_once() {
        // A chat answers before it reads: it waits for its request, and
        // is stalled on its client, at once.
        let start = Instant::now();
        let later = start + REQUEST_GRACE;
        let busy = Arc::new(ConnectionCalls::default());
        let _seats: Vec<_> = (0..2).map(|_| busy.enter(10).unwrap()).collect();
        let chat = |calls: &Calls| {
            let (gauge, waiting) = calls.enter_making_room(1, None, 1, start).unwrap();
            let stalled = calls.stalled(Arc::clone(&busy), Some(&waiting.evict));
            (gauge, waiting, stalled)
        };

        // Ended as the oldest waiting for its request...
        let calls = Calls::default();
        let (_chat, waiting, stalled) = chat(&calls);
        let (_first, first) = calls.enter_making_room(1, None, 2, later).unwrap();
        assert!(stalled.evict.is_cancelled());
        // ...it is not ended again from the stalled list: the first
        // newcomer is too young to end, and nobody else can make room.
        assert!(calls.enter_making_room(1, None, 3, later).is_none());
        assert!(
            !stalled.reading_again(),
            "it must end though its client reads"
        );
        assert!(first.arrived() && !waiting.arrived());

        // Ended from the stalled list, as the only one old enough...
        let calls = Calls::default();
        let (_chat, waiting, stalled) = chat(&calls);
        let soon = start + Duration::from_millis(1);
        let (_first, first) = calls.enter_making_room(1, None, 2, soon).unwrap();
        assert!(waiting.evict.is_cancelled());
        // ...it is not ended again once it has waited long for its
        // request.
        assert!(calls.enter_making_room(1, None, 3, later).is_none());
        assert!(!waiting.arrived(), "it must end though its request came");
        assert!(first.arrived() && !stalled.reading_again());
    }

    #[test]
    fn a_full_server_ends_a_stalled_call_of_the_busiest_connection_for_a_quieter_one() {
        let calls = Calls::default();
        let busy = Arc::new(ConnectionCalls::default());
        let quiet = Arc::new(ConnectionCalls::default());
        let _busy_seats: Vec<_> = (0..3).map(|_| busy.enter(10).unwrap()).collect();
        let _gauges: Vec<_> = (0..4).map(|_| calls.enter(4).unwrap()).collect();
        let quiet_seat = quiet.enter(10).unwrap();
        let quiet_stall = calls.stalled(Arc::clone(&quiet), None);
        let first = calls.stalled(Arc::clone(&busy), None);
        let second = calls.stalled(Arc::clone(&busy), None);

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
}
