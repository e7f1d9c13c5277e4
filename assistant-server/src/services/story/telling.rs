//! One call's story, as the pieces of its byte sequence: a greeting, the
//! story in chunks, and an ending, each with its offset, paced and logged
//! as the tutorial's server paces and logs them.

use std::sync::Arc;

use assistant_proto::{assistant::TellStoryResponse, sequence, text::Escaped};
use bytes::Bytes;
use tokio_stream::{Stream, StreamExt};
use tonic::Status;
use tracing::info;

use super::Pacing;
use crate::{call::CallContext, config::Finish, library::Story, services::pause};

/// How many bytes of each chunk the `Read ...` log line shows.
const PREVIEW_BYTES: usize = 10;

/// The message that ends a finished story under `--finish cancel`.
const STORY_FINISHED: &str = "story finished";

/// One message's worth of the call's byte sequence.
#[derive(Debug)]
pub(super) struct Piece {
    /// A zero-copy slice of the greeting, the story or the ending.
    pub(super) text: Bytes,
    /// Where `text` starts in the sequence.
    pub(super) offset: u64,
    /// On the call's first message only: which text this is.
    pub(super) version: Option<Arc<str>>,
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
    pub(super) fn into_pieces(self) -> impl Stream<Item = Result<Piece, Status>> + Send + 'static {
        let Self {
            story,
            pacing,
            call,
            greeting,
            resume_from,
            user_name,
            institution,
        } = self;
        let story_start = greeting.len() as u64;
        let ending_start = story_start + story.text().len() as u64;
        // The first piece, whichever it is, says which text this is.
        let mut version = Some(story.shared_version());
        let mut piece = move |text: Bytes, offset: u64| {
            call.sent(text.len());
            Piece {
                text,
                offset,
                version: version.take(),
            }
        };
        async_stream::stream! {
            if let Some(rest) = from(&greeting, 0, resume_from) {
                yield Ok(piece(rest, resume_from));
                pause(pacing.think_time).await;
            }

            info!("Start streaming {}", story.name());
            let mut start = story_start;
            for chunk in story.chunks(pacing.chunk_size) {
                let chunk_start = start;
                start += chunk.len() as u64;
                let Some(text) = from(&chunk, chunk_start, resume_from) else { continue };
                info!(
                    "Read {} bytes: {} ...",
                    text.len(),
                    Escaped(&text[..text.len().min(PREVIEW_BYTES)])
                );
                yield Ok(piece(text, chunk_start.max(resume_from)));
                pause(pacing.chunk_delay).await;
            }
            info!("[EOF]");
            if let Some(rest) = from(&Bytes::from_static(sequence::ENDING.as_bytes()), ending_start, resume_from) {
                yield Ok(piece(rest, ending_start.max(resume_from)));
            }

            info!("Finishes streaming {} for {user_name} from {institution}.", story.name());
            if pacing.finish == Finish::Cancel {
                yield Err(Status::cancelled(STORY_FINISHED));
            }
        }
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
