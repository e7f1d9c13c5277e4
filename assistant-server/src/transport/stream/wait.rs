//! A stream waiting for its client: for room in its window, or for its
//! last frame to be written; or for the call to have to end first. A long
//! wait is a stall, and the log says so.

use std::{
    future::{Future, poll_fn},
    task::Poll,
    time::Duration,
};

use h2::SendStream;
use tokio::time::Instant;
use tracing::info;

use crate::{
    call::{CallBody, EndEarly, StalledGuard},
    wire::Chunk,
};

/// How long a stream must wait for its client before the wait is a stall
/// worth a log line: shorter waits are HTTP/2 going about its business.
const STALL_NOTICE: Duration = Duration::from_millis(100);

/// What became of a frame waiting for send capacity.
pub(super) enum Waited {
    /// This many bytes may be sent.
    Sent(usize),
    /// The stream is gone (the client reset it or left).
    Gone,
    /// The call had to end first.
    Ended(EndEarly),
}

/// Waits until the stream may send some of a frame of `len` bytes, and
/// says how much; or until the call must end first. `sent` is for the log.
pub(super) async fn wait_for_capacity(
    body: &mut CallBody,
    send: &mut SendStream<Chunk>,
    len: usize,
    sent: u64,
) -> Waited {
    // h2 assigns no more than the stream's window, so a stalled stream
    // claims none of the connection's window while it waits.
    send.reserve_capacity(len);
    let room = send.capacity();
    if room > 0 {
        return Waited::Sent(room);
    }
    let capacity = poll_fn(|cx| {
        loop {
            match send.poll_capacity(cx) {
                Poll::Ready(Some(Ok(0))) => continue,
                Poll::Ready(Some(Ok(room))) => return Poll::Ready(Waited::Sent(room)),
                Poll::Ready(Some(Err(_)) | None) => return Poll::Ready(Waited::Gone),
                Poll::Pending => return Poll::Pending,
            }
        }
    });
    let waited = Box::pin(wait_on_client(body, capacity, Stall::Window, sent));
    waited.await
}

/// What a stream waits for its client to do.
#[derive(Debug, Clone, Copy)]
pub(super) enum Stall {
    /// Open its window: the next frame waits.
    Window,
    /// Read what is queued: the last frame waits.
    Queued,
}

/// Waits for `client`, which is the client reading on, or until the call
/// must end first; says so in the log if the wait is long. `sent` is for
/// the log.
pub(super) async fn wait_on_client(
    body: &mut CallBody,
    client: impl Future<Output = Waited>,
    stall: Stall,
    sent: u64,
) -> Waited {
    let (deadline, ending, place_taken) = body.must_end_by();
    let ending = ending.cloned();
    let place_taken = place_taken.cloned();
    let deadline_passed = async {
        match deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    };
    let shutdown = async {
        match &ending {
            Some(ending) => ending.cancelled().await,
            None => std::future::pending().await,
        }
    };
    // The call's place was taken (its request not read yet, or stalled
    // on its client): it must end.
    let place_taken = async {
        match &place_taken {
            Some(place_taken) => place_taken.cancelled().await,
            None => std::future::pending().await,
        }
    };
    if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
        return Waited::Ended(EndEarly::Deadline);
    }
    let mut deadline_passed = std::pin::pin!(deadline_passed);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut place_taken = std::pin::pin!(place_taken);
    let mut client = std::pin::pin!(client);
    let waiting_since = Instant::now();
    let notice = tokio::time::sleep(STALL_NOTICE);
    let mut noticed = false;
    // Before the notice the call is on no stalled list, so its place can
    // be taken only while it waits for its request (a chat): that ends it
    // before anything its client does.
    let waited = tokio::select! {
        biased;
        () = &mut deadline_passed => Waited::Ended(EndEarly::Deadline),
        () = &mut shutdown => Waited::Ended(EndEarly::Shutdown),
        () = &mut place_taken => Waited::Ended(EndEarly::MadeRoom),
        waited = &mut client => waited,
        () = notice => {
            noticed = true;
            // A stalled call is one a full server may end to make room.
            // Counted before it is logged: whoever reads the line finds
            // the call among the stalled ones.
            let stalled = body.stalled();
            body.in_span(|client| match stall {
                Stall::Window => {
                    info!("Waiting for {client} to read: the window is full after {sent} bytes");
                }
                Stall::Queued => {
                    info!("Waiting for {client} to read: {sent} bytes sent, the last still queued");
                }
            });
            // The stall's entry shares `place_taken`. The client first: a
            // last frame written as the call's place was taken is the
            // call's end all the same (`read_on`).
            tokio::select! {
                biased;
                () = &mut deadline_passed => Waited::Ended(EndEarly::Deadline),
                () = &mut shutdown => Waited::Ended(EndEarly::Shutdown),
                waited = &mut client => read_on(waited, stall, stalled.as_ref()),
                () = &mut place_taken => Waited::Ended(EndEarly::MadeRoom),
            }
        }
    };
    if noticed {
        body.stalled_for(waiting_since.elapsed());
    }
    if noticed && matches!(waited, Waited::Sent(_)) {
        let waited_s = waiting_since.elapsed().as_secs_f64();
        body.in_span(|client| info!("{client} is reading again after {waited_s:.1} s"));
    }
    waited
}

/// What a stalled stream does once its client reads again: goes on,
/// unless the server took its place to make room just before. The call
/// that took it was counted in its stead, so going on would leave the
/// count over the limit for as long as this call runs. A last frame that
/// was written is the call's end anyway.
fn read_on(waited: Waited, stall: Stall, stalled: Option<&StalledGuard>) -> Waited {
    match (waited, stall, stalled) {
        (Waited::Sent(_), Stall::Window, Some(stalled)) if !stalled.reading_again() => {
            Waited::Ended(EndEarly::MadeRoom)
        }
        (waited, ..) => waited,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::call::{Calls, ConnectionCalls};

    #[test]
    fn a_stream_whose_place_was_taken_ends_though_its_client_reads_again() {
        let calls = Calls::default();
        let connection = Arc::new(ConnectionCalls::default());
        let _seat = connection.enter(10).unwrap();
        let _gauge = calls.enter(1).unwrap();
        let sent = |waited: Waited| matches!(waited, Waited::Sent(10));

        let kept = calls.stalled(Arc::clone(&connection), 101, &CancellationToken::new());
        assert!(sent(read_on(Waited::Sent(10), Stall::Window, Some(&kept))));

        // Its window opened as the server, full, took its place: the
        // newcomer was counted in its stead.
        let taken = calls.stalled(Arc::clone(&connection), 102, &CancellationToken::new());
        let (_newcomer, newcomer_waiting) = calls
            .enter_making_room(1, None, 1, tokio::time::Instant::now())
            .expect("room made");
        assert!(taken.evict.is_cancelled());
        assert!(newcomer_waiting.arrived());
        assert!(matches!(
            read_on(Waited::Sent(10), Stall::Window, Some(&taken)),
            Waited::Ended(EndEarly::MadeRoom)
        ));

        // A last frame written is the end of the call either way.
        let last = calls.stalled(Arc::clone(&connection), 103, &CancellationToken::new());
        let _another = calls
            .enter_making_room(1, None, 2, tokio::time::Instant::now())
            .expect("room made");
        assert!(last.evict.is_cancelled());
        assert!(matches!(
            read_on(Waited::Sent(0), Stall::Queued, Some(&last)),
            Waited::Sent(0)
        ));
    }
}
