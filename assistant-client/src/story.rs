//! The `TellStory` call: ask for a story and type it out as it arrives.

use std::{future::Future, io, time::Duration};

use assistant_proto::{
    assistant::{TellStoryRequest, assistant_service_client::AssistantServiceClient},
    text::Escaped,
};
use tokio::io::AsyncWrite;
use tonic::{Code, Status, transport::Channel};
use tracing::{error, info};

use crate::{ClientError, typing::Typist};

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

/// How a story call ended, when it got as far as starting.
#[derive(Debug)]
pub enum Ending {
    /// The server ended the stream with CANCELLED, as the tutorial's does.
    CancelledByServer,
    /// The server ended the stream with OK.
    Finished,
    /// The server ended the stream with any other status.
    Failed(Status),
    /// The user pressed Ctrl-C; the call was cancelled.
    CancelledByUser,
    /// Our output closed (for example `| head`); the call was cancelled.
    OutputClosed,
}

impl Ending {
    /// The process exit code for this ending.
    pub fn exit_code(&self) -> u8 {
        match self {
            Ending::CancelledByServer | Ending::Finished | Ending::OutputClosed => 0,
            Ending::Failed(_) => 1,
            // 128 + SIGINT, as shells report a process stopped by Ctrl-C.
            Ending::CancelledByUser => 130,
        }
    }
}

/// Calls `TellStory` and types the story to `out`, until the server ends
/// the stream, `out` closes, or `interrupt` completes.
///
/// Receiving is paced by typing: the next message is read only once the
/// last one is typed, so HTTP/2 flow control holds the server back when
/// the reader is slow. Dropping the response stream cancels the call on the
/// server.
pub async fn tell_story<W: AsyncWrite + Unpin>(
    channel: Channel,
    request: &StoryRequest,
    out: W,
    interrupt: impl Future<Output = ()>,
) -> Result<Ending, ClientError> {
    info!(
        "Requesting with user_name={}, institution={}",
        request.user_name, request.institution
    );
    let mut typist = Typist::new(out, request.buffer_size, request.step);
    let mut client = AssistantServiceClient::new(channel);

    let call = async {
        let mut stream = client
            .tell_story(TellStoryRequest {
                user_name: request.user_name.clone(),
                institution: request.institution.clone(),
            })
            .await?
            .into_inner();
        while let Some(message) = stream.message().await? {
            typist.type_bytes(&message.text_chunk).await?;
        }
        Ok::<_, CallError>(())
    };

    let result = tokio::select! {
        result = call => result,
        () = interrupt => Err(CallError::Interrupted),
    };
    // Whatever the call left unfinished (a character cut short) is typed
    // before the ending is reported, unless the output itself failed.
    let result = match result {
        Ok(()) | Err(CallError::Status(_)) => match typist.finish().await {
            Ok(()) => result,
            Err(err) => Err(CallError::Output(err)),
        },
        other => other,
    };

    let ending = match result {
        Ok(()) => Ending::Finished,
        Err(CallError::Status(status)) if status.code() == Code::Cancelled => {
            Ending::CancelledByServer
        }
        Err(CallError::Status(status)) => Ending::Failed(status),
        Err(CallError::Interrupted) => Ending::CancelledByUser,
        Err(CallError::Output(err)) if err.kind() == io::ErrorKind::BrokenPipe => {
            return Ok(Ending::OutputClosed);
        }
        Err(CallError::Output(err)) => return Err(ClientError::Output(err)),
    };
    report(&ending);
    Ok(ending)
}

/// Logs how the call ended, as the tutorial's client does.
fn report(ending: &Ending) {
    match ending {
        Ending::CancelledByServer => info!("Stream cancelled by server. Exiting gracefully."),
        Ending::Finished => info!("Story finished."),
        Ending::Failed(status) => error!(
            "An error occurred: {}: {}",
            crate::code_name(status.code()),
            Escaped(status.message().as_bytes())
        ),
        Ending::CancelledByUser => info!("Stream cancelled by user."),
        Ending::OutputClosed => {}
    }
    info!("Finished requesting.");
}

/// Why the call loop stopped early.
enum CallError {
    Status(Status),
    Output(io::Error),
    Interrupted,
}

impl From<Status> for CallError {
    fn from(status: Status) -> Self {
        CallError::Status(status)
    }
}

impl From<io::Error> for CallError {
    fn from(err: io::Error) -> Self {
        CallError::Output(err)
    }
}
