//! A browser's call, watched while its client does not read.
//!
//! On the gRPC port the transport ends a call whose client has stopped
//! reading, at its deadline, at shutdown, or to make room (see
//! `transport/stream/`). Here hyper drives the response, and simply stops
//! polling a body its client does not take. So each web call has a
//! watchdog beside it that does the same: when the call's deadline passes
//! or shutdown ends calls, it ends the call, which frees its slot and what
//! it held; and once the body has waited [`STALL_NOTICE`] with a frame
//! taken and not another asked for, the call counts as stalled, which a
//! full server may end to make room. The status goes out as the body's
//! trailers if the client ever reads again.

use std::{
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard, Weak},
    task::{Context, Poll, Waker},
    time::Duration,
};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};
use tonic::Status;

use crate::call::{CallBody, EndEarly, StalledGuard, status_trailers};

/// How long a frame may wait for the client to ask for the next before
/// the call counts as stalled; as on the gRPC port.
const STALL_NOTICE: Duration = Duration::from_millis(100);

/// A call's response body, its bytes as one `Bytes` per frame, ended by
/// its watchdog if its client stops reading.
pub(super) struct WatchedBody {
    slot: Arc<Mutex<Slot>>,
    /// Stops the watchdog when the body goes.
    _watchdog: Option<DropGuard>,
}

/// What the body and its watchdog share.
///
/// The call's entry on the list of stalled calls is kept here, beside the
/// body whose record holds the call's place, and is always removed first:
/// a full server that took an entry whose place was already given back
/// would count a newcomer with nobody left to end. (Fields drop in order.)
struct Slot {
    /// Registered while stalled, with the frames handed out when it began.
    stalled: Option<(StalledGuard, u64)>,
    /// `None` once ended.
    body: Option<CallBody>,
    /// The status the watchdog ended the call with, not yet sent.
    ended: Option<Status>,
    /// Whether the body is waiting for its client: a frame was handed out
    /// (or the response's headers, at first) and the next not yet asked
    /// for. (hyper waits for the client's window before it asks.)
    awaiting_poll: bool,
    /// Frames handed out: the watchdog sees reading resume by it.
    frames: u64,
    waker: Option<Waker>,
}

fn lock(slot: &Mutex<Slot>) -> MutexGuard<'_, Slot> {
    slot.lock().unwrap_or_else(|e| e.into_inner())
}

impl Slot {
    /// Takes the body out, the call's entry among stalled calls first; see
    /// [`Slot`].
    fn take_body(&mut self) -> Option<CallBody> {
        self.stalled = None;
        self.body.take()
    }
}

impl WatchedBody {
    /// A body that yields nothing: a call answered before it started.
    pub(super) fn empty() -> Self {
        Self::unwatched(None)
    }

    fn unwatched(body: Option<CallBody>) -> Self {
        Self {
            slot: Arc::new(Mutex::new(Slot {
                stalled: None,
                body,
                ended: None,
                awaiting_poll: true,
                frames: 0,
                waker: None,
            })),
            _watchdog: None,
        }
    }

    /// Watches `body` as the [module docs](self) say.
    pub(super) fn new(body: CallBody) -> Self {
        let (deadline, ending, place_taken) = body.must_end_by();
        let place_taken = place_taken.cloned();
        let Some(ending) = ending.cloned() else {
            // A call with no record (refused at once) has nothing to watch.
            return Self::unwatched(Some(body));
        };
        let mut watched = Self::unwatched(Some(body));
        let stop = CancellationToken::new();
        tokio::spawn(watchdog(
            Arc::downgrade(&watched.slot),
            deadline,
            ending,
            place_taken,
            stop.clone(),
        ));
        watched._watchdog = Some(stop.drop_guard());
        watched
    }
}

/// Ends the call in `slot` for `why`, unless it is over already, and wakes
/// the body's reader to send the status.
fn end(slot: &Weak<Mutex<Slot>>, why: EndEarly) {
    let Some(slot) = slot.upgrade() else { return };
    let mut slot = lock(&slot);
    if let Some(mut body) = slot.take_body() {
        slot.ended = Some(body.end_early(why));
        if let Some(waker) = slot.waker.take() {
            waker.wake();
        }
    }
}

