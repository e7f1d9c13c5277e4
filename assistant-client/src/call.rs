//! What every call has in common: its flags (a deadline, compression),
//! Ctrl-C, an output that may close, and how the call ended.

use std::{future::Future, io, time::Duration};

use assistant_proto::{codes::code_name, text::Escaped};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tonic::{CancellationHandle, Code, Request, Status, codec::CompressionEncoding};
use tracing::{error, info};

use crate::{ClientError, connect::tls_error};

/// How to make every call: flags every subcommand takes.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Calling (any command)")]
pub struct CallArgs {
    /// Compress requests this way, and accept responses compressed this
    /// way (the server answers in kind).
    #[arg(long, global = true, value_enum, default_value_t = Compression::None)]
    pub compression: Compression,

    /// Give up on the call after this long, counting to its last message.
    /// The server is told too, and stops working on it. No limit by default.
    #[arg(long, allow_negative_numbers = true, global = true, value_name = "SECONDS", value_parser = assistant_proto::seconds::parse)]
    pub timeout: Option<Duration>,
}

/// Message compression.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Compression {
    /// No compression.
    #[default]
    None,
    /// gzip.
    Gzip,
    /// Zstandard.
    Zstd,
}

impl CallArgs {
    /// The encoding `--compression` asks for, if any.
    pub fn encoding(&self) -> Option<CompressionEncoding> {
        match self.compression {
            Compression::None => None,
            Compression::Gzip => Some(CompressionEncoding::Gzip),
            Compression::Zstd => Some(CompressionEncoding::Zstd),
        }
    }
}

/// Sets a generated client to compress as `--compression` says. (The
/// generated clients share no trait for this.)
macro_rules! compressed {
    ($client:expr, $args:expr) => {{
        let client = $client;
        match $args.encoding() {
            Some(encoding) => client.send_compressed(encoding).accept_compressed(encoding),
            None => client,
        }
    }};
}
pub(crate) use compressed;

/// How a call ended, when it got as far as starting.
#[derive(Debug)]
pub enum Ending {
    /// The server ended the story with CANCELLED, as the tutorial's does.
    CancelledByServer,
    /// The call ended with OK.
    Finished,
    /// The call ended with any other status, or ran out of time.
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

    /// Logs how a call ended, if it ended badly.
    pub(crate) fn report(&self) {
        match self {
            Ending::Failed(status) => error!(
                "An error occurred: {}: {}",
                code_name(status.code()),
                Escaped(status.message().as_bytes())
            ),
            Ending::CancelledByUser => info!("Call cancelled by user."),
            Ending::CancelledByServer | Ending::Finished | Ending::OutputClosed => {}
        }
    }
}

/// Why a call stopped early.
#[derive(Debug)]
pub(crate) enum CallError {
    Status(Status),
    Output(io::Error),
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

/// Wraps `message` in a request that carries `timeout` to the server as
/// `grpc-timeout`, so the server can stop working on it in time too.
pub(crate) fn request<T>(message: T, timeout: Option<Duration>) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(timeout) = timeout {
        request.set_timeout(timeout);
    }
    request
}

/// Like [`request`], for a call that streams requests. The returned guard
/// resets the request stream when dropped, unless it has already ended.
///
/// Dropping the response alone does not cancel such a call: while the
/// request stream is still open, HTTP/2 keeps the call alive, and ending
/// the stream normally would tell the server the client had simply
/// finished sending. Resetting it (RST_STREAM) cancels the call at once.
pub(crate) fn streaming_request<S>(
    stream: S,
    timeout: Option<Duration>,
) -> (Request<S>, CancelOnDrop) {
    let mut request = request(stream, timeout);
    let guard = CancelOnDrop(request.cancellation_handle());
    (request, guard)
}

/// Resets a call's request stream when dropped; see [`streaming_request`].
pub(crate) struct CancelOnDrop(CancellationHandle);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.clone().cancel();
    }
}

/// How long past `--timeout` the client waits for the server's own word
/// that the deadline passed, before it ends the call itself. The server
/// starts its clock when the request arrives, a little after ours, and
/// should be the one to end the call: then it logs DEADLINE_EXCEEDED, not a
/// client that went away.
const DEADLINE_GRACE: Duration = Duration::from_millis(250);

/// The status of a call that ran out of `timeout`.
pub(crate) fn deadline_exceeded(timeout: Option<Duration>) -> Status {
    Status::deadline_exceeded(format!(
        "the call did not finish within --timeout {}s",
        timeout.unwrap_or_default().as_secs_f64()
    ))
}

/// Runs `call` until it ends, `interrupt` completes (Ctrl-C), or `timeout`
/// runs out, and says how it ended.
///
/// The timeout covers the whole call, to its last message, not only the
/// response headers as tonic's own timeout does. The server is told it
/// (`grpc-timeout`) and ends the call then; if it has not, the client ends
/// it [`DEADLINE_GRACE`] later, dropping its response stream, which cancels
/// it on the server.
pub(crate) async fn run(
    call: impl Future<Output = Result<(), CallError>>,
    interrupt: impl Future<Output = ()>,
    timeout: Option<Duration>,
) -> Result<Ending, ClientError> {
    let started = tokio::time::Instant::now();
    let deadline = async {
        match timeout {
            Some(timeout) => tokio::time::sleep(timeout + DEADLINE_GRACE).await,
            None => std::future::pending().await,
        }
    };
    let result = tokio::select! {
        result = call => result,
        () = interrupt => return Ok(Ending::CancelledByUser),
        () = deadline => Err(CallError::Status(deadline_exceeded(timeout))),
    };
    let result = match result {
        // Past the deadline, a server that could not send its status (the
        // client's window was full) resets the call instead: that, too, is
        // the deadline. So is the server's own DEADLINE_EXCEEDED, said in
        // the client's words.
        Err(CallError::Status(status))
            if matches!(status.code(), Code::Cancelled | Code::DeadlineExceeded)
                && timeout.is_some_and(|timeout| started.elapsed() >= timeout) =>
        {
            Err(CallError::Status(deadline_exceeded(timeout)))
        }
        // A TLS failure after the handshake seemed done (under TLS 1.3 a
        // server refuses a missing client certificate only then) reaches
        // the call as a bare transport error; say what it is.
        Err(CallError::Status(status)) => match tls_error(&status) {
            Some(reason) => Err(CallError::Status(Status::unauthenticated(format!(
                "TLS failed: {reason}. Check the server's certificate and --ca-cert (--cert, --key)."
            )))),
            None => Err(CallError::Status(status)),
        },
        other => other,
    };
    match result {
        Ok(()) => Ok(Ending::Finished),
        Err(CallError::Status(status)) => Ok(Ending::Failed(status)),
        Err(CallError::Output(err)) if err.kind() == io::ErrorKind::BrokenPipe => {
            Ok(Ending::OutputClosed)
        }
        Err(CallError::Output(err)) => Err(ClientError::Output(err)),
    }
}

/// [`run`], then logs how the call ended if it ended badly.
pub(crate) async fn run_reported(
    call: impl Future<Output = Result<(), CallError>>,
    interrupt: impl Future<Output = ()>,
    timeout: Option<Duration>,
) -> Result<Ending, ClientError> {
    let ending = run(call, interrupt, timeout).await?;
    ending.report();
    Ok(ending)
}

/// Writes `text` and a newline, and flushes, so the line shows at once.
pub(crate) async fn print_line<W: AsyncWrite + Unpin>(out: &mut W, text: &str) -> io::Result<()> {
    out.write_all(text.as_bytes()).await?;
    out.write_all(b"\n").await?;
    out.flush().await
}
