//! One call's story, as the pieces of its byte sequence: a greeting, the
//! story in chunks, and an ending, each with its offset, paced and logged
//! as the tutorial's server paces and logs them.

use std::{
    future::Future,
    ops::Range,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};

use assistant_proto::{assistant::TellStoryResponse, sequence};
use bytes::Bytes;
use tokio::time::{Instant, Sleep};
use tokio_stream::{Stream, StreamExt};
use tonic::Status;
use tracing::info;

use super::Pacing;
use crate::{
    call::CallContext,
    config::Finish,
    library::Story,
    wire::{Framing, Framings},
};

/// The message that ends a finished story under `--finish cancel`.
pub(super) const STORY_FINISHED: &str = "story finished";

/// One message's worth of the call's byte sequence.
#[derive(Debug)]
pub(super) struct Piece {
    /// A zero-copy slice of the greeting, the story or the ending.
    pub(super) text: Bytes,
    /// Where `text` starts in the sequence.
    pub(super) offset: u64,
    /// On the call's first message only: which text this is.
    pub(super) version: Option<Arc<str>>,
    /// Where the message lies in the telling's [`Framing`], if it is
    /// there: [`Pieces::framing`].
    pub(super) framed: Option<Range<usize>>,
}

/// One call's story: the byte sequence greeting + story + ending, sent
/// from `resume_from` on.
#[derive(Debug)]
pub(super) struct Telling {
    pub(super) story: Story,
    pub(super) pacing: Pacing,
    pub(super) call: CallContext,
    pub(super) greeting: Bytes,
    pub(super) resume_from: u64,
    pub(super) user_name: String,
    pub(super) institution: String,
    /// The story's chunk messages for this call, framed already, if they
    /// are kept: see [`Telling::share_framing`].
    pub(super) framing: Option<Arc<Framing>>,
}

impl Telling {
    /// The pieces of the call, produced lazily: each is made only when
    /// the transport asks for it, so HTTP/2 flow control paces the story,
    /// and dropping the stream (the client went away, the deadline passed,
    /// the server is shutting down) stops it at once. The stream ends with
    /// the status the call ends with, under `--finish cancel`.
    ///
    /// A resumed call starts mid-piece where it must, and skips the
    /// greeting and the think-time once past them.
    pub(super) fn into_pieces(self) -> Pieces {
        // The first piece, whichever it is, says which text this is.
        let version = Some(self.story.shared_version());
        Pieces {
            telling: self,
            version,
            next: Next::Greeting,
            pause: Pause::None,
            timer: None,
        }
    }

    /// Takes the story's chunk messages, for this call's offsets and chunk
    /// size, from `framings`, framed already, if they are kept there or
    /// there is room to keep them.
    pub(super) fn share_framing(&mut self, framings: &Framings) {
        self.framing = framings.get(
            self.story.text(),
            self.greeting.len() as u64,
            self.pacing.chunk_size,
        );
    }

    /// The pieces as messages, for tonic to encode.
    pub(super) fn into_messages(
        self,
    ) -> impl Stream<Item = Result<TellStoryResponse, Status>> + Send + 'static {
        self.into_pieces().map(|piece| {
            piece.map(|piece| TellStoryResponse {
                text_chunk: piece.text,
                offset: piece.offset,
                story_version: piece.version.map(|v| v.to_string()).unwrap_or_default(),
            })
        })
    }
}

/// One call's pieces, as a stream; see [`Telling::into_pieces`].
///
/// Written by hand rather than as a generator: a paced call holds this for
/// the whole story, and it is made of little but the call's own fields and
/// where it is; and each piece is a few steps, not a generator's turn.
#[derive(Debug)]
pub(super) struct Pieces {
    telling: Telling,
    /// Taken by the first piece.
    version: Option<Arc<str>>,
    /// What comes after the pause, if any.
    next: Next,
    /// The pause before `next`.
    pause: Pause,
    /// The pauses' timer, made at the first and reset for the next.
    timer: Option<Pin<Box<Sleep>>>,
}

/// The pause before a telling's next piece.
#[derive(Debug, Clone, Copy)]
enum Pause {
    /// None: the next piece is made when asked for.
    None,
    /// This long, not yet begun: it begins when the piece is asked for,
    /// as the tutorial's server sleeps before it reads on.
    Owed(Duration),
    /// Under way, on the timer.
    Running,
}

/// Where a telling is in its sequence.
#[derive(Debug, Clone, Copy)]
enum Next {
    /// The greeting, or what is left of it.
    Greeting,
    /// The story's first line in the log.
    StoryStart,
    /// The chunk that starts at this offset in the sequence.
    Chunk(u64),
    /// The ending, or what is left of it.
    Ending,
    /// The last line in the log, and the status under `--finish cancel`.
    Finish,
    /// Nothing more.
    Done,
}

