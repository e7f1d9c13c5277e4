//! The story library and resumable calls: serving a directory of stories
//! safely, listing them, and continuing a call from any byte.

use std::{future::Future, time::Duration};

use assistant_proto::assistant::{
    ListStoriesRequest, TellStoryRequest, assistant_service_client::AssistantServiceClient,
};
use assistant_server::Config;
use assistant_test_support::{
    LogCapture, PATIENCE, TestServer, WriteFile,
    fixtures::{ENDING, GREETING, fast_config, whole_story},
};
use tokio::time::timeout;
use tonic::{Code, transport::Channel};

async fn client(server: &TestServer) -> AssistantServiceClient<Channel> {
    AssistantServiceClient::new(
        Channel::from_shared(server.url())
            .unwrap()
            .connect()
            .await
            .unwrap(),
    )
}

fn request(story: &str, resume_from: u64) -> TellStoryRequest {
    TellStoryRequest {
        user_name: "Peter S".into(),
        institution: "SUSTech".into(),
        story: story.into(),
        resume_from,
        ..Default::default()
    }
}

/// Every message's text, each checked to start where the one before
/// ended, and the status that ended the call.
async fn tell(
    client: &mut AssistantServiceClient<Channel>,
    request: TellStoryRequest,
) -> Result<(Vec<u8>, Code), tonic::Status> {
    let mut next = request.resume_from;
    let mut stream = client.tell_story(request).await?.into_inner();
    let mut text = Vec::new();
    loop {
        match stream.message().await {
            Ok(Some(message)) => {
                assert_eq!(
                    message.offset, next,
                    "each message starts where the last ended"
                );
                next += message.text_chunk.len() as u64;
                text.extend_from_slice(&message.text_chunk);
            }
            Ok(None) => return Ok((text, Code::Ok)),
            Err(status) => return Ok((text, status.code())),
        }
    }
}

const ALICE: &str = "Alice's short story\nDown the hole.\n";
const SNARK: &str = "The Hunting of the Snark\nJust the place for a Snark!\n";

fn library() -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().unwrap();
    dir.write("alice.txt", ALICE);
    dir.write("snark.txt", SNARK);
    dir.write("notes.md", "not a story\n");
    dir.write(".hidden.txt", "not listed\n");
    let config = Config {
        stories_dir: Some(dir.path().to_owned()),
        ..fast_config()
    };
    (dir, config)
}

/// Greeting, `story` and ending, as Peter S from SUSTech gets them.
fn whole_story_of(story: &str) -> Vec<u8> {
    format!("{GREETING}{story}{ENDING}").into_bytes()
}

mod directory;
mod resume;
