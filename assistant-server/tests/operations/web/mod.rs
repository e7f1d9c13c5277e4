//! `--web-addr`: the story page, and gRPC-Web for it over HTTP/1.1 and
//! HTTP/2, within the same limits as the gRPC port; CORS only for the
//! origins `--web-allow-origin` names. (The page itself is tested in a
//! real browser by `assistant-server/web/test/browser.mjs`.) The web
//! listener's limits are in [`limits`].

mod limits;

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

/// The page, over HTTP/1.1.
async fn the_page(web: SocketAddr) -> Response<Bytes> {
    send(
        web,
        Version::HTTP_11,
        Request::get("http://web/").body(Full::default()).unwrap(),
    )
    .await
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
    let page = the_page(web).await;
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
