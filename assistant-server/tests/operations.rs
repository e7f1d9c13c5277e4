//! Running the server like a production service: health, reflection,
//! graceful shutdown, deadlines, cancellation, bad input, limits and logs.
//! Each test drives a real server on a loopback port.

use std::{
    io::{Read, Write},
    time::Duration,
};

use assistant_proto::{
    assistant::{TellStoryRequest, assistant_service_client::AssistantServiceClient},
    hello_world::{HelloRequest, greeter_client::GreeterClient},
    messages::{ChatMessage, chat_service_client::ChatServiceClient},
};
use assistant_server::{
    Config,
    test_util::{LogCapture, TestServer, fast_config},
};
use bytes::{Buf, BufMut, Bytes};
use tokio::time::timeout;
use tonic::{
    Code, Request, Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    transport::Channel,
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

const PATIENCE: Duration = Duration::from_secs(10);
const SERVICES: [&str; 3] = [
    "assistant.AssistantService",
    "hello_world.Greeter",
    "messages.ChatService",
];

async fn channel(server: &TestServer) -> Channel {
    Channel::from_shared(server.url())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn peter() -> TellStoryRequest {
    TellStoryRequest {
        user_name: "Peter S".into(),
        institution: "SUSTech".into(),
        ..Default::default()
    }
}

/// An hour between story chunks and chat messages: calls that only end
/// when something else ends them.
fn slow_config() -> Config {
    Config {
        chunk_delay: Duration::from_secs(3600),
        chat_stream_delay: Duration::from_secs(3600),
        chat_reply_delay: Duration::from_secs(3600),
        ..fast_config()
    }
}

// ---- 1. Health ----

#[tokio::test]
async fn health_is_serving_for_the_server_and_every_service() {
    let server = TestServer::start(fast_config()).await.unwrap();
    let mut health = HealthClient::new(channel(&server).await);
    for service in std::iter::once("").chain(SERVICES) {
        let response = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(response.status(), ServingStatus::Serving, "{service:?}");
    }
    let status = health
        .check(HealthCheckRequest {
            service: "no.Such".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn health_watch_turns_not_serving_as_shutdown_begins_and_does_not_hold_it_up() {
    // A grace period of an hour: only application calls may use it.
    let config = Config {
        shutdown_grace: Duration::from_secs(3600),
        ..fast_config()
    };
    let mut server = TestServer::start(config).await.unwrap();
    let mut health = HealthClient::new(channel(&server).await);
    let mut watch = health
        .watch(HealthCheckRequest { service: "".into() })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status(), ServingStatus::Serving);

    server.begin_shutdown();
    let next = timeout(PATIENCE, watch.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(next.status(), ServingStatus::NotServing);
    timeout(PATIENCE, server.stopped())
        .await
        .expect("an open health watch must not hold up shutdown")
        .unwrap();
}

// ---- 2. Reflection ----

async fn reflect_v1(
    channel: Channel,
    request: tonic_reflection::pb::v1::server_reflection_request::MessageRequest,
) -> tonic_reflection::pb::v1::server_reflection_response::MessageResponse {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    };
    let mut client = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::once(request))
        .await
        .unwrap()
        .into_inner();
    responses
        .message()
        .await
        .unwrap()
        .unwrap()
        .message_response
        .unwrap()
}

#[tokio::test]
async fn reflection_v1_lists_and_describes_every_service() {
    use prost::Message;
    use tonic_reflection::pb::v1::{
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };

    let server = TestServer::start(fast_config()).await.unwrap();
    let MessageResponse::ListServicesResponse(list) = reflect_v1(
        channel(&server).await,
        MessageRequest::ListServices(String::new()),
    )
    .await
    else {
        panic!("expected a list of services");
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "assistant.AssistantService",
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "hello_world.Greeter",
            "messages.ChatService",
        ]
    );

    for (symbol, method, server_streaming, client_streaming) in [
        ("assistant.AssistantService", "TellStory", true, false),
        ("hello_world.Greeter", "SayHello", false, false),
        ("messages.ChatService", "CollectStream", false, true),
        ("messages.ChatService", "Chat", true, true),
        ("grpc.health.v1.Health", "Watch", true, false),
    ] {
        let MessageResponse::FileDescriptorResponse(files) = reflect_v1(
            channel(&server).await,
            MessageRequest::FileContainingSymbol(symbol.into()),
        )
        .await
        else {
            panic!("expected descriptors for {symbol}");
        };
        let described = files.file_descriptor_proto.iter().any(|bytes| {
            let file = prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap();
            file.service.iter().flat_map(|s| &s.method).any(|m| {
                m.name() == method
                    && m.server_streaming() == server_streaming
                    && m.client_streaming() == client_streaming
            })
        });
        assert!(described, "{symbol}/{method} is not described");
    }
}

#[tokio::test]
async fn reflection_v1alpha_lists_every_service_too() {
    use tonic_reflection::pb::v1alpha::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let server = TestServer::start(fast_config()).await.unwrap();
    let mut client = ServerReflectionClient::new(channel(&server).await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::once(request))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        responses.message().await.unwrap().unwrap().message_response
    else {
        panic!("expected a list of services");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for service in SERVICES.iter().chain(&["grpc.health.v1.Health"]) {
        assert!(
            names.iter().any(|n| n == service),
            "{service} missing from {names:?}"
        );
    }
}

// ---- 3. Graceful shutdown ----

/// Asserts the server's last word: how many calls finished, and how many
/// shutdown ended.
fn assert_stopped_after(logs: &LogCapture, finished: u64, ended: u64) {
    let expected = format!("Server stopped: {finished} calls finished, {ended} ended by shutdown");
    let messages = logs.messages();
    assert!(
        messages.iter().any(|m| m.starts_with(&expected)),
        "{messages:#?}"
    );
}

#[tokio::test]
async fn calls_in_flight_finish_within_the_grace_period_and_new_ones_are_refused() {
    let (logs, _guard) = LogCapture::install();
    let config = Config {
        chunk_delay: Duration::from_millis(2),
        shutdown_grace: Duration::from_secs(60),
        ..fast_config()
    };
    let mut server = TestServer::start(config).await.unwrap();
    let mut client = AssistantServiceClient::new(channel(&server).await);
    let mut stream = client.tell_story(peter()).await.unwrap().into_inner();
    let mut received = stream.message().await.unwrap().unwrap().text_chunk.to_vec();

    server.begin_shutdown();
    // New connections are refused once the server stops accepting.
    let refused = async {
        loop {
            if tokio::net::TcpStream::connect(server.addr).await.is_err() {
                break;
            }
            tokio::task::yield_now().await;
        }
    };
    timeout(PATIENCE, refused)
        .await
        .expect("the listener closes");

    let status = loop {
        match stream.message().await {
            Ok(Some(message)) => received.extend_from_slice(&message.text_chunk),
            Ok(None) => panic!("the story ends with CANCELLED"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), Code::Cancelled, "{status:?}");
    assert_eq!(received.len(), 45 + 144_396 + 37, "every byte arrives");
    timeout(PATIENCE, server.stopped()).await.unwrap().unwrap();
    assert_stopped_after(&logs, 1, 0);
}

#[tokio::test]
async fn calls_past_the_grace_period_end_unavailable_after_their_bytes() {
    let (logs, _guard) = LogCapture::install();
    let config = Config {
        shutdown_grace: Duration::from_millis(200),
        ..slow_config()
    };
    let mut server = TestServer::start(config).await.unwrap();
    let mut client = ChatServiceClient::new(channel(&server).await);
    let mut stream = client
        .chat_stream(ChatMessage {
            message_text: "start".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(first.message_text, "Hello world");

    server.begin_shutdown();
    let status = timeout(PATIENCE, stream.message())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(status.message(), "server shutting down");
    timeout(PATIENCE, server.stopped()).await.unwrap().unwrap();
    assert_stopped_after(&logs, 0, 1);
}

#[tokio::test]
async fn a_client_that_never_reads_does_not_keep_the_server_alive() {
    let (logs, _guard) = LogCapture::install();
    let config = Config {
        shutdown_grace: Duration::from_millis(200),
        ..fast_config()
    };
    let mut server = TestServer::start(config).await.unwrap();
    // A small window: the server is stuck on flow control almost at once.
    let channel = Channel::from_shared(server.url())
        .unwrap()
        .initial_stream_window_size(65_535)
        .connect()
        .await
        .unwrap();
    let mut client = AssistantServiceClient::new(channel);
    let _unread = client.tell_story(peter()).await.unwrap().into_inner();
    server.calls.wait_for(|active| active == 1).await;

    server.begin_shutdown();
    timeout(PATIENCE, server.stopped())
        .await
        .expect("a stuck reader must not keep the server past its grace period")
        .unwrap();
    assert_stopped_after(&logs, 0, 1);
}

// ---- 4. Deadlines ----

#[tokio::test]
async fn the_server_ends_a_stream_at_the_callers_deadline() {
    let (logs, _guard) = LogCapture::install();
    let server = TestServer::start(slow_config()).await.unwrap();
    let mut client = AssistantServiceClient::new(channel(&server).await);
    let mut request = Request::new(peter());
    // tonic's client only sends this; ending the call is the server's job.
    request.set_timeout(Duration::from_millis(300));
    let mut stream = client.tell_story(request).await.unwrap().into_inner();
    stream.message().await.unwrap().unwrap(); // greeting
    stream.message().await.unwrap().unwrap(); // first chunk, then an hour's pause

    let status = timeout(PATIENCE, stream.message())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded);
    timeout(PATIENCE, server.calls.idle())
        .await
        .expect("the server stops working on it");
    let contents = logs.contents();
    assert!(
        contents.contains("Call ended code=DEADLINE_EXCEEDED"),
        "{contents}"
    );
    assert!(!contents.contains("Client went away"), "{contents}");
}

#[tokio::test]
async fn the_deadline_also_covers_a_handler_waiting_on_its_client() {
    // CollectStream waits for the client's stream to end, which it never
    // does. (Sent by hand: tonic's client enforces `grpc-timeout` on the
    // response headers itself, and would give up first.)
    let server = TestServer::start(fast_config()).await.unwrap();
    let (status, _) = raw_h2_call(
        &server,
        "/messages.ChatService/CollectStream",
        Some("200m"),
        b"",
        false,
    )
    .await;
    assert_eq!(status, Code::DeadlineExceeded as i32);
    timeout(PATIENCE, server.calls.idle()).await.unwrap();
}

#[tokio::test]
async fn the_longest_deadline_a_caller_can_write_is_no_deadline_and_no_panic() {
    // 99,999,999 hours is legal grpc-timeout, and past what an Instant can
    // hold: it must mean "no deadline", not an overflow.
    let server = TestServer::start(fast_config()).await.unwrap();
    let (status, text) = raw_h2_call(
        &server,
        "/hello_world.Greeter/SayHello",
        Some("99999999H"),
        b"\x00\x00\x00\x00\x08\x0a\x06Ferris",
        true,
    )
    .await;
    assert_eq!(status, 0);
    assert!(text.windows(14).any(|w| w == b"Hello, Ferris!"));
    still_serves(&channel(&server).await).await;
}

// ---- 5. Cancellation ----

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count())
}

#[tokio::test]
async fn cancelled_calls_leave_no_call_or_file_handle_behind() {
    let server = TestServer::start(slow_config()).await.unwrap();
    let baseline = open_fds();
    for _ in 0..10 {
        let channel = channel(&server).await;
        let mut story = AssistantServiceClient::new(channel.clone())
            .tell_story(peter())
            .await
            .unwrap()
            .into_inner();
        story.message().await.unwrap().unwrap();
        let mut chat = ChatServiceClient::new(channel.clone())
            .chat_stream(ChatMessage::default())
            .await
            .unwrap()
            .into_inner();
        chat.message().await.unwrap().unwrap();
        server.calls.wait_for(|active| active == 2).await;
        drop((story, chat, channel));
        timeout(PATIENCE, server.calls.idle())
            .await
            .expect("both calls end");
    }
    // Both ends of every connection live in this process; once the server
    // has seen each close, the count is back where it started.
    let settled = async {
        while open_fds() > baseline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    if cfg!(target_os = "linux") {
        timeout(PATIENCE, settled)
            .await
            .expect("no file handle is left open");
    }
}

// ---- 6. Bad input ----

#[tokio::test]
async fn bad_names_are_invalid_arguments_naming_the_field() {
    let server = TestServer::start(fast_config()).await.unwrap();
    let channel = channel(&server).await;
    let long = "x".repeat(129);
    for bad in [
        "",
        "   ",
        long.as_str(),
        "a\nINFO forged line",
        "\u{1b}[2J",
        "nul\0",
    ] {
        for (field, request) in [
            (
                "user_name",
                TellStoryRequest {
                    user_name: bad.into(),
                    institution: "SUSTech".into(),
                    ..Default::default()
                },
            ),
            (
                "institution",
                TellStoryRequest {
                    user_name: "Peter S".into(),
                    institution: bad.into(),
                    ..Default::default()
                },
            ),
        ] {
            let status = AssistantServiceClient::new(channel.clone())
                .tell_story(request)
                .await
                .unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{field} = {bad:?}");
            assert!(status.message().starts_with(field), "{}", status.message());
        }
        let status = GreeterClient::new(channel.clone())
            .say_hello(HelloRequest { name: bad.into() })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "name = {bad:?}");
        assert!(status.message().starts_with("name"), "{}", status.message());
    }
    // The server keeps serving.
    let reply = GreeterClient::new(channel)
        .say_hello(HelloRequest {
            name: "Ferris".into(),
        })
        .await
        .unwrap();
    assert_eq!(reply.into_inner().response_text, "Hello, Ferris!");
}

/// Sends and receives raw message bytes, to say what no generated client
/// would.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = Self;
    type Decoder = Self;

    fn encoder(&mut self) -> Self {
        Self
    }

    fn decoder(&mut self) -> Self {
        Self
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

async fn raw_unary(channel: &Channel, path: &'static str, body: Bytes) -> Result<Bytes, Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    grpc.unary(
        Request::new(body),
        http::uri::PathAndQuery::from_static(path),
        RawCodec,
    )
    .await
    .map(tonic::Response::into_inner)
}

async fn still_serves(channel: &Channel) {
    let reply = GreeterClient::new(channel.clone())
        .say_hello(HelloRequest {
            name: "again".into(),
        })
        .await
        .unwrap();
    assert_eq!(reply.into_inner().response_text, "Hello, again!");
}

#[tokio::test]
async fn oversized_and_malformed_requests_get_a_status_and_the_server_keeps_serving() {
    let server = TestServer::start(fast_config()).await.unwrap();
    let channel = channel(&server).await;

    let status = GreeterClient::new(channel.clone())
        .say_hello(HelloRequest {
            name: "x".repeat(5000),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");

    // Field 1 as a string claiming 100 bytes, followed by two.
    let status = raw_unary(
        &channel,
        "/hello_world.Greeter/SayHello",
        Bytes::from_static(b"\x0a\x64ab"),
    )
    .await
    .unwrap_err();
    assert_ne!(status.code(), Code::Ok);
    let status = raw_unary(
        &channel,
        "/hello_world.Greeter/SayHello",
        Bytes::from_static(b"\xff\xff\xff"),
    )
    .await
    .unwrap_err();
    assert_ne!(status.code(), Code::Ok);
    still_serves(&channel).await;
}

/// Makes a call over HTTP/2 by hand, sending `body` as the request stream
/// (and ending it if `end`), and returns the call's `grpc-status` and the
/// response bytes before it.
async fn raw_h2_call(
    server: &TestServer,
    path: &str,
    grpc_timeout: Option<&str>,
    body: &'static [u8],
    end: bool,
) -> (i32, Vec<u8>) {
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let mut request = http::Request::post(format!("{}{path}", server.url()))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(grpc_timeout) = grpc_timeout {
        request = request.header("grpc-timeout", grpc_timeout);
    }
    let (response, mut send) = client
        .send_request(request.body(()).unwrap(), false)
        .unwrap();
    send.send_data(Bytes::from_static(body), end).unwrap();

    let response = timeout(PATIENCE, response).await.unwrap().unwrap();
    let (parts, mut body) = response.into_parts();
    let mut received = Vec::new();
    let status = match parts.headers.get("grpc-status") {
        Some(status) => status.clone(),
        None => {
            while let Some(data) = body.data().await {
                received.extend_from_slice(&data.unwrap());
            }
            body.trailers().await.unwrap().unwrap()["grpc-status"].clone()
        }
    };
    (status.to_str().unwrap().parse().unwrap(), received)
}

#[tokio::test]
async fn a_message_claiming_4_gib_is_refused_from_its_header() {
    // A gRPC frame header claiming 0xFFFFFFFF bytes, followed by only
    // three: the server must answer at once, without waiting for (or
    // allocating) the rest.
    let server = TestServer::start(fast_config()).await.unwrap();
    let (status, _) = raw_h2_call(
        &server,
        "/hello_world.Greeter/SayHello",
        None,
        b"\x00\xff\xff\xff\xffabc",
        false,
    )
    .await;
    assert_eq!(status, Code::ResourceExhausted as i32);
    still_serves(&channel(&server).await).await;
}

#[tokio::test]
async fn client_streams_past_their_limits_are_resource_exhausted() {
    let config = Config {
        max_stream_messages: 3,
        max_stream_bytes: 10,
        ..fast_config()
    };
    let server = TestServer::start(config).await.unwrap();
    let channel = channel(&server).await;
    let texts = |texts: &[&str]| {
        let messages: Vec<ChatMessage> = texts
            .iter()
            .map(|t| ChatMessage {
                message_text: (*t).into(),
            })
            .collect();
        tokio_stream::iter(messages)
    };
    let mut chat = ChatServiceClient::new(channel.clone());

    let ok = chat.collect_stream(texts(&["a", "b", "c"])).await.unwrap();
    assert_eq!(ok.into_inner().message_text, "a b c");
    let status = chat
        .collect_stream(texts(&["a", "b", "c", "d"]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    let status = chat
        .collect_stream(texts(&["0123456789", "x"]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);

    let mut replies = chat
        .chat(texts(&["a", "b", "c", "d"]))
        .await
        .unwrap()
        .into_inner();
    let status = loop {
        match replies.message().await {
            Ok(Some(_)) => {}
            Ok(None) => panic!("the fourth message is over the limit"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), Code::ResourceExhausted);
    still_serves(&channel).await;
}

#[tokio::test]
async fn unknown_methods_and_services_are_unimplemented() {
    let server = TestServer::start(fast_config()).await.unwrap();
    let channel = channel(&server).await;
    for path in ["/assistant.AssistantService/Nope", "/no.Such/Method"] {
        let status = raw_unary(&channel, path, Bytes::new()).await.unwrap_err();
        assert_eq!(status.code(), Code::Unimplemented, "{path}");
    }
    still_serves(&channel).await;
}

/// Writes `bytes` on a fresh connection and reads until the server closes
/// it.
async fn closed_after(server: &TestServer, bytes: &'static [u8]) {
    let addr = server.addr;
    let read_to_close = tokio::task::spawn_blocking(move || {
        let mut socket = std::net::TcpStream::connect(addr).unwrap();
        socket.set_read_timeout(Some(PATIENCE)).unwrap();
        socket.write_all(bytes).unwrap();
        let mut sink = Vec::new();
        // Ok(_) is end of file; an error may be a reset. Both mean closed,
        // but a timeout means the server held the connection open.
        match socket.read_to_end(&mut sink) {
            Ok(_) => true,
            Err(err) => !matches!(
                err.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        }
    });
    assert!(
        read_to_close.await.unwrap(),
        "the server kept a {:?} connection open",
        String::from_utf8_lossy(bytes)
    );
}

#[tokio::test]
async fn traffic_that_is_not_grpc_is_closed_and_the_server_keeps_serving() {
    let config = Config {
        handshake_timeout: Duration::from_millis(200),
        ..fast_config()
    };
    let server = TestServer::start(config).await.unwrap();
    closed_after(&server, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    closed_after(
        &server,
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 random bytes",
    )
    .await;
    closed_after(&server, b"").await; // a connection that never speaks
    still_serves(&channel(&server).await).await;
}

// ---- 7. Limits ----

#[tokio::test]
async fn streams_past_the_per_connection_limit_wait_and_nothing_breaks() {
    let config = Config {
        max_concurrent_streams: 2,
        ..slow_config()
    };
    let server = TestServer::start(config).await.unwrap();
    let channel = channel(&server).await;
    let open = |channel: Channel| async move {
        let mut stream = AssistantServiceClient::new(channel)
            .tell_story(peter())
            .await
            .unwrap()
            .into_inner();
        stream.message().await.unwrap().unwrap();
        stream
    };
    let first = open(channel.clone()).await;
    let _second = open(channel.clone()).await;
    let third = tokio::spawn(open(channel.clone()));
    // The third call may not start while two are open on the connection.
    assert!(
        timeout(Duration::from_millis(200), server.calls.wait_for(|n| n > 2))
            .await
            .is_err()
    );
    assert!(!third.is_finished());
    drop(first);
    let _third = timeout(PATIENCE, third)
        .await
        .expect("the third call starts once one ends")
        .unwrap();
    assert_eq!(server.calls.active(), 2);
}

#[tokio::test]
async fn calls_past_the_server_wide_cap_are_resource_exhausted_but_health_answers() {
    let config = Config {
        max_calls: 2,
        ..slow_config()
    };
    let server = TestServer::start(config).await.unwrap();
    let mut streams = Vec::new();
    for _ in 0..2 {
        let mut stream = AssistantServiceClient::new(channel(&server).await)
            .tell_story(peter())
            .await
            .unwrap()
            .into_inner();
        stream.message().await.unwrap().unwrap();
        streams.push(stream);
    }
    let fresh = channel(&server).await;
    let status = AssistantServiceClient::new(fresh.clone())
        .tell_story(peter())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().contains("limit of 2"),
        "{}",
        status.message()
    );
    let health = HealthClient::new(fresh.clone())
        .check(HealthCheckRequest { service: "".into() })
        .await
        .unwrap();
    assert_eq!(health.into_inner().status(), ServingStatus::Serving);

    drop(streams);
    timeout(PATIENCE, server.calls.idle()).await.unwrap();
    still_serves(&fresh).await;
}

// ---- 8. Logs ----

#[tokio::test]
async fn each_call_logs_in_a_span_and_ends_with_one_summary_line() {
    let (logs, _guard) = LogCapture::install();
    let server = TestServer::start(fast_config()).await.unwrap();
    let mut stream = AssistantServiceClient::new(channel(&server).await)
        .tell_story(peter())
        .await
        .unwrap()
        .into_inner();
    while stream.message().await.is_ok_and(|m| m.is_some()) {}
    timeout(PATIENCE, server.calls.idle()).await.unwrap();

    let contents = logs.contents();
    let received = contents
        .lines()
        .find(|line| line.contains("Received story-telling request"))
        .unwrap();
    assert!(
        received.contains("call{id=")
            && received.contains(" method=/assistant.AssistantService/TellStory peer=127.0.0.1:"),
        "{received}"
    );
    assert!(received.contains("user=Peter S}"), "{received}");
    let ended: Vec<&str> = contents
        .lines()
        .filter(|line| line.contains("Call ended"))
        .collect();
    assert_eq!(ended.len(), 1, "{contents}");
    // The greeting, 142 chunks and the ending.
    assert!(
        ended[0].contains("Call ended code=CANCELLED messages=144 bytes="),
        "{}",
        ended[0]
    );
    assert!(ended[0].contains(" elapsed_ms="), "{}", ended[0]);
}
