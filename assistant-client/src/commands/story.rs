//! The `TellStory` call: ask for a story and type it out as it arrives,
//! resuming where it left off if the connection drops.

use std::{future::Future, time::Duration};

use assistant_proto::{
    assistant::{TellStoryRequest, assistant_service_client::AssistantServiceClient},
    codes::code_name,
    text::Escaped,
};
use clap::Args;
use tokio::io::AsyncWrite;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Status};
use tonic_prost::prost::Message;
use tracing::{debug, info, warn};

use crate::{
    ClientError,
    call::{self, CallArgs, CallError, Ending},
    connect::{Channel, Connection, tls_error},
    flow::{self, Flow, FlowArgs},
    reassembly::Reassembly,
    typing::Typist,
};

/// What to ask for, how to type it, and how hard to try: the story's
/// flags.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "The story")]
pub struct StoryArgs {
    /// Your name, for the greeting.
    #[arg(long, default_value = "Peter S")]
    pub user_name: String,

    /// Your institution, for the greeting.
    #[arg(long, default_value = "SUSTech")]
    pub institution: String,

    /// The story to tell, by file name (see `assistant-client list`); the
    /// server's default, alice.txt, if not given.
    #[arg(
        long,
        default_value = "",
        hide_default_value = true,
        value_name = "NAME"
    )]
    pub story: String,

    /// If the connection drops, retry this many times in a row, resuming
    /// from the bytes already received.
    #[arg(
        long,
        allow_negative_numbers = true,
        default_value_t = 5,
        value_name = "TIMES"
    )]
    pub retries: u32,

    /// The wait before the first retry; each next waits 1.6 times longer
    /// (at most 30 s), with 20% jitter.
    #[arg(long, allow_negative_numbers = true, default_value = "1", value_name = "SECONDS", value_parser = assistant_proto::seconds::parse)]
    pub retry_backoff: Duration,

    /// Characters typed at a time.
    #[arg(long, allow_negative_numbers = true, default_value_t = 5, value_name = "CHARS",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_048_576))]
    pub buffer_size: usize,

    /// Pause between groups of characters. 0 prints each message at once.
    #[arg(long, allow_negative_numbers = true, default_value = "0.1", value_name = "SECONDS", value_parser = assistant_proto::seconds::parse)]
    pub step_sec: Duration,

    /// Showing how the story flows.
    #[command(flatten)]
    pub flow: FlowArgs,
}

/// The longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl StoryArgs {
    /// The request for the story from byte `resume_from` on, of the
    /// version `story_version` (empty: any).
    fn request(&self, resume_from: u64, story_version: String) -> TellStoryRequest {
        TellStoryRequest {
            user_name: self.user_name.clone(),
            institution: self.institution.clone(),
            story: self.story.clone(),
            resume_from,
            story_version,
        }
    }

    /// The wait before retry number `attempt` (from 1): `--retry-backoff`,
    /// then 1.6 times as long each time (at most [`MAX_BACKOFF`]), give or
    /// take 20% jitter, as gRPC's own reconnection backoff does.
    fn retry_delay(&self, attempt: u32) -> Duration {
        let exponential =
            self.retry_backoff.as_secs_f64() * 1.6_f64.powi(attempt.saturating_sub(1) as i32);
        let capped = exponential.min(MAX_BACKOFF.as_secs_f64());
        let jitter = 0.8 + 0.4 * fastrand::f64();
        Duration::from_secs_f64(capped * jitter)
    }
}

