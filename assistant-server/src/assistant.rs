//! The `AssistantService` implementation: the tutorial's `TellStory` call,
//! a server-streaming call.

use std::{pin::Pin, time::Duration};

use assistant_proto::{
    assistant::{TellStoryRequest, TellStoryResponse, assistant_service_server::AssistantService},
    text::Escaped,
};
use bytes::Bytes;
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::info;

use crate::{
    calls::{Call, Calls},
    config::{Config, Finish},
    shutdown::pause,
    story::Story,
};

/// How many bytes of each chunk the `Read ...` log line shows.
const PREVIEW_BYTES: usize = 10;

/// The message that ends a finished story under `--finish cancel`.
pub const STORY_FINISHED: &str = "story finished";

/// The story-telling service. Cheap to clone: every call shares the story
/// in memory.
#[derive(Debug, Clone)]
pub struct Assistant {
    story: Story,
    pacing: Pacing,
    calls: Calls,
    shutdown: CancellationToken,
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
    /// A service that tells `story` as `config` says, counting its calls in
    /// `calls`. Cancelling `shutdown` ends every call in flight with
    /// UNAVAILABLE.
    pub fn new(story: Story, config: &Config, calls: Calls, shutdown: CancellationToken) -> Self {
        Self {
            story,
            pacing: Pacing {
                think_time: config.think_time,
                chunk_size: config.chunk_size,
                chunk_delay: config.chunk_delay,
                finish: config.finish,
            },
            calls,
            shutdown,
        }
    }
}

/// The stream of messages that answers one `TellStory` call.
pub type TellStoryStream = Pin<Box<dyn Stream<Item = Result<TellStoryResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AssistantService for Assistant {
    type TellStoryStream = TellStoryStream;

    async fn tell_story(
        &self,
        request: Request<TellStoryRequest>,
    ) -> Result<Response<Self::TellStoryStream>, Status> {
        let TellStoryRequest {
            user_name,
            institution,
        } = request.into_inner();
        info!("Received story-telling request from {user_name}, {institution}.");

        let call = self.calls.start(user_name.clone());
        let stream = tell(
            self.story.clone(),
            self.pacing,
            self.shutdown.clone(),
            call,
            user_name,
            institution,
        );
        Ok(Response::new(Box::pin(stream)))
    }
}

/// The messages of one call, produced lazily: each is made only when the
/// transport asks for it, so HTTP/2 flow control paces the story, and
/// dropping the stream (the client went away) stops it at once.
fn tell(
    story: Story,
    pacing: Pacing,
    shutdown: CancellationToken,
    mut call: Call,
    user_name: String,
    institution: String,
) -> impl Stream<Item = Result<TellStoryResponse, Status>> + Send + 'static {
    async_stream::stream! {
        let greeting = format!("Hi {user_name} from {institution}! Here's your story:\n\n");
        yield Ok(send(&mut call, Bytes::from(greeting)));

        if let Err(status) = pause(pacing.think_time, &shutdown).await {
            call.end();
            yield Err(status);
            return;
        }

        info!("Start streaming {}", story.name());
        for chunk in story.chunks(pacing.chunk_size) {
            info!(
                "Read {} bytes: {} ...",
                chunk.len(),
                Escaped(&chunk[..chunk.len().min(PREVIEW_BYTES)])
            );
            yield Ok(send(&mut call, chunk));
            if let Err(status) = pause(pacing.chunk_delay, &shutdown).await {
                call.end();
                yield Err(status);
                return;
            }
        }
        info!("[EOF]");
        yield Ok(send(&mut call, Bytes::from_static(b"\nThat's it! Hope you like the story~\n")));

        info!("Finishes streaming {} for {user_name} from {institution}.", story.name());
        call.end();
        if pacing.finish == Finish::Cancel {
            yield Err(Status::cancelled(STORY_FINISHED));
        }
    }
}

/// Counts `text` as sent and wraps it in a message.
fn send(call: &mut Call, text: Bytes) -> TellStoryResponse {
    call.sent(text.len());
    TellStoryResponse { text_chunk: text }
}
