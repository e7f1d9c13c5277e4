//! The four gRPC call shapes end to end: a real server on a loopback port
//! with its pauses at zero, and the client's library in the same process.
//! How a chat interleaves, and a chat left midway, are in `chat.rs`.

use std::time::Duration;

use assistant_client::{CallArgs, Cli, ClientError, Ending, commands::chat};
use assistant_proto::messages::ChatMessage;
use assistant_server::Config;
use assistant_test_support::{PATIENCE, Tap, TestServer, fixtures::fast_config};
use tokio::time::timeout;
use tonic::Code;

mod common;

/// Runs `assistant-client --server {server} {args}` and returns what it
/// printed, and how it ended.
async fn run(server: &TestServer, args: &[&str]) -> (String, Ending) {
    let url = server.url();
    let argv = ["assistant-client", "--server", &url]
        .into_iter()
        .chain(args.iter().copied());
    let cli = Cli::try_parse_args(argv).unwrap();
    let mut out = Vec::new();
    let ending = timeout(
        PATIENCE,
        assistant_client::run(cli, &mut out, std::future::pending()),
    )
    .await
    .expect("the call should end")
    .unwrap();
    (String::from_utf8(out).unwrap(), ending)
}

#[tokio::test]
async fn hello_prints_the_greeting() {
    let server = TestServer::start(fast_config()).await.unwrap();
    let (out, ending) = run(&server, &["hello"]).await;
    assert_eq!(out, "Hello, Hyeonghwan!\n");
    assert!(matches!(ending, Ending::Finished), "{ending:?}");
    let (out, _) = run(&server, &["hello", "--name", "Ferris"]).await;
    assert_eq!(out, "Hello, Ferris!\n");
}

#[tokio::test]
async fn chat_stream_prints_each_message_in_order() {
    let server = TestServer::start(fast_config()).await.unwrap();
    let (out, ending) = run(&server, &["chat-stream"]).await;
    assert_eq!(
        out,
        "Received message: Hello world\n\
         Received message: This is server streaming grpc\n\
         Received message: Good bye\n"
    );
    assert!(matches!(ending, Ending::Finished), "{ending:?}");
}

