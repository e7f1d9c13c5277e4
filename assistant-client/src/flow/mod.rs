//! Watching a story flow: bytes received, bytes typed, what waits between
//! the two, and who is waiting for whom (`--show-flow`, `--timeline`).
//!
//! A story passes through three places: the server, the client's HTTP/2
//! flow-control window (what has arrived but is not read yet), and the
//! typist. [`Flow`] counts what each part of the client has seen, as the
//! story goes:
//! - the channel reports each response's HTTP/2 stream: the bytes taken
//!   from it, the bytes it holds, and when the call waits for the server;
//! - the story reports each message it accepts, and the typist each group
//!   of characters it types.
//!
//! Bytes are counted as HTTP/2 carries them, gRPC framing included, so the
//! numbers match the window's (64 KiB) and the server's log; a message's
//! framing counts as typed when its text starts to be typed. With
//! `--compression`, received bytes are compressed and typed ones are not.
//!
//! [`show`] draws a status line from these counts; [`timeline`] samples them
//! into a chart.

pub(crate) mod show;
pub(crate) mod timeline;

use std::{
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::ClientError;

/// Flags that show the flow of a story.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Watching the flow")]
pub struct FlowArgs {
    /// While the story types, show bytes received, typed and waiting
    /// between the two, and who waits for whom: a status line on stderr
    /// when it is a terminal, otherwise a line every second.
    #[arg(long)]
    pub show_flow: bool,

    /// When the call ends, chart bytes received and typed over time, with
    /// the server's pauses and its waits on the client's window marked:
    /// FILE.svg for a picture, FILE.json for the data.
    #[arg(long, value_name = "FILE", value_parser = timeline::parse_path)]
    pub timeline: Option<PathBuf>,
}

impl FlowArgs {
    /// Whether any watching was asked for.
    pub(crate) fn any(&self) -> bool {
        self.show_flow || self.timeline.is_some()
    }
}

/// Who the story is waiting on at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Waiting {
    /// The client has read all that arrived and asks for more: the server
    /// has not sent it (it is thinking, pausing, or the network is slow).
    ForServer,
    /// The client's window is full: the server may send nothing more until
    /// the client reads.
    ForClient,
    /// Bytes are moving, or the client is typing what it has.
    Nobody,
}

/// The counts at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// Bytes of the response that arrived.
    pub(crate) received: u64,
    /// Bytes typed (counted as they arrived: framing included).
    pub(crate) typed: u64,
    /// Messages accepted so far.
    pub(crate) messages: u64,
    pub(crate) waiting: Waiting,
}

impl Snapshot {
    /// Bytes received and not yet typed: in HTTP/2's buffers, the decoder,
    /// or the message being typed.
    pub(crate) fn between(&self) -> u64 {
        self.received.saturating_sub(self.typed)
    }
}

/// The counts of one story's flow, shared by the channel, the story and
/// whatever shows them. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub(crate) struct Flow(Arc<Counts>);

#[derive(Debug, Default)]
struct Counts {
    /// Response bytes taken from HTTP/2 by the call.
    taken: AtomicU64,
    /// Bytes HTTP/2 held for responses that ended before they were taken.
    abandoned: AtomicU64,
    typed: AtomicU64,
    messages: AtomicU64,
    /// Whether the call is waiting for the server.
    waiting: AtomicBool,
    /// The current response's stream, while it lasts.
    stream: Mutex<Option<Stream>>,
}

/// What the client knows of one response's HTTP/2 stream.
///
/// Whether the server may send more is the stream's window, which h2 does
/// not show; it is worked out here the way h2 keeps it. Each piece taken is
/// given back at once (released), but h2 tells the server so (a
/// WINDOW_UPDATE) only when the window given back is at least half of
/// what the server may still send; a stream can stall with some window
/// given back and not yet announced.
#[derive(Debug)]
struct Stream {
    control: h2::FlowControl,
    /// Bytes taken from it, and given back.
    taken: u64,
    /// Bytes the server has been allowed to send in all: the first window,
    /// and every update announced since.
    granted: u64,
}

impl Stream {
    /// Bytes that have arrived on the stream.
    fn received(&self) -> u64 {
        self.taken + self.control.used_capacity() as u64
    }
}

impl Flow {
    fn stream(&self) -> std::sync::MutexGuard<'_, Option<Stream>> {
        self.0.stream.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A response began, with a window of `window` bytes: its bytes are
    /// received as they arrive in `control`.
    pub(crate) fn attach(&self, control: h2::FlowControl, window: u32) {
        *self.stream() = Some(Stream {
            control,
            taken: 0,
            granted: u64::from(window),
        });
    }

