//! The `AssistantService` implementation: the tutorial's `TellStory` call,
//! a server-streaming call.

use std::{pin::Pin, time::Duration};

use assistant_proto::{
    assistant::{
        ListStoriesRequest, ListStoriesResponse, StoryInfo, TellStoryRequest, TellStoryResponse,
        assistant_service_server::AssistantService,
    },
    sequence,
    text::Escaped,
};
use bytes::Bytes;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use tracing::info;

use super::{pause, validate};
use crate::{
    call::CallContext,
    config::{Config, Finish},
    library::{Library, Story},
};

/// How many bytes of each chunk the `Read ...` log line shows.
const PREVIEW_BYTES: usize = 10;

/// The message that ends a finished story under `--finish cancel`.
const STORY_FINISHED: &str = "story finished";

/// The story-telling service. Cheap to clone: every call shares the
/// library, and the stories it holds in memory.
#[derive(Debug, Clone)]
pub(crate) struct Assistant {
    library: Library,
    pacing: Pacing,
}

/// The settings that shape one call's stream.
#[derive(Debug, Clone, Copy)]
struct Pacing {
    think_time: Duration,
    chunk_size: usize,
    chunk_delay: Duration,
    finish: Finish,
}

impl Assistant {
    /// A service that tells the stories in `library` as `config` says.
    pub(crate) fn new(library: Library, config: &Config) -> Self {
        Self {
            library,
            pacing: Pacing {
                think_time: config.think_time,
                chunk_size: config.chunk_size,
                chunk_delay: config.chunk_delay,
                finish: config.finish,
            },
        }
    }
}

/// The stream of messages that answers one `TellStory` call.
pub(crate) type TellStoryStream =
    Pin<Box<dyn Stream<Item = Result<TellStoryResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AssistantService for Assistant {
    type TellStoryStream = TellStoryStream;

    async fn tell_story(
        &self,
        request: Request<TellStoryRequest>,
    ) -> Result<Response<Self::TellStoryStream>, Status> {
        let call = CallContext::of(&request);
        let TellStoryRequest {
            user_name,
            institution,
            story,
            resume_from,
            story_version,
        } = request.into_inner();
        validate::name("user_name", &user_name)?;
        validate::name("institution", &institution)?;
        call.identify(&user_name);
        let story = self.library.get(&story).await?;
        if !story_version.is_empty() && story_version != story.version() {
            return Err(Status::aborted(format!(
                "cannot resume {} from byte {resume_from}: its text has changed since \
                 ({story_version} then, {} now); ask for it again from the start",
                story.name(),
                story.version()
            )));
        }

        let greeting = Bytes::from(sequence::greeting(&user_name, &institution));
        let total = sequence::total_len(&user_name, &institution, story.text().len() as u64);
        if resume_from > total {
            return Err(Status::out_of_range(format!(
                "cannot resume from byte {resume_from}: this story's call is {total} bytes"
            )));
        }
        if resume_from == 0 {
            info!("Received story-telling request from {user_name}, {institution}.");
        } else {
            info!(
                "Received request to resume {} for {user_name} from byte {resume_from}.",
                story.name()
            );
        }

        let telling = Telling {
            story,
            pacing: self.pacing,
            call,
            greeting,
            resume_from,
            user_name,
            institution,
        };
        Ok(Response::new(Box::pin(telling.into_stream())))
    }

    async fn list_stories(
        &self,
        _: Request<ListStoriesRequest>,
    ) -> Result<Response<ListStoriesResponse>, Status> {
        let stories = self
            .library
            .list()
            .await?
            .into_iter()
            .map(|entry| StoryInfo {
                name: entry.name,
                size: entry.size,
                title: entry.title,
            })
            .collect();
        Ok(Response::new(ListStoriesResponse { stories }))
    }
}

/// One call's story: the byte sequence greeting + story + ending, sent
/// from `resume_from` on.
struct Telling {
    story: Story,
    pacing: Pacing,
    call: CallContext,
    greeting: Bytes,
    resume_from: u64,
    user_name: String,
    institution: String,
}

impl Telling {
    /// The messages of the call, produced lazily: each is made only when
    /// the transport asks for it, so HTTP/2 flow control paces the story,
    /// and dropping the stream (the client went away, the deadline passed,
    /// the server is shutting down) stops it at once.
    ///
    /// Every message carries its offset in the sequence. A resumed call
    /// starts mid-piece where it must, and skips the greeting and the
    /// think-time once past them.
    fn into_stream(self) -> impl Stream<Item = Result<TellStoryResponse, Status>> + Send + 'static {
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
        // The first message, whichever it is, says which text this is.
        let mut version = Some(story.version().to_owned());
        async_stream::stream! {
            if let Some(rest) = from(&greeting, 0, resume_from) {
                yield Ok(send(&call, rest, resume_from, version.take()));
                pause(pacing.think_time).await;
            }

            info!("Start streaming {}", story.name());
            let mut start = story_start;
            for chunk in story.chunks(pacing.chunk_size) {
                let chunk_start = start;
                start += chunk.len() as u64;
                let Some(piece) = from(&chunk, chunk_start, resume_from) else { continue };
                info!(
                    "Read {} bytes: {} ...",
                    piece.len(),
                    Escaped(&piece[..piece.len().min(PREVIEW_BYTES)])
                );
                let offset = chunk_start.max(resume_from);
                yield Ok(send(&call, piece, offset, version.take()));
                pause(pacing.chunk_delay).await;
            }
            info!("[EOF]");
            if let Some(rest) = from(&Bytes::from_static(sequence::ENDING.as_bytes()), ending_start, resume_from) {
                yield Ok(send(&call, rest, ending_start.max(resume_from), version.take()));
            }

            info!("Finishes streaming {} for {user_name} from {institution}.", story.name());
            if pacing.finish == Finish::Cancel {
                yield Err(Status::cancelled(STORY_FINISHED));
            }
        }
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

/// Counts `text` as sent and wraps it in a message.
fn send(
    call: &CallContext,
    text: Bytes,
    offset: u64,
    story_version: Option<String>,
) -> TellStoryResponse {
    call.sent(text.len());
    TellStoryResponse {
        text_chunk: text,
        offset,
        story_version: story_version.unwrap_or_default(),
    }
}