/// Whether a status means the connection, not the call, failed, so that
/// asking again, from the bytes already received, may succeed.
fn is_retryable(status: &Status) -> bool {
    // A TLS refusal would only be refused again.
    if tls_error(status).is_some() {
        return false;
    }
    match status.code() {
        // The server is down, restarting or shutting down, the connection
        // was lost, or the server stopped answering: the channel reports
        // every such end as UNAVAILABLE.
        Code::Unavailable => true,
        // Any other HTTP/2 failure on the way, as opposed to a status the
        // server chose.
        Code::Unknown | Code::Internal => std::error::Error::source(status)
            .is_some_and(|source| source.is::<h2::Error>() || source.is::<std::io::Error>()),
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
    mut connection: Connection,
    args: &StoryArgs,
    options: &CallArgs,
    out: W,
    interrupt: impl Future<Output = ()>,
) -> Result<Ending, ClientError> {
    info!(
        "Requesting with user_name={}, institution={}",
        args.user_name, args.institution
    );
    let flow = args.flow.any().then(Flow::default);
    let mut typist = Typist::new(out, args.buffer_size, args.step_sec).watched_by(flow.clone());
    let timeout = options.timeout;
    let wire = connection.wire.clone();
    let watching = flow.clone().map(|flow| {
        let done = CancellationToken::new();
        let watch = tokio::spawn(flow::watch(flow, args.flow.clone(), done.clone()));
        (watch, done)
    });

    let story = async {
        let mut story = Reassembly::default();
        let mut failures = 0;
        let result = loop {
            let before = story.received();
            let result = match connection.ready().await {
                Ok(channel) => {
                    let channel = match &flow {
                        Some(flow) => channel.watched_by(flow.clone()),
                        None => channel,
                    };
                    let mut client =
                        call::compressed!(AssistantServiceClient::new(channel), options);
                    let flow = flow.as_ref();
                    attempt(&mut client, args, timeout, &mut story, &mut typist, flow).await
                }
                // Reconnecting failed: the server is still away.
                Err(err) => Err(CallError::Status(Status::unavailable(err.to_string()))),
            };
            let status = match result {
                Err(CallError::Status(status)) if is_retryable(&status) => status,
                other => break other,
            };
            let received = story.received();
            if !story.can_resume() {
                break Err(CallError::Status(Status::unavailable(format!(
                    "the connection was lost after {received} bytes ({}: {}), and this server \
                     cannot resume a story: its messages carry no story_version",
                    code_name(status.code()),
                    Escaped(status.message().as_bytes()),
                ))));
            }
            failures = if received > before { 1 } else { failures + 1 };
            if failures > args.retries {
                break Err(CallError::Status(status));
            }
            let delay = args.retry_delay(failures);
            warn!(
                "Connection lost ({}: {}); resuming from byte {received} in {:.1}s (retry {failures} of {})",
                code_name(status.code()),
                Escaped(status.message().as_bytes()),
                delay.as_secs_f64(),
                args.retries,
            );
            tokio::time::sleep(delay).await;
            story.begin_attempt();
        };
        let received = story.received();
        debug!(
            text_bytes = received,
            wire_bytes = wire.get(),
            "Received {received} bytes of text in {} bytes on the wire",
            wire.get()
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
        Ending::Failed(status) if status.code() == Code::DeadlineExceeded => {
            Ending::Failed(cut_short(timeout, typist.typed()))
        }
        ending => ending,
    };
    // A terminal's next line starts on a line of its own, after a story
    // cut short mid-line.
    if !matches!(ending, Ending::OutputClosed) {
        let _ = typist.leave().await;
    }
    let watched = match watching {
        Some((watch, done)) => {
            done.cancel();
            watch.await.unwrap_or(Ok(()))
        }
        None => Ok(()),
    };
    report(&ending);
    watched?;
    Ok(ending)
}

/// The status of a story that `--timeout` cut short after `typed` bytes.
fn cut_short(timeout: Option<Duration>, typed: u64) -> Status {
    let timeout = timeout.unwrap_or_default().as_secs_f64();
    if typed == 0 {
        Status::deadline_exceeded(format!("no story came within --timeout {timeout}s"))
    } else {
        Status::deadline_exceeded(format!(
            "--timeout {timeout}s ran out after {typed} bytes of the story were typed"
        ))
    }
}

/// One call, from where `story` has got to, typing what arrives.
async fn attempt<W: AsyncWrite + Unpin>(
    client: &mut AssistantServiceClient<Channel>,
    args: &StoryArgs,
    timeout: Option<Duration>,
    story: &mut Reassembly,
    typist: &mut Typist<W>,
    flow: Option<&Flow>,
) -> Result<(), CallError> {
    let (resume_from, story_version) = story.resume_point();
    let request = args.request(resume_from, story_version);
    let mut stream = match client.tell_story(call::request(request, timeout)).await {
        Ok(response) => response.into_inner(),
        // Our server's word for "the text changed since": what was printed
        // cannot be finished.
        Err(status) if status.code() == Code::Aborted && resume_from > 0 => {
            return Err(Status::data_loss(format!(
                "the story changed on the server after {resume_from} bytes: {}",
                Escaped(status.message().as_bytes())
            ))
            .into());
        }
        Err(status) => return Err(status.into()),
    };
    while let Some(message) = stream.message().await? {
        let new = story.accept(&message)?;
        if let Some(flow) = flow {
            // As HTTP/2 carried it: the message and its 5-byte prefix.
            let wire = message.encoded_len() as u64 + 5;
            flow.accepted(wire, new.len() as u64);
        }
        typist.type_bytes(new).await?;
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_by_1_6_with_jitter_up_to_a_cap() {
        let args = crate::Cli::try_parse_args(["assistant-client", "--retry-backoff", "1"])
            .unwrap()
            .story;
        for (attempt, nominal) in [(1, 1.0), (2, 1.6), (3, 2.56), (20, 30.0)] {
            let delay = args.retry_delay(attempt).as_secs_f64();
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
