//! Making room at a full server: the calls a newcomer may end.
//!
//! Two lists, oldest first: calls waiting for their request, and calls
//! stalled on a client that does not read. A full server ends the oldest
//! call waiting for its request, if it has waited [`REQUEST_GRACE`] or its
//! connection holds two or more such places and more than the newcomer's;
//! or, failing that, the longest stalled call of the busiest connection,
//! if busier than the newcomer's ([`Room::admit`]).
//!
//! Ending a call takes its entry off the list it was chosen from and
//! cancels its token, which its entries on both lists share (a chat,
//! which answers before it reads, can be on both): the newcomer is
//! counted at once, and the call ends itself when it sees the token,
//! wherever it waits. A chat ended from the stalled list leaves the other
//! list at once too, so that its connection no longer counts the place as
//! unused; one ended from the other list is skipped on the stalled list
//! until it goes. A call that was ended must end even if
//! its request comes or its client reads on at that moment
//! ([`AwaitingRequest::arrived`], [`StalledGuard::reading_again`]), or the
//! count would stay over the limit.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
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

/// The calls stalled on their clients, by when they stalled, and by
/// connection: a full server looks for the busiest among the connections
/// with stalled calls, not among all their calls, so that a newcomer
/// refused at a server full of them costs little.
#[derive(Debug, Default)]
struct Stalled {
    next: u64,
    calls: BTreeMap<u64, StalledCall>,
    /// Each connection's stalled calls, by the connection's address.
    by_connection: HashMap<usize, ConnectionStalled>,
}

/// One connection's stalled calls, oldest first.
#[derive(Debug)]
struct ConnectionStalled {
    connection: Arc<ConnectionCalls>,
    keys: BTreeSet<u64>,
}

/// A connection's address: its key among connections while it is held.
fn address(connection: &Arc<ConnectionCalls>) -> usize {
    Arc::as_ptr(connection).addr()
}

impl Stalled {
    /// Adds call `call` of `connection`; returns its key.
    fn insert(
        &mut self,
        connection: Arc<ConnectionCalls>,
        call: u64,
        evict: CancellationToken,
    ) -> u64 {
        let key = self.next;
        self.next += 1;
        self.by_connection
            .entry(address(&connection))
            .or_insert_with(|| ConnectionStalled {
                connection: Arc::clone(&connection),
                keys: BTreeSet::new(),
            })
            .keys
            .insert(key);
        self.calls.insert(
            key,
            StalledCall {
                connection,
                call,
                evict,
            },
        );
        key
    }

    /// Takes out the call of `key`, if it is still here.
    fn remove(&mut self, key: u64) -> Option<StalledCall> {
        let call = self.calls.remove(&key)?;
        let address = address(&call.connection);
        if let Some(of_connection) = self.by_connection.get_mut(&address) {
            of_connection.keys.remove(&key);
            if of_connection.keys.is_empty() {
                self.by_connection.remove(&address);
            }
        }
        Some(call)
    }

    /// The key of the call stalled first on the connection with the most
    /// calls, more than `busier_than`; among connections as busy, the one
    /// whose call stalled first.
    fn busiest(&self, busier_than: usize) -> Option<u64> {
        self.by_connection
            .values()
            .filter_map(|of| Some((of.connection.active(), *of.keys.first()?)))
            .filter(|&(active, _)| active > busier_than)
            .max_by_key(|&(active, oldest)| (active, std::cmp::Reverse(oldest)))
            .map(|(_, key)| key)
    }
}

/// A call waiting for its request: since when, on which connection
/// (counted among its calls awaiting their request while the entry
/// lasts), and how to end it.
#[derive(Debug)]
struct Awaiting {
    since: Instant,
    connection: Option<Arc<ConnectionCalls>>,
    evict: CancellationToken,
}

impl Drop for Awaiting {
    fn drop(&mut self) {
        if let Some(connection) = &self.connection {
            connection.has_request();
        }
    }
}

#[derive(Debug)]
struct StalledCall {
    connection: Arc<ConnectionCalls>,
    /// The call's id: its key on the list of calls awaiting their request.
    call: u64,
    evict: CancellationToken,
}

impl Room {
    /// Admits call `id` of connection `entering`, come in at `now`:
    /// counted by `enter` if there is room. Else a call is told to end, and
    /// the newcomer is counted all the same by `enter_over`:
    ///
    /// - the oldest call waiting for its request, if it has waited
    ///   [`REQUEST_GRACE`], or if its connection has at least two calls
    ///   waiting for theirs, and more than the newcomer's: a connection
    ///   that holds places it does not use;
    /// - or else the longest stalled of the connection with the most
    ///   calls, if more than the newcomer's.
    ///
    /// So a connection cannot end a young call of another unless that one
    /// holds places it does not use, nor a stalled call of one no busier
    /// than itself. Else `None`. The newcomer is registered as waiting for
    /// its request under the same lock.
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
                let unused_than = entering.map_or(0, |entering| entering.awaiting_request());
                let may_end = awaiting.first_entry().filter(|oldest| {
                    let oldest = oldest.get();
                    now.saturating_duration_since(oldest.since) >= REQUEST_GRACE
                        || oldest.connection.as_ref().is_some_and(|connection| {
                            let unused = connection.awaiting_request();
                            unused >= 2 && unused > unused_than
                        })
                });
                let busier_than = entering.map_or(0, |entering| entering.active());
                let evicted = match may_end {
                    Some(oldest) => oldest.remove().evict.clone(),
                    None => {
                        let (call, evict) = self.evict_stalled(busier_than)?;
                        // A chat waits for its request too: its place
                        // there is not unused any more.
                        awaiting.remove(&call);
                        evict
                    }
                };
                evicted.cancel();
                enter_over()
            }
        };
        let evict = CancellationToken::new();
        if let Some(entering) = entering {
            entering.awaits_request();
        }
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
    /// Returns its id and its token.
    fn evict_stalled(&self, busier_than: usize) -> Option<(u64, CancellationToken)> {
        let mut stalled = self.stalled.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let key = stalled.busiest(busier_than)?;
            let call = stalled.remove(key)?;
            // Unless it was ended already, from the other list, and is on
            // its way out: then it is off this list too, and the next one
            // is looked for.
            if !call.evict.is_cancelled() {
                return Some((call.call, call.evict));
            }
        }
    }

    /// Registers call `call` of `connection` as stalled on its client, with
    /// the token of its entry on the other list, `place_taken`, which is
    /// cancelled if the call must make room for another. A call on both
    /// lists (Chat answers before it reads) is ended once, not twice for
    /// two newcomers: ended from this list, it is taken off the other;
    /// ended from the other, it is skipped on this one. Whatever waits on
    /// the call watches one token.
    pub(super) fn stalled(
        &self,
        connection: Arc<ConnectionCalls>,
        call: u64,
        place_taken: &CancellationToken,
    ) -> StalledGuard {
        let evict = place_taken.clone();
        let key = self
            .stalled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(connection, call, evict.clone());
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
    /// over the limit until this one ends. Ending a call from either
    /// list takes it off this one under its lock, before its token is
    /// cancelled: still here is not ended.
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
    /// false if the server ended it first to make room (from this list or
    /// the other). Then the call must end all the same, as with
    /// [`AwaitingRequest::arrived`].
    pub(crate) fn reading_again(&self) -> bool {
        let removed = self
            .registry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(self.key)
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
mod tests;
