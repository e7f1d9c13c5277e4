//! The `TellStory` call: ask for a story and type it out as it arrives,
//! resuming where it left off if the connection drops.

use std::{future::Future, time::Duration};

use assistant_proto::assistant::{
    ListStoriesRequest, TellStoryRequest, TellStoryResponse,
    assistant_service_client::AssistantServiceClient,
};
use tokio::io::AsyncWrite;
use tonic::{Code, Status, transport::Channel};
use tracing::{debug, info, warn};

use crate::{
    ClientError,
    call::{self, CallError, CallOptions, Ending, print_line},
    typing::Typist,
};

/// What to ask for, how to type it, and how hard to try.
#[derive(Debug, Clone)]
pub struct StoryRequest {
    /// Who is asking.
    pub user_name: String,
    /// Where they are from.
    pub institution: String,
    /// Which story; empty for the server's default, `alice.txt`.
    pub story: String,
    /// Characters typed at a time.
    pub buffer_size: usize,
    /// Pause between groups of characters.
    pub step: Duration,
    /// How to retry when the connection drops.
    pub retry: Retry,
}

/// Retrying a story whose connection dropped.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Retries in a row without receiving a byte, before giving up.
    pub retries: u32,
    /// The wait before the first retry; each next one waits 1.6 times as
    /// long (at most [`Retry::MAX_BACKOFF`]), give or take 20% jitter, as
    /// gRPC's own reconnection backoff does.
    pub backoff: Duration,
}

impl Retry {
    /// The longest wait between retries.
    pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

    /// The wait before retry number `attempt` (from 1).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponential =
            self.backoff.as_secs_f64() * 1.6_f64.powi(attempt.saturating_sub(1) as i32);
        let capped = exponential.min(Self::MAX_BACKOFF.as_secs_f64());
        let jitter = 0.8 + 0.4 * fastrand::f64();
        Duration::from_secs_f64(capped * jitter)
    }
}

/// Whether a status means the connection, not the call, failed, so that
/// asking again, from the bytes already received, may succeed.
pub fn is_retryable(status: &Status) -> bool {
    match status.code() {
        // The server is down, restarting, shutting down, or unreachable.
        Code::Unavailable => true,
        // A connection reset mid-stream reaches tonic as an HTTP/2 or I/O
        // error, reported UNKNOWN or INTERNAL with the transport error as
        // its source; but a TLS refusal would only be refused again.
        Code::Unknown | Code::Internal if crate::connect::tls_error(status).is_some() => false,
        Code::Unknown | Code::Internal => std::error::Error::source(status).is_some_and(|source| {
            source.is::<tonic::transport::Error>()
                || source.is::<h2::Error>()
                || source.is::<hyper::Error>()
                || source.is::<std::io::Error>()
        }),
        _ => false,
    }
}

