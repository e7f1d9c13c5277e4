//! The client end to end: a real server on a loopback port, the client's
//! library in the same process, and everything it printed and logged.

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use assistant_client::{Cli, ClientError, Ending};
use assistant_proto::assistant::{
    ListStoriesRequest, ListStoriesResponse, TellStoryRequest, TellStoryResponse,
    assistant_service_server::{AssistantService, AssistantServiceServer},
};
use assistant_server::{Config, Finish};
use assistant_test_support::{
    LogCapture, PATIENCE, TestServer, WriteFile,
    fixtures::{ENDING, GREETING, fast_config, whole_story},
};
use tokio::{io::AsyncWrite, time::timeout};
use tonic::{Request, Response, Status};

fn cli(server: &str, extra: &[&str]) -> Cli {
    let argv = ["assistant-client", "--server", server]
        .into_iter()
        .chain(extra.iter().copied());
    Cli::try_parse_args(argv).unwrap()
}

/// The client as `--buffer-size 1024 --step-sec 0` runs it.
fn fast_cli(server: &str) -> Cli {
    cli(server, &["--buffer-size", "1024", "--step-sec", "0"])
}

#[tokio::test]
async fn prints_exactly_greeting_story_and_ending_when_the_server_cancels() {
    let (logs, _guard) = LogCapture::install();
    let server = TestServer::start(fast_config()).await.unwrap();
    let mut out = Vec::new();
    let ending = assistant_client::run(fast_cli(&server.url()), &mut out, std::future::pending())
        .await
        .unwrap();

    assert!(matches!(ending, Ending::CancelledByServer), "{ending:?}");
    assert_eq!(ending.exit_code(), 0);
    assert!(
        out == whole_story(),
        "stdout differs from greeting + story + ending"
    );
    let messages = logs.messages();
    let client_lines: Vec<&str> = messages
        .iter()
        .map(String::as_str)
        .filter(|m| {
            m.starts_with("Requesting") || m.starts_with("Stream") || m.starts_with("Finished")
        })
        .collect();
    assert_eq!(
        client_lines,
        [
            "Requesting with user_name=Peter S, institution=SUSTech",
            "Stream cancelled by server. Exiting gracefully.",
            "Finished requesting.",
        ]
    );
}

#[tokio::test]
async fn prints_exactly_greeting_story_and_ending_when_the_server_finishes_ok() {
    let (logs, _guard) = LogCapture::install();
    let config = Config {
        finish: Finish::Ok,
        ..fast_config()
    };
    let server = TestServer::start(config).await.unwrap();
    let mut out = Vec::new();
    let ending = assistant_client::run(fast_cli(&server.url()), &mut out, std::future::pending())
        .await
        .unwrap();
    assert!(matches!(ending, Ending::Finished), "{ending:?}");
    assert_eq!(ending.exit_code(), 0);
    assert!(out == whole_story());
    let messages = logs.messages();
    assert!(
        messages.iter().any(|m| m == "Story finished."),
        "{messages:#?}"
    );
    assert_eq!(
        messages.last().map(String::as_str),
        Some("Finished requesting.")
    );
}

#[tokio::test]
async fn split_characters_and_invalid_bytes_print_safely() {
    let dir = tempfile::tempdir().unwrap();
    let text: &[u8] = b"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\xa6\x80 bad:\xff\xfe end \xe2\x82";
    let path = dir.write("odd.txt", text);

    // One byte per message: every multi-byte character arrives in pieces.
    let config = Config {
        story: Some(path),
        chunk_size: 1,
        finish: Finish::Ok,
        ..fast_config()
    };
    let server = TestServer::start(config).await.unwrap();
    let mut out = Vec::new();
    let cli = cli(
        &server.url(),
        &["--buffer-size", "2", "--step-sec", "0.000001"],
    );
    let ending = assistant_client::run(cli, &mut out, std::future::pending())
        .await
        .unwrap();

    assert!(matches!(ending, Ending::Finished), "{ending:?}");
    let expected = format!("{GREETING}{}{ENDING}", String::from_utf8_lossy(text));
    assert_eq!(String::from_utf8(out).unwrap(), expected);
}

#[tokio::test]
async fn an_unreachable_server_is_one_clear_error() {
    // A port that was just free: nothing listens there.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let server = format!("127.0.0.1:{port}");
    let err = assistant_client::run(fast_cli(&server), Vec::new(), std::future::pending())
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Unreachable { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&format!("http://127.0.0.1:{port}")),
        "{message}"
    );
    assert!(message.contains("assistant-server"), "{message}");
    assert!(!message.contains('\n'), "{message}");
}

/// A server that sends one chunk, then fails with a status whose message
/// carries terminal escapes.
struct FailingServer;

#[tonic::async_trait]
impl AssistantService for FailingServer {
    type TellStoryStream = tokio_stream_iter::Iter;

    async fn tell_story(
        &self,
        _: Request<TellStoryRequest>,
    ) -> Result<Response<Self::TellStoryStream>, Status> {
        Ok(Response::new(tokio_stream_iter::iter(vec![
            Ok(TellStoryResponse {
                text_chunk: "partial text".into(),
                ..Default::default()
            }),
            Err(Status::resource_exhausted("too busy\n\x1b[31mred")),
        ])))
    }

    async fn list_stories(
        &self,
        _: Request<ListStoriesRequest>,
    ) -> Result<Response<ListStoriesResponse>, Status> {
        Err(Status::unimplemented("not here"))
    }
}

/// A boxed stream of fixed items, standing in for `tokio_stream::iter`.
mod tokio_stream_iter {
    use super::*;

