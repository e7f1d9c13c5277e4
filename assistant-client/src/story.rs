//! The `TellStory` call: ask for a story and type it out as it arrives.

use std::{future::Future, time::Duration};

use assistant_proto::assistant::{
    TellStoryRequest, assistant_service_client::AssistantServiceClient,
};
use tokio::io::AsyncWrite;
use tonic::{Code, transport::Channel};
use tracing::info;

use crate::{
    ClientError,
    call::{self, CallError, Ending},
    typing::Typist,
};

/// What to ask for and how to type it.
#[derive(Debug, Clone)]
pub struct StoryRequest {
    /// Who is asking.
    pub user_name: String,
    /// Where they are from.
    pub institution: String,
    /// Characters typed at a time.
    pub buffer_size: usize,
    /// Pause between groups of characters.
    pub step: Duration,
}

/// Calls `TellStory` and types the story to `out`, until the server ends
/// the stream, `out` closes, `timeout` runs out, or `interrupt` completes.
///
/// Receiving is paced by typing: the next message is read only once the
/// last one is typed, so HTTP/2 flow control holds the server back when
/// the reader is slow. Dropping the response stream cancels the call on the
/// server.
pub async fn tell_story<W: AsyncWrite + Unpin>(
    channel: Channel,
    request: &StoryRequest,
    timeout: Option<Duration>,
    out: W,
    interrupt: impl Future<Output = ()>,
) -> Result<Ending, ClientError> {
    info!(
        "Requesting with user_name={}, institution={}",
        request.user_name, request.institution
    );
    let mut typist = Typist::new(out, request.buffer_size, request.step);
    let mut client = AssistantServiceClient::new(channel);

    let story = async {
        let message = TellStoryRequest {
            user_name: request.user_name.clone(),
            institution: request.institution.clone(),
        };
        let result = async {
            let mut stream = client
                .tell_story(call::request(message, timeout))
                .await?
                .into_inner();
            while let Some(message) = stream.message().await? {
                typist.type_bytes(&message.text_chunk).await?;
            }
            Ok::<_, CallError>(())
        }
        .await;
        // Whatever the stream left unfinished (a character cut short) is
        // typed before the ending is reported.
        if matches!(result, Ok(()) | Err(CallError::Status(_))) {
            typist.finish().await?;
        }
        result
    };

    let ending = match call::run(story, interrupt, timeout).await? {
        Ending::Failed(status) if status.code() == Code::Cancelled => Ending::CancelledByServer,
        ending => ending,
    };
    report(&ending);
    Ok(ending)
}

/// Logs how the call ended, as the tutorial's client does.
fn report(ending: &Ending) {
    match ending {
        Ending::CancelledByServer => info!("Stream cancelled by server. Exiting gracefully."),
        Ending::Finished => info!("Story finished."),
        Ending::CancelledByUser => info!("Stream cancelled by user."),
        Ending::OutputClosed => return,
        Ending::Failed(_) => ending.report(),
    }
    info!("Finished requesting.");
}
