//! One line per call, however it ended.

use std::{sync::Arc, time::Instant};

use assistant_proto::codes::code_name;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Status};
use tracing::{Span, info};

use crate::ops::metrics::{MethodMetrics, Metrics};

use super::{
    calls::{Calls, Gauge},
    connection::ConnectionSeat,
    context::CallContext,
    limits::FrameCounter,
    room::StalledGuard,
};

/// How one call went; logged when it is dropped, however the call ended.
pub(super) struct Record {
    /// The call's id: its key on the list of calls waiting for their
    /// request, which a stall's entry names so that ending the call from
    /// one list takes it off both.
    id: u64,
    pub(super) span: Span,
    pub(super) context: CallContext,
    started: Instant,
    /// The status the call ended with; `None` while it runs, and for good
    /// if the client leaves first.
    pub(super) status: Option<Code>,
    /// Response bytes handed to HTTP/2, framing included.
    pub(super) bytes: u64,
    /// Response messages, counted from their framing.
    pub(super) messages: FrameCounter,
    calls: Calls,
    /// Cancelled when shutdown ends this kind of call.
    pub(super) ending: CancellationToken,
    /// Cancelled if the server takes this call's place: the token of its
    /// entry on the list of calls waiting for their request, which its
    /// entries on the list of stalled calls share, so that a call on both
    /// (Chat answers before it reads) is ended once. The response side
    /// watches it wherever the call waits on its client.
    pub(super) place_taken: Option<CancellationToken>,
    /// The call's places among the server's calls and its connection's;
    /// `None` for health checks and reflection.
    seats: Option<(Gauge, Option<ConnectionSeat>)>,
    metrics: Metrics,
    /// The method's series; `None` if metrics are off.
    method: Option<Arc<MethodMetrics>>,
    /// Whether the call tells a story, whose text the metrics count.
    tells_story: bool,
    /// Messages and story bytes the metrics have been told of.
    counted: (u64, u64),
}

impl Record {
    /// Starts the record of call `id`, which holds its places (`seats`)
    /// until the record is dropped.
    pub(super) fn new(
        id: u64,
        span: Span,
        context: CallContext,
        calls: Calls,
        ending: CancellationToken,
        seats: Option<(Gauge, Option<ConnectionSeat>)>,
    ) -> Self {
        Self {
            id,
            span,
            context,
            started: Instant::now(),
            status: None,
            bytes: 0,
            messages: FrameCounter::default(),
            calls,
            ending,
            place_taken: None,
            seats,
            metrics: Metrics::default(),
            method: None,
            tells_story: false,
            counted: (0, 0),
        }
    }

    /// Counts the call in `metrics`, as a call of `method`; its text as
    /// story bytes if it `tells_story`.
    pub(super) fn count_in(
        &mut self,
        metrics: Metrics,
        method: Option<Arc<MethodMetrics>>,
        tells_story: bool,
    ) {
        self.metrics = metrics;
        self.method = method;
        self.tells_story = tells_story;
    }

    /// Tells the metrics of the messages and story bytes sent since last
    /// told.
    pub(super) fn count_sent(&mut self) {
        let messages = self.messages.count();
        if messages > self.counted.0 {
            if let Some(method) = &self.method {
                method.sent(messages - self.counted.0);
            }
            self.counted.0 = messages;
        }
        let story_bytes = self.context.payload_bytes();
        if self.tells_story && story_bytes > self.counted.1 {
            self.metrics.story_bytes(story_bytes - self.counted.1);
            self.counted.1 = story_bytes;
        }
    }

    /// The call waited `stalled` for its client to read.
    pub(super) fn stalled_for(&self, stalled: std::time::Duration) {
        self.metrics.stall(stalled);
    }

    /// Registers the call as stalled on its client; `None` for calls
    /// exempt from the cap, which hold no place to free.
    pub(super) fn stalled(&self) -> Option<StalledGuard> {
        let (_, Some(seat)) = self.seats.as_ref()? else {
            return None;
        };
        let place_taken = self.place_taken.as_ref()?;
        Some(
            self.calls
                .stalled(Arc::clone(seat.connection()), self.id, place_taken),
        )
    }

    /// Ends the call with `status` before its handler did.
    pub(super) fn end_early(&mut self, status: Status) -> Status {
        if status.code() == Code::Unavailable {
            self.calls.count_ended_by_shutdown();
        }
        self.status = Some(status.code());
        status
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        if !self.context.has_request() {
            // Nothing of the call's work began: a client that reset it at
            // once (as Rapid Reset does), a request that never came. One
            // line per such call would let a client write the log at will;
            // the connection counts them, and says so when it closes.
            if let Some((_, Some(seat))) = &self.seats {
                seat.connection().ended_before_request();
            }
            if let Some(method) = &self.method {
                let code = self.status.unwrap_or(Code::Cancelled);
                method.handled(code, self.started.elapsed());
            }
            return;
        }
        self.calls.count_ended();
        self.count_sent();
        let _entered = self.span.enter();
        let status = if self.context.is_client_gone() {
            None
        } else {
            self.status
        };
        let code = match status {
            Some(code) => code,
            // Dropped mid-call after shutdown ended calls: its connection
            // was closed, most likely stuck on a client that stopped reading.
            None if self.ending.is_cancelled() => {
                self.calls.count_ended_by_shutdown();
                info!("Connection closed by shutdown mid-call");
                Code::Unavailable
            }
            None => {
                // The bytes the server queued, some of which may not have
                // reached the client: it cannot know what was read.
                info!(
                    "Client went away: {} after {} bytes of text were queued for it",
                    self.context.client(),
                    self.context.payload_bytes()
                );
                Code::Cancelled
            }
        };
        if let Some(method) = &self.method {
            method.handled(code, self.started.elapsed());
        }
        info!(
            code = %code_name(code),
            messages = self.messages.count(),
            bytes = self.bytes,
            // Rounded to the microsecond, so it prints as 7.371, not
            // 7.3707590000000005.
            elapsed_ms = (self.started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
            "Call ended"
        );
    }
}