/// The watchdog of one call; see the [module docs](self).
async fn watchdog(
    slot: Weak<Mutex<Slot>>,
    deadline: Option<Instant>,
    ending: CancellationToken,
    place_taken: Option<CancellationToken>,
    stop: CancellationToken,
) {
    let deadline_passed = async {
        match deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    };
    let mut deadline_passed = std::pin::pin!(deadline_passed);
    // The call's place was taken (its request not read yet, or stalled
    // on its client, whose entry shares the token): it must end.
    let place_taken = async {
        match &place_taken {
            Some(place_taken) => place_taken.cancelled().await,
            None => std::future::pending().await,
        }
    };
    let mut place_taken = std::pin::pin!(place_taken);
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => return,
            () = &mut deadline_passed => return end(&slot, EndEarly::Deadline),
            () = ending.cancelled() => return end(&slot, EndEarly::Shutdown),
            () = &mut place_taken => return end(&slot, EndEarly::MadeRoom),
            () = tokio::time::sleep(STALL_NOTICE) => {}
        }
        let Some(strong) = slot.upgrade() else { return };
        let mut slot = lock(&strong);
        slot.stalled = match slot.stalled.take() {
            // Still waiting on the same frame: still stalled.
            Some((guard, frames)) if slot.frames == frames => Some((guard, frames)),
            // Reading again: no longer stalled, until it waits again;
            // unless the server took the call's place just before, as
            // then a newcomer was counted in its stead.
            Some((guard, _)) => {
                if !guard.reading_again() {
                    drop(slot);
                    return end(&Arc::downgrade(&strong), EndEarly::MadeRoom);
                }
                None
            }
            // A frame went out and the next was not asked for: stalled,
            // so a full server may end the call to make room.
            None if slot.awaiting_poll => slot
                .body
                .as_ref()
                .and_then(CallBody::stalled)
                .map(|guard| (guard, slot.frames)),
            None => None,
        };
    }
}

impl Body for WatchedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let mut slot = lock(&self.slot);
        slot.awaiting_poll = false;
        if let Some(status) = slot.ended.take() {
            return Poll::Ready(Some(status_trailers(&status)));
        }
        let Some(body) = slot.body.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(body).poll_frame(cx).map(|frame| {
            frame.map(|frame| {
                frame
                    .map(|frame| frame.map_data(|mut chunk| chunk.copy_to_bytes(chunk.remaining())))
            })
        });
        match &polled {
            Poll::Ready(Some(Ok(_))) => {
                slot.awaiting_poll = true;
                slot.frames += 1;
            }
            Poll::Ready(None | Some(Err(_))) => drop(slot.take_body()),
            Poll::Pending => slot.waker = Some(cx.waker().clone()),
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        let slot = lock(&self.slot);
        slot.ended.is_none() && slot.body.as_ref().is_none_or(CallBody::is_end_stream)
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use http_body_util::StreamBody;
    use tokio_stream::StreamExt;

    use super::*;
    use crate::call::{Calls, ConnectionCalls};

    /// A counted web call, watched, whose handler sends one message and
    /// then nothing; and its first frame taken, so that it waits on its
    /// client.
    async fn waiting_on_its_client(calls: &Calls) -> WatchedBody {
        let connection = Arc::new(ConnectionCalls::default());
        let one = Frame::data(Bytes::from_static(&[0, 0, 0, 0, 1, b'x']));
        let frames = tokio_stream::iter([Ok::<_, Status>(one)]).chain(tokio_stream::pending());
        let body = tonic::body::Body::new(StreamBody::new(frames));
        let mut watched = WatchedBody::new(CallBody::counted(body, calls, &connection));
        let first = poll_fn(|cx| Pin::new(&mut watched).poll_frame(cx)).await;
        assert!(matches!(first, Some(Ok(_))), "{first:?}");
        watched
    }

    /// Lets the watchdog see the call stalled.
    async fn until_stalled(calls: &Calls) {
        while calls.stalled_now() == 0 {
            tokio::time::sleep(STALL_NOTICE).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_web_call_leaves_the_stalled_list_before_it_gives_back_its_place() {
        let calls = Calls::default();
        let watched = waiting_on_its_client(&calls).await;
        until_stalled(&calls).await;
        assert_eq!((calls.active(), calls.stalled_now()), (1, 1));

        // hyper drops the body of a call whose client went: the place is
        // given back, and no stale entry is left for a newcomer to take,
        // not even until the watchdog next runs.
        drop(watched);
        assert_eq!((calls.active(), calls.stalled_now()), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_web_call_ended_leaves_the_stalled_list_with_its_place() {
        let calls = Calls::default();
        let watched = waiting_on_its_client(&calls).await;
        until_stalled(&calls).await;

        // Ended by the watchdog (here, as shutdown would), the body's
        // record goes at once, though hyper holds the body.
        end(&Arc::downgrade(&watched.slot), EndEarly::Shutdown);
        assert_eq!((calls.active(), calls.stalled_now()), (0, 0));
        drop(watched);
    }
}