    pub(super) type Iter =
        Pin<Box<dyn tokio_stream::Stream<Item = Result<TellStoryResponse, Status>> + Send>>;

    pub(super) fn iter(items: Vec<Result<TellStoryResponse, Status>>) -> Iter {
        Box::pin(tokio_stream::iter(items))
    }
}

#[tokio::test]
async fn any_other_status_is_an_error_printed_safely_after_the_text() {
    let (logs, _guard) = LogCapture::install();
    let addr = assistant_test_support::serve(AssistantServiceServer::new(FailingServer)).await;

    let mut out = Vec::new();
    let ending = assistant_client::run(
        fast_cli(&addr.to_string()),
        &mut out,
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(out, b"partial text");
    let Ending::Failed(status) = &ending else {
        panic!("expected a failure, got {ending:?}");
    };
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert_eq!(ending.exit_code(), 1);
    let messages = logs.messages();
    assert!(
        messages.contains(
            &r"An error occurred: RESOURCE_EXHAUSTED: too busy\n\u{1b}[31mred".to_owned()
        ),
        "{messages:#?}"
    );
    assert_eq!(
        messages.last().map(String::as_str),
        Some("Finished requesting.")
    );
}

#[tokio::test]
async fn ctrl_c_cancels_the_call_on_the_server_and_exits_130() {
    let (logs, _guard) = LogCapture::install();
    let config = Config {
        chunk_delay: Duration::from_secs(3600),
        ..fast_config()
    };
    let server = TestServer::start(config).await.unwrap();
    let calls = server.calls.clone();
    let mut out = Vec::new();
    // "Press Ctrl-C" once the call is under way.
    let interrupt = calls.wait_for(|active| active == 1);
    let ending = timeout(
        PATIENCE,
        assistant_client::run(fast_cli(&server.url()), &mut out, interrupt),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(matches!(ending, Ending::CancelledByUser), "{ending:?}");
    assert_eq!(ending.exit_code(), 130);

    timeout(PATIENCE, calls.idle())
        .await
        .expect("the server sees the cancelled call end");
    let messages = logs.messages();
    assert!(
        messages.iter().any(|m| m == "Stream cancelled by user."),
        "{messages:#?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("Client went away: Peter S after")),
        "{messages:#?}"
    );
}

/// Stdout as `| head` leaves it: accepts `limit` bytes, then the pipe is
/// closed.
struct ClosingPipe {
    written: Vec<u8>,
    limit: usize,
}

impl AsyncWrite for ClosingPipe {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let room = self.limit - self.written.len();
        if room == 0 {
            return Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()));
        }
        let n = room.min(buf.len());
        self.written.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn a_closed_stdout_cancels_the_call_quietly() {
    let (logs, _guard) = LogCapture::install();
    let config = Config {
        chunk_delay: Duration::from_secs(3600),
        ..fast_config()
    };
    let server = TestServer::start(config).await.unwrap();
    let mut pipe = ClosingPipe {
        written: Vec::new(),
        limit: 100,
    };
    let ending = timeout(
        PATIENCE,
        assistant_client::run(fast_cli(&server.url()), &mut pipe, std::future::pending()),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(matches!(ending, Ending::OutputClosed), "{ending:?}");
    assert_eq!(ending.exit_code(), 0);
    assert_eq!(pipe.written, &whole_story()[..100]);

    timeout(PATIENCE, server.calls.idle()).await.unwrap();
    let messages = logs.messages();
    assert!(
        !messages
            .iter()
            .any(|m| m.starts_with("Finished") || m.contains("error")),
        "{messages:#?}"
    );
}

/// A server whose trailers make no sense: one good message, then a
/// `grpc-status` that is not a number and a `grpc-message` that is not
/// valid percent-encoded UTF-8.
#[derive(Clone)]
struct GarbledTrailers;

impl tonic::server::NamedService for GarbledTrailers {
    const NAME: &'static str = "assistant.AssistantService";
}

impl tower_service::Service<http::Request<tonic::body::Body>> for GarbledTrailers {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Request<tonic::body::Body>) -> Self::Future {
        use prost::Message;
        let message = TellStoryResponse {
            text_chunk: "partial".into(),
            ..Default::default()
        }
        .encode_to_vec();
        let mut framed = vec![0];
        framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
        framed.extend_from_slice(&message);
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("banana"));
        trailers.insert(
            "grpc-message",
            http::HeaderValue::from_bytes(b"bad %ZZ \xff then %1B[31mred").unwrap(),
        );
        let frames = tokio_stream::iter([
            Ok::<_, tonic::Status>(http_body::Frame::data(bytes::Bytes::from(framed))),
            Ok(http_body::Frame::trailers(trailers)),
        ]);
        let body = tonic::body::Body::new(http_body_util::StreamBody::new(frames));
        let response = http::Response::builder()
            .header("content-type", "application/grpc")
            .body(body)
            .unwrap();
        std::future::ready(Ok(response))
    }
}

#[tokio::test]
async fn trailers_the_client_cannot_parse_are_an_error_not_a_panic() {
    let (logs, _guard) = LogCapture::install();
    let addr = assistant_test_support::serve(GarbledTrailers).await;
    let mut out = Vec::new();
    let ending = assistant_client::run(
        fast_cli(&addr.to_string()),
        &mut out,
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(out, b"partial");
    assert!(matches!(ending, Ending::Failed(_)), "{ending:?}");
    assert_eq!(ending.exit_code(), 1);
    let messages = logs.messages();
    let error = messages
        .iter()
        .find(|m| m.starts_with("An error occurred: "))
        .expect("an error line");
    assert!(!error.contains('\u{1b}'), "{error}");
}