impl Pieces {
    /// The next piece, or the status that ends the call, or `None` at the
    /// end; logs as the tutorial's server does on the way.
    fn step(&mut self) -> Option<Result<Piece, Status>> {
        let telling = &self.telling;
        let resume_from = telling.resume_from;
        let story_start = telling.greeting.len() as u64;
        let ending_start = story_start + telling.story.text().len() as u64;
        loop {
            match self.next {
                Next::Greeting => {
                    self.next = Next::StoryStart;
                    if let Some(rest) = from(&telling.greeting, 0, resume_from) {
                        self.pause = Pause::Owed(telling.pacing.think_time);
                        return Some(Ok(self.piece(rest, resume_from)));
                    }
                }
                Next::StoryStart => {
                    info!("Start streaming {}", telling.story.name());
                    self.next = Next::Chunk(story_start);
                }
                Next::Chunk(start) if start >= ending_start => {
                    info!("[EOF]");
                    self.next = Next::Ending;
                }
                Next::Chunk(start) => {
                    // The command line allows no empty chunks; a library
                    // user's zero must not stall the story.
                    let size = telling.pacing.chunk_size.max(1) as u64;
                    let end = (start + size).min(ending_start);
                    self.next = Next::Chunk(end);
                    if end <= resume_from {
                        continue;
                    }
                    let from = start.max(resume_from);
                    let in_text = (from - story_start) as usize..(end - story_start) as usize;
                    let text = telling.story.text().slice(in_text.clone());
                    // Given as text, not a format: the line is copied into
                    // the log as it is, with no pass through `fmt` first.
                    info!(message = &*telling.story.read_line(in_text, size as usize));
                    self.pause = Pause::Owed(telling.pacing.chunk_delay);
                    // A whole chunk, after the first message (which carries
                    // the version), is framed already.
                    let framed = match &telling.framing {
                        Some(framing) if from == start && self.version.is_none() => {
                            framing.message(((start - story_start) / size) as usize)
                        }
                        _ => None,
                    };
                    let mut piece = self.piece(text, from);
                    piece.framed = framed;
                    return Some(Ok(piece));
                }
                Next::Ending => {
                    self.next = Next::Finish;
                    let ending = Bytes::from_static(sequence::ENDING.as_bytes());
                    if let Some(rest) = from(&ending, ending_start, resume_from) {
                        // The whole ending, after the first message, is
                        // framed already, right after the last chunk.
                        let framed = match &telling.framing {
                            Some(framing)
                                if resume_from <= ending_start && self.version.is_none() =>
                            {
                                Some(framing.ending())
                            }
                            _ => None,
                        };
                        let mut piece = self.piece(rest, ending_start.max(resume_from));
                        piece.framed = framed;
                        return Some(Ok(piece));
                    }
                }
                Next::Finish => {
                    self.next = Next::Done;
                    info!(
                        "Finishes streaming {} for {} from {}.",
                        telling.story.name(),
                        telling.user_name,
                        telling.institution
                    );
                    if telling.pacing.finish == Finish::Cancel {
                        return Some(Err(Status::cancelled(STORY_FINISHED)));
                    }
                }
                Next::Done => return None,
            }
        }
    }

    /// `text`, which starts at `offset` in the sequence, as a piece.
    fn piece(&mut self, text: Bytes, offset: u64) -> Piece {
        self.telling.call.sent(text.len());
        Piece {
            text,
            offset,
            version: self.version.take(),
            framed: None,
        }
    }

    /// The framed messages that pieces' [`Piece::framed`] point into.
    pub(super) fn framing(&self) -> Option<&Bytes> {
        self.telling.framing.as_deref().map(Framing::bytes)
    }
}

impl Stream for Pieces {
    type Item = Result<Piece, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Pause::Owed(delay) = this.pause {
            this.pause = Pause::None;
            if !delay.is_zero() {
                // As tokio's `sleep` does, a delay past any clock's reach
                // waits 30 years.
                let now = Instant::now();
                let deadline = now
                    .checked_add(delay)
                    .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 86_400));
                match &mut this.timer {
                    Some(timer) => timer.as_mut().reset(deadline),
                    None => this.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
                }
                this.pause = Pause::Running;
            }
        }
        if let (Pause::Running, Some(timer)) = (this.pause, &mut this.timer) {
            ready!(timer.as_mut().poll(cx));
            this.pause = Pause::None;
        }
        Poll::Ready(this.step())
    }
}

/// The part of `piece` (which starts at `start` in the sequence) at or
/// after `resume_from`, as a zero-copy slice; `None` if all of it is
/// before.
fn from(piece: &Bytes, start: u64, resume_from: u64) -> Option<Bytes> {
    let end = start + piece.len() as u64;
    if end <= resume_from {
        return None;
    }
    let skip = resume_from.saturating_sub(start) as usize;
    Some(piece.slice(skip..))
}

#[cfg(test)]
mod tests;