    /// The response ended: what HTTP/2 still held for it was received, and
    /// will never be taken.
    pub(crate) fn detach(&self) {
        if let Some(stream) = self.stream().take() {
            self.0
                .abandoned
                .fetch_add(stream.control.used_capacity() as u64, Ordering::Relaxed);
        }
        self.0.waiting.store(false, Ordering::Relaxed);
    }

    /// The call took `bytes` from HTTP/2, and gave them back to the window.
    pub(crate) fn took(&self, bytes: usize, window: u32) {
        self.0.taken.fetch_add(bytes as u64, Ordering::Relaxed);
        if let Some(stream) = &mut *self.stream() {
            stream.taken += bytes as u64;
            // h2's rule (`FlowControl::unclaimed_capacity`): announce what
            // was given back once it is half of what the server may still
            // send.
            let may_send = stream.granted.saturating_sub(stream.received());
            let unannounced = (u64::from(window) + stream.taken).saturating_sub(stream.granted);
            if unannounced > 0 && unannounced >= may_send / 2 {
                stream.granted += unannounced;
            }
        }
    }

    /// The call started or stopped waiting for the server.
    pub(crate) fn set_waiting(&self, waiting: bool) {
        self.0.waiting.store(waiting, Ordering::Relaxed);
    }

    /// The story accepted a message of `wire` bytes (framing included),
    /// `text` of which are new text to type: the rest counts as typed now.
    pub(crate) fn accepted(&self, wire: u64, text: u64) {
        self.0.messages.fetch_add(1, Ordering::Relaxed);
        self.typed(wire.saturating_sub(text));
    }

    /// `bytes` of text were typed.
    pub(crate) fn typed(&self, bytes: u64) {
        self.0.typed.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Takes back `bytes` counted as typed too soon.
    pub(crate) fn untyped(&self, bytes: u64) {
        self.0.typed.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// The counts now.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let (held, window_full) = match &*self.stream() {
            Some(stream) => (
                stream.control.used_capacity() as u64,
                stream.received() >= stream.granted,
            ),
            None => (0, false),
        };
        // Bytes held for the call have arrived: whatever the call is still
        // to take, the server is no longer the one it waits for.
        let waiting = if self.0.waiting.load(Ordering::Relaxed) && held == 0 {
            Waiting::ForServer
        } else if window_full {
            Waiting::ForClient
        } else {
            Waiting::Nobody
        };
        Snapshot {
            received: self.0.taken.load(Ordering::Relaxed)
                + self.0.abandoned.load(Ordering::Relaxed)
                + held,
            typed: self.0.typed.load(Ordering::Relaxed),
            messages: self.0.messages.load(Ordering::Relaxed),
            waiting,
        }
    }
}

/// How often the flow is sampled for the chart, and the status line
/// checked for a change.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);

/// Watches `flow` as `args` ask until `done` is cancelled, then finishes:
/// clears the status line and writes the chart.
pub(crate) async fn watch(
    flow: Flow,
    args: FlowArgs,
    done: CancellationToken,
) -> Result<(), ClientError> {
    let started = Instant::now();
    let mut status = args.show_flow.then(show::Status::for_stderr);
    let mut samples = args.timeline.as_ref().map(|_| Vec::new());
    let mut ticks = tokio::time::interval(SAMPLE_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let finished = tokio::select! {
            _ = ticks.tick() => false,
            () = done.cancelled() => true,
        };
        let now = Instant::now();
        let snapshot = flow.snapshot();
        let at = now - started;
        if let Some(samples) = &mut samples {
            samples.push(timeline::Sample::new(at, snapshot));
        }
        if let Some(status) = &mut status {
            status.update(at, snapshot, finished);
        }
        if finished {
            break;
        }
    }
    drop(status);
    match (args.timeline, samples) {
        (Some(path), Some(samples)) => {
            timeline::write(&path, &samples)?;
            tracing::info!("Timeline written to {}", path.display());
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_counts_as_typed_when_its_message_is_accepted() {
        let flow = Flow::default();
        flow.took(1036, 65_536);
        flow.accepted(1036, 1024);
        flow.typed(1000);
        let snapshot = flow.snapshot();
        assert_eq!(snapshot.received, 1036);
        assert_eq!(snapshot.typed, 12 + 1000);
        assert_eq!(snapshot.between(), 24);
        assert_eq!(snapshot.messages, 1);
        assert_eq!(snapshot.waiting, Waiting::Nobody);
        flow.set_waiting(true);
        assert_eq!(flow.snapshot().waiting, Waiting::ForServer);
    }
}
