//! The `AssistantService`: the tutorial's `TellStory` call (server
//! streaming), and `ListStories`.
//!
//! A story call's checks and opening lines are the same however it is
//! answered ([`Assistant::begin`]); its pieces come from [`telling`]. They
//! reach HTTP/2 one of two ways: as messages framed around the story's own
//! bytes ([`direct`], the usual way), or through tonic's encoder when
//! responses are compressed (`--compress-responses`).

pub(super) mod direct;
mod telling;

use std::{pin::Pin, time::Duration};

use assistant_proto::{
    assistant::{
        ListStoriesRequest, ListStoriesResponse, StoryInfo, TellStoryRequest, TellStoryResponse,
        assistant_service_server::AssistantService,
    },
    sequence,
};
use bytes::Bytes;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use tracing::info;

use self::telling::Telling;
use super::validate;
use crate::{
    call::CallContext,
    config::{Config, Finish},
    library::Library,
    wire::{FRAMINGS_BUDGET, Framings},
};

/// The story-telling service. Cheap to clone: every call shares the
/// library, and the stories it holds in memory.
#[derive(Debug, Clone)]
pub(crate) struct Assistant {
    library: Library,
    pacing: Pacing,
    /// The chunk messages of stories told, framed once for calls alike.
    framings: Framings,
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
            framings: Framings::new(FRAMINGS_BUDGET),
        }
    }

    /// Checks a story request, finds the story and logs the tutorial's
    /// opening line; the call's pieces are then the telling's.
    async fn begin(&self, call: CallContext, request: TellStoryRequest) -> Result<Telling, Status> {
        let TellStoryRequest {
            user_name,
            institution,
            story,
            resume_from,
            story_version,
        } = request;
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
        Ok(Telling {
            story,
            pacing: self.pacing,
            call,
            greeting,
            resume_from,
            user_name,
            institution,
            framing: None,
        })
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
        let telling = self.begin(call, request.into_inner()).await?;
        Ok(Response::new(Box::pin(telling.into_messages())))
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
