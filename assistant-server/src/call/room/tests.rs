//! Making room: which call a full server ends for a newcomer, and when
//! none.

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
    let stalled = calls.stalled(Arc::clone(&flood), 1001, &CancellationToken::new());
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
fn a_connection_holding_places_it_does_not_use_gives_them_up_at_once() {
    let calls = Calls::default();
    let start = Instant::now();
    // Two calls whose requests have not come on each of two
    // connections fill the server, all young.
    let (slow, _slow_seats) = connection_of(2);
    let (other, _other_seats) = connection_of(3);
    let mut waiting = Vec::new();
    for (id, connection) in [(1, &slow), (2, &slow), (3, &other), (4, &other)] {
        waiting.push(
            calls
                .enter_making_room(4, Some(connection), id, start)
                .unwrap(),
        );
    }
    // A connection with as many waiting cannot end them yet...
    assert!(calls.enter_making_room(4, Some(&other), 5, start).is_none());
    // ...but a good call's connection, with none, ends the oldest.
    let (good, _good_seat) = connection_of(1);
    let (_gauge, good_waiting) = calls
        .enter_making_room(4, Some(&good), 6, start)
        .expect("room made at once");
    let ended: Vec<_> = waiting
        .iter()
        .map(|(_, w)| w.evict.is_cancelled())
        .collect();
    assert_eq!(ended, [true, false, false, false]);
    // A single place waiting, on a connection, is left its grace.
    let (another, _another_seat) = connection_of(1);
    assert!(
        calls
            .enter_making_room(4, Some(&another), 7, start)
            .is_none()
    );
    assert!(good_waiting.arrived());
    assert_eq!(
        (slow.awaiting_request(), other.awaiting_request()),
        (1, 2),
        "counted while on the list"
    );
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
        let stalled = calls.stalled(Arc::clone(&busy), 1, &waiting.evict);
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
fn a_chat_ended_from_the_stalled_list_no_longer_holds_an_unused_place() {
    let start = Instant::now();
    let soon = start + Duration::from_millis(1);
    let calls = Calls::default();
    let (busy, _busy_seats) = connection_of(3);
    let (quiet, _quiet_seat) = connection_of(1);
    // A chat of the busy connection, waiting for its request and stalled.
    let (_chat, waiting) = calls.enter_making_room(1, Some(&busy), 1, start).unwrap();
    let stalled = calls.stalled(Arc::clone(&busy), 1, &waiting.evict);
    assert_eq!(busy.awaiting_request(), 1);
    // Too young to end as a call awaiting its request: ended as stalled.
    let (_newcomer, newcomer) = calls
        .enter_making_room(1, Some(&quiet), 2, soon)
        .expect("room made");
    assert!(stalled.evict.is_cancelled());
    // Off both lists at once, though the chat has not gone yet: its
    // connection counts no place unused that a newcomer could take.
    assert_eq!(busy.awaiting_request(), 0);
    assert!(!waiting.arrived() && !stalled.reading_again());
    assert!(newcomer.arrived());
}

#[test]
fn a_full_server_ends_a_stalled_call_of_the_busiest_connection_for_a_quieter_one() {
    let calls = Calls::default();
    let busy = Arc::new(ConnectionCalls::default());
    let quiet = Arc::new(ConnectionCalls::default());
    let _busy_seats: Vec<_> = (0..3).map(|_| busy.enter(10).unwrap()).collect();
    let _gauges: Vec<_> = (0..4).map(|_| calls.enter(4).unwrap()).collect();
    let quiet_seat = quiet.enter(10).unwrap();
    let quiet_stall = calls.stalled(Arc::clone(&quiet), 1003, &CancellationToken::new());
    let first = calls.stalled(Arc::clone(&busy), 1004, &CancellationToken::new());
    let second = calls.stalled(Arc::clone(&busy), 1005, &CancellationToken::new());

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

#[test]
fn the_stalled_list_holds_nothing_of_calls_gone() {
    let room = Room::default();
    let (busy, _busy_seats) = connection_of(3);
    let (quiet, _quiet_seat) = connection_of(1);
    // The quiet connection's call stalls first.
    let mut guards = vec![room.stalled(Arc::clone(&quiet), 1006, &CancellationToken::new())];
    guards.extend(
        (1007..1010).map(|id| room.stalled(Arc::clone(&busy), id, &CancellationToken::new())),
    );
    let held = |room: &Room| {
        let stalled = room.stalled.lock().unwrap();
        (stalled.calls.len(), stalled.by_connection.len())
    };
    assert_eq!(held(&room), (4, 2));

    // The busiest connection's first stalled call, though the quiet one's
    // stalled before it.
    room.evict_stalled(0).expect("one to end").1.cancel();
    let ended: Vec<_> = guards.iter().map(|g| g.evict.is_cancelled()).collect();
    assert_eq!(ended, [false, true, false, false]);
    assert_eq!(held(&room), (3, 2));
    assert!(room.evict_stalled(3).is_none(), "none busier than 3 calls");

    drop(guards);
    assert_eq!(held(&room), (0, 0), "nor their connections");
}

#[test]
fn among_connections_as_busy_the_call_stalled_first_is_ended() {
    let room = Room::default();
    let (first, _first_seats) = connection_of(2);
    let (second, _second_seats) = connection_of(2);
    let earliest = room.stalled(Arc::clone(&second), 1010, &CancellationToken::new());
    let later = room.stalled(Arc::clone(&first), 1011, &CancellationToken::new());
    let latest = room.stalled(Arc::clone(&second), 1012, &CancellationToken::new());
    room.evict_stalled(1).expect("one to end").1.cancel();
    assert!(earliest.evict.is_cancelled());
    assert!(!later.evict.is_cancelled() && !latest.evict.is_cancelled());
    // Then the other connection's, stalled before the second's next.
    room.evict_stalled(1).expect("one to end").1.cancel();
    assert!(later.evict.is_cancelled() && !latest.evict.is_cancelled());
}
