//! `--web-addr`: the story page, and gRPC-Web for it over HTTP/1.1 and
//! HTTP/2, within the same limits as the gRPC port; CORS only for the
//! origins `--web-allow-origin` names. (The page itself is tested in a
//! real browser by `assistant-server/web/test/browser.mjs`.)

use std::net::SocketAddr;

use assistant_test_support::fixtures::whole_story;
use bytes::{Buf, Bytes};
use http::{Request, Response, StatusCode, Version, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use tokio::{io::AsyncReadExt, net::TcpStream};

use super::*;

const TELL_STORY: &str = "/assistant.AssistantService/TellStory";

/// A server with its web listener on a free port.
async fn web_server(config: Config) -> (TestServer, SocketAddr) {
    let config = Config {
        web_addr: Some("127.0.0.1:0".parse().unwrap()),
        ..config
    };
    let server = TestServer::start(config).await.unwrap();
    let web = server.web_addr.expect("--web-addr binds a listener");
    (server, web)
}

/// Sends `request` on a new connection of HTTP `version`; the response
/// with its whole body.
async fn send(
    addr: SocketAddr,
    version: Version,
    request: Request<Full<Bytes>>,
) -> Response<Bytes> {
    let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
    let response = if version == Version::HTTP_2 {
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .unwrap();
        tokio::spawn(connection);
        sender.send_request(request).await.unwrap()
    } else {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(connection);
        sender.send_request(request).await.unwrap()
    };
    let (parts, body) = response.into_parts();
    let body = timeout(PATIENCE, body.collect())
        .await
        .expect("the response ends")
        .unwrap()
        .to_bytes();
    Response::from_parts(parts, body)
}

/// A gRPC-Web request for `path` with one message, as browsers send it.
fn grpc_web(path: &str, message: &impl Message) -> Request<Full<Bytes>> {
    let encoded = message.encode_to_vec();
    let mut body = vec![0];
    body.extend_from_slice(&(encoded.len() as u32).to_be_bytes());
    body.extend_from_slice(&encoded);
    Request::post(format!("http://web{path}"))
        .header(header::CONTENT_TYPE, "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

/// A gRPC-Web response body: its messages, and its trailers as text.
fn frames(mut body: Bytes) -> (Vec<Bytes>, String) {
    let (mut messages, mut trailers) = (Vec::new(), String::new());
    while body.has_remaining() {
        let flag = body.get_u8();
        let len = body.get_u32() as usize;
        let payload = body.split_to(len);
        if flag & 0x80 == 0 {
            messages.push(payload);
        } else {
            trailers.push_str(std::str::from_utf8(&payload).unwrap());
        }
    }
    (messages, trailers)
}

/// A gRPC-Web response's status code: from its headers (a call refused
/// at once) or its trailers.
fn grpc_status(response: Response<Bytes>) -> String {
    if let Some(code) = response.headers().get("grpc-status") {
        return code.to_str().unwrap().to_owned();
    }
    let (_, trailers) = frames(response.into_body());
    trailers
        .lines()
        .find_map(|line| line.strip_prefix("grpc-status:"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// The text of a TellStory response's messages, joined.
fn story_text(messages: &[Bytes]) -> Vec<u8> {
    messages
        .iter()
        .flat_map(|m| {
            assistant_proto::assistant::TellStoryResponse::decode(m.clone())
                .unwrap()
                .text_chunk
        })
        .collect()
}

#[tokio::test]
async fn the_page_and_its_script_are_served_with_a_strict_policy() {
    let (server, web) = web_server(fast_config()).await;
    let page = send(
        web,
        Version::HTTP_11,
        Request::get("http://web/").body(Full::default()).unwrap(),
    )
    .await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(
        page.headers()[header::CONTENT_TYPE],
        "text/html; charset=utf-8"
    );
    let policy = page.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(
        policy.contains("script-src 'self'") && policy.contains("connect-src 'self'"),
        "{policy}"
    );
    assert!(
        std::str::from_utf8(page.body())
            .unwrap()
            .contains(r#"<pre id="story""#)
    );

    let script = send(
        web,
        Version::HTTP_2,
        Request::get("http://web/app.js")
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(script.status(), StatusCode::OK);
    assert!(script.body().len() > 10_000, "the bundle, not a stub");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_story_comes_whole_over_grpc_web_on_http1_and_http2() {
    let (server, web) = web_server(fast_config()).await;
    let expected = whole_story();
    for version in [Version::HTTP_11, Version::HTTP_2] {
        let response = send(web, version, grpc_web(TELL_STORY, &peter())).await;
        assert_eq!(response.status(), StatusCode::OK, "{version:?}");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/grpc-web+proto"
        );
        let (messages, trailers) = frames(response.into_body());
        assert!(
            story_text(&messages) == expected,
            "{version:?}: the text differs"
        );
        assert!(
            trailers.contains("grpc-status:1"),
            "{version:?}: {trailers}"
        );
        assert!(
            trailers.contains("grpc-message:story%20finished"),
            "{trailers}"
        );
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn only_the_pages_methods_are_served_and_plain_grpc_is_turned_away() {
    let (server, web) = web_server(fast_config()).await;
    let hello = HelloRequest { name: "web".into() };
    let response = send(web, Version::HTTP_11, grpc_web("/Greeter/SayHello", &hello)).await;
    assert_eq!(grpc_status(response), "12", "UNIMPLEMENTED");

    let list = send(
        web,
        Version::HTTP_2,
        grpc_web(
            "/assistant.AssistantService/ListStories",
            &assistant_proto::assistant::ListStoriesRequest {},
        ),
    )
    .await;
    let (messages, _) = frames(list.into_body());
    let listed =
        assistant_proto::assistant::ListStoriesResponse::decode(messages[0].clone()).unwrap();
    assert_eq!(listed.stories[0].name, "alice.txt");

    let mut plain = grpc_web(TELL_STORY, &peter());
    plain
        .headers_mut()
        .insert(header::CONTENT_TYPE, "application/grpc".parse().unwrap());
    let refused = send(web, Version::HTTP_2, plain).await;
    assert_eq!(refused.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    server.stop().await.unwrap();
}

/// A CORS preflight from `origin`: the origin the answer allows, if any.
async fn preflight(web: SocketAddr, origin: &str) -> Option<String> {
    let request = Request::options(format!("http://web{TELL_STORY}"))
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "content-type,x-grpc-web",
        )
        .body(Full::default())
        .unwrap();
    let response = send(web, Version::HTTP_11, request).await;
    response
        .headers()
        .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn other_origins_may_call_only_when_allowed() {
    let (server, web) = web_server(fast_config()).await;
    assert_eq!(
        preflight(web, "https://elsewhere.example").await,
        None,
        "same-origin by default"
    );
    server.stop().await.unwrap();

    let config = Config {
        web_allow_origins: vec!["https://app.example".into()],
        ..fast_config()
    };
    let (server, web) = web_server(config).await;
    assert_eq!(
        preflight(web, "https://app.example").await.as_deref(),
        Some("https://app.example")
    );
    assert_eq!(preflight(web, "https://elsewhere.example").await, None);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn web_calls_count_against_max_calls() {
    let config = Config {
        max_calls: 1,
        ..slow_config()
    };
    let (server, web) = web_server(config).await;
    let mut channel = AssistantServiceClient::new(server.channel().await);
    let mut held = channel.tell_story(peter()).await.unwrap().into_inner();
    held.message().await.unwrap().expect("the greeting");

    let response = send(web, Version::HTTP_11, grpc_web(TELL_STORY, &peter())).await;
    assert_eq!(grpc_status(response), "8", "RESOURCE_EXHAUSTED");
    drop(held);
    server.stop().await.unwrap();
}

/// Whether the server closes `tcp` (rather than the wait running out).
async fn closed_by_server(mut tcp: TcpStream) -> bool {
    let mut buf = [0; 64];
    matches!(
        timeout(PATIENCE, tcp.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn connections_past_the_cap_or_silent_past_the_handshake_timeout_are_closed() {
    let config = Config {
        max_connections: Some(2),
        handshake_timeout: Duration::from_millis(300),
        ..fast_config()
    };
    let (server, web) = web_server(config).await;
    let first = TcpStream::connect(web).await.unwrap();
    let second = TcpStream::connect(web).await.unwrap();
    let third = TcpStream::connect(web).await.unwrap();
    assert!(closed_by_server(third).await, "past the cap");
    // The first two said nothing: the handshake timeout closes them.
    assert!(closed_by_server(first).await);
    assert!(closed_by_server(second).await);
    // Their slots are free again.
    let page = send(
        web,
        Version::HTTP_11,
        Request::get("http://web/").body(Full::default()).unwrap(),
    )
    .await;
    assert_eq!(page.status(), StatusCode::OK);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn shutdown_ends_web_calls_and_closes_their_connections() {
    let config = Config {
        shutdown_grace: Duration::from_millis(100),
        ..slow_config()
    };
    let (mut server, web) = web_server(config).await;
    let call = tokio::spawn(send(web, Version::HTTP_11, grpc_web(TELL_STORY, &peter())));
    server.calls.wait_for(|active| active == 1).await;
    server.begin_shutdown();
    let response = timeout(PATIENCE, call)
        .await
        .expect("the call ends")
        .unwrap();
    let (messages, trailers) = frames(response.into_body());
    assert!(!messages.is_empty(), "what was sent, then the end");
    assert!(
        trailers.contains("grpc-status:14"),
        "UNAVAILABLE: {trailers}"
    );
    timeout(PATIENCE, server.stopped())
        .await
        .expect("the server stops")
        .unwrap();
}

#[tokio::test]
async fn oversized_requests_and_deadlines_are_held_as_on_the_grpc_port() {
    let (server, web) = web_server(slow_config()).await;
    let huge = assistant_proto::assistant::TellStoryRequest {
        user_name: "x".repeat(64 * 1024),
        ..peter()
    };
    let response = send(web, Version::HTTP_11, grpc_web(TELL_STORY, &huge)).await;
    assert_eq!(grpc_status(response), "8", "RESOURCE_EXHAUSTED");

    let mut hurried = grpc_web(TELL_STORY, &peter());
    hurried
        .headers_mut()
        .insert("grpc-timeout", "200m".parse().unwrap());
    let response = send(web, Version::HTTP_2, hurried).await;
    let (messages, trailers) = frames(response.into_body());
    assert!(!messages.is_empty(), "what was sent before the deadline");
    assert!(
        trailers.contains("grpc-status:4"),
        "DEADLINE_EXCEEDED: {trailers}"
    );
    server.stop().await.unwrap();
}

/// Sends the page's request on `tcp` and reads the whole answer.
async fn get_page(tcp: &mut TcpStream) {
    tokio::io::AsyncWriteExt::write_all(tcp, b"GET / HTTP/1.1\r\nHost: web\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0; 4096];
    while !answer.ends_with(b"</html>\n") {
        let n = timeout(PATIENCE, tcp.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "the page comes whole");
        answer.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test]
async fn a_request_head_left_unfinished_is_cut_off_on_a_kept_alive_connection() {
    let config = Config {
        handshake_timeout: Duration::from_millis(300),
        ..fast_config()
    };
    let (server, web) = web_server(config).await;
    let mut tcp = TcpStream::connect(web).await.unwrap();
    // A first request, answered: the connection's handshake is over, so
    // only the timeout on each request's head can close it now.
    get_page(&mut tcp).await;
    tokio::io::AsyncWriteExt::write_all(&mut tcp, b"GET / HTTP/1.1\r\nHost: web\r\nX-Slow: ")
        .await
        .unwrap();
    assert!(closed_by_server(tcp).await, "an unfinished head is closed");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_request_head_past_the_http1_buffer_is_refused() {
    let (server, web) = web_server(fast_config()).await;
    let mut tcp = TcpStream::connect(web).await.unwrap();
    let head = format!(
        "GET / HTTP/1.1\r\nHost: web\r\nX-Big: {}\r\n\r\n",
        "a".repeat(70 * 1024)
    );
    // The server may stop reading before the head is all written.
    let _ = tokio::io::AsyncWriteExt::write_all(&mut tcp, head.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = timeout(PATIENCE, tcp.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:.60}");
    server.stop().await.unwrap();
}

/// An HTTP/2 connection whose window for each stream is zero: it never
/// takes a byte of a response body.
async fn never_reading_connection(
    web: SocketAddr,
) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
    let io = TokioIo::new(TcpStream::connect(web).await.unwrap());
    let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(0)
        .handshake(io)
        .await
        .unwrap();
    tokio::spawn(connection);
    sender
}

/// Starts a gRPC-Web TellStory that is never read. Returns what keeps it
/// open: the connection's sender and the unread response.
async fn never_reading(
    web: SocketAddr,
    request: Request<Full<Bytes>>,
) -> (
    hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    Response<hyper::body::Incoming>,
) {
    let mut sender = never_reading_connection(web).await;
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    (sender, response)
}

#[tokio::test]
async fn a_web_call_whose_client_never_reads_still_ends_at_its_deadline() {
    let (server, web) = web_server(fast_config()).await;
    let mut request = grpc_web(TELL_STORY, &peter());
    request
        .headers_mut()
        .insert("grpc-timeout", "300m".parse().unwrap());
    let _held = never_reading(web, request).await;
    assert_eq!(server.calls.active(), 1);
    timeout(PATIENCE, server.calls.wait_for(|active| active == 0))
        .await
        .expect("the deadline ends the call, read or not");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_full_server_makes_room_by_ending_a_stalled_web_call() {
    let config = Config {
        max_calls: 2,
        shutdown_grace: Duration::from_millis(100),
        ..fast_config()
    };
    let (server, web) = web_server(config).await;
    // Two calls on one connection that never reads: the busiest connection.
    let mut sender = never_reading_connection(web).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(
            sender
                .send_request(grpc_web(TELL_STORY, &peter()))
                .await
                .unwrap(),
        );
    }
    assert_eq!(server.calls.active(), 2);
    // Once stalled, a web call gives its place to a new one.
    let story = timeout(PATIENCE, async {
        loop {
            let mut client = AssistantServiceClient::new(server.channel().await);
            match client.tell_story(peter()).await {
                Ok(response) => break response.into_inner(),
                Err(status) => assert_eq!(status.code(), Code::ResourceExhausted),
            }
        }
    })
    .await
    .expect("the stalled web call makes room");
    drop(story);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn shutdown_ends_a_web_call_whose_client_never_reads() {
    let config = Config {
        shutdown_grace: Duration::from_millis(100),
        ..fast_config()
    };
    let (mut server, web) = web_server(config).await;
    let _held = never_reading(web, grpc_web(TELL_STORY, &peter())).await;
    server.begin_shutdown();
    timeout(PATIENCE, server.stopped())
        .await
        .expect("the server stops")
        .unwrap();
}
