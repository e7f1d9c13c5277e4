//! The `AssistantService` implementation: the tutorial's `TellStory` call,
//! a server-streaming call.

use std::{pin::Pin, time::Duration};

use assistant_proto::{
    assistant::{TellStoryRequest, TellStoryResponse, assistant_service_server::AssistantService},
    text::Escaped,
};
use bytes::Bytes;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use tracing::info;

use crate::{
    calls::CallContext,
    config::{Config, Finish},
    story::Story,
    validate,
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
    /// A service that tells `story` as `config` says.
    pub fn new(story: Story, config: &Config) -> Self {
        Self {
            story,
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
pub type TellStoryStream = Pin<Box<dyn Stream<Item = Result<TellStoryResponse, Status>> + Send>>;

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
        } = request.into_inner();
        validate::name("user_name", &user_name)?;
        validate::name("institution", &institution)?;
        call.identify(&user_name);
        info!("Received story-telling request from {user_name}, {institution}.");

        let stream = tell(
            self.story.clone(),
            self.pacing,
            call,
            user_name,
            institution,
        );
        Ok(Response::new(Box::pin(stream)))
    }
}

/// The messages of one call, produced lazily: each is made only when the
/// transport asks for it, so HTTP/2 flow control paces the story, and
/// dropping the stream (the client went away, the deadline passed, the
/// server is shutting down) stops it at once.
fn tell(
    story: Story,
    pacing: Pacing,
    call: CallContext,
    user_name: String,
    institution: String,
) -> impl Stream<Item = Result<TellStoryResponse, Status>> + Send + 'static {
    async_stream::stream! {
        let greeting = format!("Hi {user_name} from {institution}! Here's your story:\n\n");
        yield Ok(send(&call, Bytes::from(greeting)));
        pause(pacing.think_time).await;

        info!("Start streaming {}", story.name());
        for chunk in story.chunks(pacing.chunk_size) {
            info!(
                "Read {} bytes: {} ...",
                chunk.len(),
                Escaped(&chunk[..chunk.len().min(PREVIEW_BYTES)])
            );
            yield Ok(send(&call, chunk));
            pause(pacing.chunk_delay).await;
        }
        info!("[EOF]");
        yield Ok(send(&call, Bytes::from_static(b"\nThat's it! Hope you like the story~\n")));

        info!("Finishes streaming {} for {user_name} from {institution}.", story.name());
        if pacing.finish == Finish::Cancel {
            yield Err(Status::cancelled(STORY_FINISHED));
        }
    }
}

/// Counts `text` as sent and wraps it in a message.
fn send(call: &CallContext, text: Bytes) -> TellStoryResponse {
    call.sent(text.len());
    TellStoryResponse { text_chunk: text }
}

/// Waits `delay`; no timer at all for zero.
pub(crate) async fn pause(delay: Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}
