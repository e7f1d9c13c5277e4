//! Benchmark baselines for the assistant service.
//!
//! [`Floor`] is the leanest tonic service that does `TellStory`'s work, as a
//! baseline for the project's server.
//!
//! The story is preloaded and sliced into `Bytes` chunks once; each call
//! sends the greeting, the chunks and the ending, then ends with CANCELLED
//! `story finished`, exactly as `assistant-server --think-time 0
//! --chunk-delay 0` does, but with stock tonic settings, no logging, no
//! pacing, no validation, and none of the server's operational layers.
//!

use assistant_proto::{
    assistant::{
        ListStoriesRequest, ListStoriesResponse, StoryInfo, TellStoryRequest, TellStoryResponse,
        assistant_service_server::{AssistantService, AssistantServiceServer},
    },
    sequence,
};
use bytes::Bytes;
use tonic::{Request, Response, Status};

const STORY: &[u8] = include_bytes!("../../stories/alice.txt");

/// The floor's service: the story preloaded as zero-copy chunks.
#[derive(Debug)]
pub struct Floor {
    chunks: Vec<Bytes>,
    /// What the first message says the story's version is, as the project
    /// says it: `sha256:` and 128 bits of the text's SHA-256.
    version: String,
}

impl Default for Floor {
    fn default() -> Self {
        use sha2::Digest;
        use std::fmt::Write;
        let story = Bytes::from_static(STORY);
        let chunks = (0..story.len())
            .step_by(1024)
            .map(|start| story.slice(start..story.len().min(start + 1024)))
            .collect();
        let mut version = String::from("sha256:");
        for byte in &sha2::Sha256::digest(STORY)[..16] {
            let _ = write!(version, "{byte:02x}");
        }
        Self { chunks, version }
    }
}

/// The floor as a tonic service.
pub fn service() -> AssistantServiceServer<Floor> {
    AssistantServiceServer::new(Floor::default())
}

type Messages = std::vec::IntoIter<Result<TellStoryResponse, Status>>;

#[tonic::async_trait]
impl AssistantService for Floor {
    type TellStoryStream = tokio_stream::Iter<Messages>;

    async fn tell_story(
        &self,
        request: Request<TellStoryRequest>,
    ) -> Result<Response<Self::TellStoryStream>, Status> {
        let request = request.into_inner();
        let greeting = sequence::greeting(&request.user_name, &request.institution);
        let mut messages = Vec::with_capacity(self.chunks.len() + 3);
        let mut offset = 0;
        let mut version = Some(self.version.clone());
        let mut push = |text: Bytes| {
            let len = text.len() as u64;
            messages.push(Ok(TellStoryResponse {
                text_chunk: text,
                offset,
                story_version: version.take().unwrap_or_default(),
            }));
            offset += len;
        };
        push(Bytes::from(greeting));
        for chunk in &self.chunks {
            push(chunk.clone());
        }
        push(Bytes::from_static(sequence::ENDING.as_bytes()));
        messages.push(Err(Status::cancelled("story finished")));
        Ok(Response::new(tokio_stream::iter(messages)))
    }

    async fn list_stories(
        &self,
        _: Request<ListStoriesRequest>,
    ) -> Result<Response<ListStoriesResponse>, Status> {
        Ok(Response::new(ListStoriesResponse {
            stories: vec![StoryInfo {
                name: "alice.txt".into(),
                size: STORY.len() as u64,
                title: String::new(),
            }],
        }))
    }
}