/// Calls `TellStory` and types the story to `out`, until the server ends
/// the stream, `out` closes, `timeout` runs out, or `interrupt` completes.
///
/// Receiving is paced by typing: the next message is read only once the
/// last one is typed, so HTTP/2 flow control holds the server back when
/// the reader is slow. Dropping the response stream cancels the call on the
/// server.
///
/// If the connection drops, it asks again from the byte it has reached
/// (`resume_from`), so the output is the same as an uninterrupted run: no
/// byte lost, none repeated.
pub async fn tell_story<W: AsyncWrite + Unpin>(
    channel: Channel,
    request: &StoryRequest,
    options: &CallOptions,
    out: W,
    interrupt: impl Future<Output = ()>,
) -> Result<Ending, ClientError> {
    info!(
        "Requesting with user_name={}, institution={}",
        request.user_name, request.institution
    );
    let mut typist = Typist::new(out, request.buffer_size, request.step);
    let mut client = call::compressed!(AssistantServiceClient::new(channel), options);
    let timeout = options.timeout;

    let story = async {
        let mut received = 0;
        let mut failures = 0;
        let result = loop {
            let before = received;
            let result = attempt(&mut client, request, timeout, &mut received, &mut typist).await;
            let status = match result {
                Err(CallError::Status(status)) if is_retryable(&status) => status,
                other => break other,
            };
            failures = if received > before { 1 } else { failures + 1 };
            if failures > request.retry.retries {
                break Err(CallError::Status(status));
            }
            let delay = request.retry.delay(failures);
            warn!(
                "Connection lost ({}: {}); resuming from byte {received} in {:.1}s (retry {failures} of {})",
                crate::code_name(status.code()),
                assistant_proto::text::Escaped(status.message().as_bytes()),
                delay.as_secs_f64(),
                request.retry.retries,
            );
            tokio::time::sleep(delay).await;
        };
        debug!(
            text_bytes = received,
            wire_bytes = options.wire.get(),
            "Received {received} bytes of text in {} bytes on the wire",
            options.wire.get()
        );
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

/// One call, from byte `received` on, typing what arrives and counting it.
async fn attempt<W: AsyncWrite + Unpin>(
    client: &mut AssistantServiceClient<Channel>,
    request: &StoryRequest,
    timeout: Option<Duration>,
    received: &mut u64,
    typist: &mut Typist<W>,
) -> Result<(), CallError> {
    let message = TellStoryRequest {
        user_name: request.user_name.clone(),
        institution: request.institution.clone(),
        story: request.story.clone(),
        resume_from: *received,
    };
    let mut stream = client
        .tell_story(call::request(message, timeout))
        .await?
        .into_inner();
    while let Some(message) = stream.message().await? {
        let new = new_bytes(&message, *received)?;
        typist.type_bytes(new).await?;
        *received += new.len() as u64;
    }
    Ok(())
}

/// The part of `message` not received yet, given that `received` bytes
/// were: a resumed stream may overlap what arrived before, but a gap would
/// lose bytes, so it is an error.
fn new_bytes(message: &TellStoryResponse, received: u64) -> Result<&[u8], Status> {
    let text = &message.text_chunk[..];
    let start = message.offset;
    if start > received {
        return Err(Status::data_loss(format!(
            "the server skipped from byte {received} to {start}"
        )));
    }
    let skip = usize::try_from(received - start)
        .unwrap_or(usize::MAX)
        .min(text.len());
    Ok(&text[skip..])
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

/// Lists the server's stories to `out`, one per line: name, size in bytes,
/// and title, separated by tabs.
pub async fn list_stories<W: AsyncWrite + Unpin>(
    channel: Channel,
    options: &CallOptions,
    mut out: W,
    interrupt: impl Future<Output = ()>,
) -> Result<Ending, ClientError> {
    let mut client = call::compressed!(AssistantServiceClient::new(channel), options);
    let timeout = options.timeout;
    let list = async {
        let stories = client
            .list_stories(call::request(ListStoriesRequest {}, timeout))
            .await?
            .into_inner()
            .stories;
        for story in stories {
            let line = format!("{}\t{}\t{}", story.name, story.size, story.title);
            print_line(&mut out, &line).await?;
        }
        Ok(())
    };
    call::run_reported(list, interrupt, timeout).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(offset: u64, text: &'static str) -> TellStoryResponse {
        TellStoryResponse {
            text_chunk: text.into(),
            offset,
        }
    }

    #[test]
    fn overlap_is_skipped_and_gaps_are_refused() {
        assert_eq!(new_bytes(&message(0, "hello"), 0).unwrap(), b"hello");
        assert_eq!(new_bytes(&message(5, "world"), 7).unwrap(), b"rld");
        assert_eq!(new_bytes(&message(0, "old"), 10).unwrap(), b"");
        let status = new_bytes(&message(12, "later"), 10).unwrap_err();
        assert_eq!(status.code(), Code::DataLoss);
    }

    #[test]
    fn backoff_grows_by_1_6_with_jitter_up_to_a_cap() {
        let retry = Retry {
            retries: 5,
            backoff: Duration::from_secs(1),
        };
        for (attempt, nominal) in [(1, 1.0), (2, 1.6), (3, 2.56), (20, 30.0)] {
            let delay = retry.delay(attempt).as_secs_f64();
            assert!(
                delay >= nominal * 0.8 - 1e-9 && delay <= nominal * 1.2 + 1e-9,
                "{attempt}: {delay}"
            );
        }
    }

    #[test]
    fn only_connection_failures_are_retried() {
        assert!(is_retryable(&Status::unavailable("server shutting down")));
        for code in [
            Code::Cancelled,
            Code::InvalidArgument,
            Code::NotFound,
            Code::OutOfRange,
            Code::DeadlineExceeded,
        ] {
            assert!(!is_retryable(&Status::new(code, "no")), "{code:?}");
        }
        assert!(!is_retryable(&Status::unknown("a handler's own error")));
    }
}