#[tokio::test]
async fn chat_stream_prints_each_message_the_moment_it_arrives() {
    // With an hour between the server's messages, the first line can only
    // be seen if it is printed before the stream ends.
    let config = Config {
        chat_stream_delay: Duration::from_secs(3600),
        ..fast_config()
    };
    let server = TestServer::start(config).await.unwrap();
    let channel = common::connect(&server).await;
    let tap = Tap::new();
    let interrupt = {
        let tap = tap.clone();
        async move { tap.printed("Received message: Hello world\n").await }
    };
    let ending = timeout(
        PATIENCE,
        chat::chat_stream(
            channel,
            "start".into(),
            &Default::default(),
            tap.clone(),
            interrupt,
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(matches!(ending, Ending::CancelledByUser), "{ending:?}");
    assert_eq!(tap.text(), "Received message: Hello world\n");
}

#[tokio::test]
async fn collect_prints_the_texts_joined_by_spaces() {
    let server = TestServer::start(fast_config()).await.unwrap();
    let (out, ending) = run(&server, &["collect"]).await;
    assert_eq!(out, "msg1 msg2 msg3\n");
    assert!(matches!(ending, Ending::Finished), "{ending:?}");
    let (out, _) = run(&server, &["collect", "one", "two words", "three"]).await;
    assert_eq!(out, "one two words three\n");
}

/// The tutorial's client-streaming server: its `messages.proto` names the
/// call `ChatService/ChatStream`, and it answers each text followed by a
/// space.
#[derive(Clone)]
struct TutorialCollector;

impl tonic::server::NamedService for TutorialCollector {
    const NAME: &'static str = "ChatService";
}

impl tonic::server::ClientStreamingService<ChatMessage> for TutorialCollector {
    type Response = ChatMessage;
    type Future = std::pin::Pin<
        Box<dyn Future<Output = Result<tonic::Response<ChatMessage>, tonic::Status>> + Send>,
    >;

    fn call(&mut self, request: tonic::Request<tonic::Streaming<ChatMessage>>) -> Self::Future {
        Box::pin(async move {
            let mut texts = request.into_inner();
            let mut result = String::new();
            while let Some(message) = texts.message().await? {
                result += &(message.message_text + " ");
            }
            Ok(tonic::Response::new(ChatMessage {
                message_text: result,
            }))
        })
    }
}

impl tower_service::Service<http::Request<tonic::body::Body>> for TutorialCollector {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future =
        std::pin::Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(async move {
            if request.uri().path() != "/ChatService/ChatStream" {
                return Ok(tonic::Status::unimplemented("").into_http());
            }
            let codec = tonic_prost::ProstCodec::<ChatMessage, ChatMessage>::default();
            Ok(tonic::server::Grpc::new(codec)
                .client_streaming(TutorialCollector, request)
                .await)
        })
    }
}

#[tokio::test]
async fn collect_calls_the_tutorials_client_streaming_server_with_method_chat_stream() {
    let addr = assistant_test_support::serve(TutorialCollector).await;
    let server = addr.to_string();
    let cli = |extra: &[&str]| {
        Cli::try_parse_args(
            ["assistant-client", "--server", server.as_str(), "collect"]
                .into_iter()
                .chain(extra.iter().copied()),
        )
        .unwrap()
    };
    let mut out = Vec::new();
    let ending = assistant_client::run(
        cli(&["--method", "ChatStream"]),
        &mut out,
        std::future::pending(),
    )
    .await
    .unwrap();
    assert!(matches!(ending, Ending::Finished), "{ending:?}");
    assert_eq!(String::from_utf8(out).unwrap(), "msg1 msg2 msg3 \n");

    // This server's name for it is not the tutorial's.
    let ending = assistant_client::run(cli(&[]), Vec::new(), std::future::pending())
        .await
        .unwrap();
    let Ending::Failed(status) = ending else {
        panic!("expected UNIMPLEMENTED, got {ending:?}");
    };
    assert_eq!(status.code(), Code::Unimplemented);
}

#[tokio::test]
async fn collect_of_an_empty_stream_is_an_empty_text_with_status_ok() {
    let server = TestServer::start(fast_config()).await.unwrap();
    let channel = common::connect(&server).await;
    let mut out = Vec::new();
    let ending = chat::collect(
        channel,
        chat::COLLECT_METHOD,
        tokio_stream::empty(),
        &Default::default(),
        &mut out,
        std::future::pending(),
    )
    .await
    .unwrap();
    assert!(matches!(ending, Ending::Finished), "{ending:?}");
    assert_eq!(out, b"\n");
}

#[tokio::test]
async fn chat_from_the_command_line_prints_each_text_before_its_reply() {
    let server = TestServer::start(fast_config()).await.unwrap();
    let (out, ending) = run(&server, &["chat", "--send-delay", "0", "a", "b", "c"]).await;
    assert!(matches!(ending, Ending::Finished), "{ending:?}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 6, "{out}");
    for text in ["a", "b", "c"] {
        let sent = lines
            .iter()
            .position(|l| *l == format!("Client Message: {text}"));
        let received = lines
            .iter()
            .position(|l| *l == format!("Received message: Received: {text}"));
        assert!(sent.unwrap() < received.unwrap(), "{out}");
    }
}

#[tokio::test]
async fn timeout_covers_the_whole_stream_not_just_its_start() {
    // The first message arrives at once; the second an hour later. A
    // timeout that only covered the response headers would never fire.
    let config = Config {
        chat_stream_delay: Duration::from_secs(3600),
        ..fast_config()
    };
    let server = TestServer::start(config).await.unwrap();
    let (out, ending) = run(&server, &["chat-stream", "--timeout", "0.3"]).await;
    assert_eq!(out, "Received message: Hello world\n");
    let Ending::Failed(status) = &ending else {
        panic!("expected a deadline error, got {ending:?}");
    };
    assert_eq!(status.code(), Code::DeadlineExceeded);
    assert_eq!(ending.exit_code(), 1);
    timeout(PATIENCE, server.calls.idle())
        .await
        .expect("the server stops working on the abandoned call");
}

#[tokio::test]
async fn timeout_before_any_answer_is_a_deadline_error_too() {
    // CollectStream answers only when the client's stream ends, which this
    // one never does: the deadline passes before any response header.
    let server = TestServer::start(fast_config()).await.unwrap();
    let channel = common::connect(&server).await;
    let options = CallArgs {
        timeout: Some(Duration::from_millis(200)),
        ..Default::default()
    };
    let ending = timeout(
        PATIENCE,
        chat::collect(
            channel,
            chat::COLLECT_METHOD,
            tokio_stream::pending(),
            &options,
            Vec::new(),
            std::future::pending(),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    let Ending::Failed(status) = &ending else {
        panic!("expected a deadline error, got {ending:?}");
    };
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert_eq!(ending.exit_code(), 1);
    timeout(PATIENCE, server.calls.idle())
        .await
        .expect("the server lets the call go");
}

#[tokio::test]
async fn every_subcommand_reports_an_unreachable_server_in_one_line() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let server = format!("127.0.0.1:{port}");
    for subcommand in ["story", "hello", "chat-stream", "collect", "chat"] {
        let cli =
            Cli::try_parse_args(["assistant-client", subcommand, "--server", &server]).unwrap();
        let err = assistant_client::run(cli, Vec::new(), std::future::pending())
            .await
            .unwrap_err();
        assert!(
            matches!(err, ClientError::Unreachable { .. }),
            "{subcommand}: {err:?}"
        );
        assert!(!err.to_string().contains('\n'));
    }
}

#[tokio::test]
async fn health_prints_serving_and_fails_for_an_unknown_service() {
    let server = TestServer::start(fast_config()).await.unwrap();
    let (out, ending) = run(&server, &["health"]).await;
    assert_eq!(out, "SERVING\n");
    assert_eq!(ending.exit_code(), 0);
    let (out, ending) = run(
        &server,
        &["health", "--service", "assistant.AssistantService"],
    )
    .await;
    assert_eq!(out, "SERVING\n");
    assert_eq!(ending.exit_code(), 0);
    let (_, ending) = run(&server, &["health", "--service", "no.Such"]).await;
    assert!(
        matches!(&ending, Ending::Failed(status) if status.code() == Code::NotFound),
        "{ending:?}"
    );
    assert_eq!(ending.exit_code(), 1);
}
