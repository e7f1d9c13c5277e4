//! `--metrics-addr`: every call counted by method, shape and code, as
//! go-grpc-middleware counts them; the server's own series; nothing
//! listening without the flag.

use std::collections::HashMap;

use assistant_proto::assistant::TellStoryRequest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// The response to `GET path` on the metrics listener: status line and
/// body.
async fn get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    timeout(PATIENCE, tcp.read_to_string(&mut response))
        .await
        .expect("the endpoint answers")
        .unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}

/// Every sample of a scrape, by its name and labels as written.
async fn scrape(server: &TestServer) -> HashMap<String, f64> {
    let (status, body) = get(server.metrics_addr.unwrap(), "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    body.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn grpc(name: &str, shape: &str, service: &str, method: &str, code: Option<&str>) -> String {
    let code = code.map_or(String::new(), |code| format!(",grpc_code=\"{code}\""));
    format!(
        "{name}{{grpc_type=\"{shape}\",grpc_service=\"{service}\",grpc_method=\"{method}\"{code}}}"
    )
}

fn story(name: &str, code: Option<&str>) -> String {
    grpc(
        name,
        "server_stream",
        "assistant.AssistantService",
        "TellStory",
        code,
    )
}

fn with_metrics(config: Config) -> Config {
    Config {
        metrics_addr: Some(([127, 0, 0, 1], 0).into()),
        ..config
    }
}

#[tokio::test]
async fn every_call_is_counted_by_method_shape_and_code() {
    let server = TestServer::start(with_metrics(fast_config()))
        .await
        .unwrap();
    let channel = server.channel().await;
    let before = scrape(&server).await;
    // Every series a dashboard needs is there from the start, at zero.
    assert_eq!(
        before.get(&story("grpc_server_handled_total", Some("OK"))),
        Some(&0.0)
    );
    assert_eq!(before.get("assistant_calls_in_flight"), Some(&0.0));

    for _ in 0..2 {
        let mut stream = AssistantServiceClient::new(channel.clone())
            .tell_story(peter())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(ending(&mut stream).await, Code::Cancelled);
    }
    let missing = TellStoryRequest {
        story: "no-such-story.txt".into(),
        ..peter()
    };
    let status = AssistantServiceClient::new(channel.clone())
        .tell_story(missing)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    still_serves(&channel).await;
    let mut chat = ChatServiceClient::new(channel.clone());
    chat.collect_stream(texts(&["a", "b", "c"])).await.unwrap();
    let mut replies = chat.chat(texts(&["x", "y"])).await.unwrap().into_inner();
    while replies.message().await.unwrap().is_some() {}
    timeout(PATIENCE, server.calls.idle()).await.unwrap();

    let after = scrape(&server).await;
    let grew = |series: &str| after.get(series).copied().unwrap_or(-1.0) - before[series];
    assert_eq!(grew(&story("grpc_server_started_total", None)), 3.0);
    assert_eq!(
        grew(&story("grpc_server_handled_total", Some("Canceled"))),
        2.0
    );
    assert_eq!(
        grew(&story("grpc_server_handled_total", Some("NotFound"))),
        1.0
    );
    assert_eq!(grew(&story("grpc_server_msg_received_total", None)), 3.0);
    // The greeting, 142 chunks of 1,024 bytes and a last one, the ending.
    assert_eq!(
        grew(&story("grpc_server_msg_sent_total", None)),
        2.0 * 144.0
    );
    let hello = |name, code| grpc(name, "unary", "Greeter", "SayHello", code);
    assert_eq!(grew(&hello("grpc_server_handled_total", Some("OK"))), 1.0);
    assert_eq!(grew(&hello("grpc_server_msg_sent_total", None)), 1.0);
    let collect = |name, code| grpc(name, "client_stream", "ChatService", "CollectStream", code);
    assert_eq!(grew(&collect("grpc_server_handled_total", Some("OK"))), 1.0);
    assert_eq!(grew(&collect("grpc_server_msg_received_total", None)), 3.0);
    let bidi = |name, code| grpc(name, "bidi_stream", "ChatService", "Chat", code);
    assert_eq!(grew(&bidi("grpc_server_handled_total", Some("OK"))), 1.0);
    assert_eq!(grew(&bidi("grpc_server_msg_received_total", None)), 2.0);
    let whole = assistant_test_support::fixtures::whole_story().len() as f64;
    assert_eq!(grew("assistant_story_bytes_sent_total"), 2.0 * whole);
    assert_eq!(
        after.get(&format!(
            "{}_count{{grpc_type=\"server_stream\",grpc_service=\"assistant.AssistantService\",grpc_method=\"TellStory\"}}",
            "grpc_server_handling_seconds"
        )),
        Some(&3.0)
    );
    assert_eq!(after.get("assistant_connections_open"), Some(&1.0));
    assert_eq!(after.get("assistant_stories_cached"), Some(&1.0));

    let (status, _) = get(server.metrics_addr.unwrap(), "/").await;
    assert_eq!(status, "HTTP/1.1 404 Not Found");
}

#[tokio::test]
async fn a_client_that_goes_away_and_a_deadline_are_counted() {
    let server = TestServer::start(with_metrics(slow_config()))
        .await
        .unwrap();
    let channel = server.channel().await;
    let mut story = AssistantServiceClient::new(channel.clone())
        .tell_story(peter())
        .await
        .unwrap()
        .into_inner();
    story.message().await.unwrap().unwrap();
    assert_eq!(
        scrape(&server).await.get("assistant_calls_in_flight"),
        Some(&1.0)
    );
    drop(story);
    timeout(PATIENCE, server.calls.idle()).await.unwrap();

    let mut late = tonic::Request::new(peter());
    late.set_timeout(Duration::from_millis(50));
    let mut story = AssistantServiceClient::new(channel.clone())
        .tell_story(late)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ending(&mut story).await, Code::DeadlineExceeded);
    timeout(PATIENCE, server.calls.idle()).await.unwrap();

    let after = scrape(&server).await;
    assert_eq!(after[&story_series("Canceled")], 1.0);
    assert_eq!(after[&story_series("DeadlineExceeded")], 1.0);
    assert_eq!(after["assistant_calls_in_flight"], 0.0);
}

/// The status a story ends with: the tutorial's ends with one, never OK.
async fn ending(
    stream: &mut tonic::Streaming<assistant_proto::assistant::TellStoryResponse>,
) -> Code {
    loop {
        match stream.message().await {
            Ok(Some(_)) => {}
            Ok(None) => panic!("the story ended without a status other than OK"),
            Err(status) => return status.code(),
        }
    }
}

fn story_series(code: &str) -> String {
    story("grpc_server_handled_total", Some(code))
}

#[tokio::test]
async fn without_the_flag_nothing_listens_for_metrics() {
    let server = TestServer::start(fast_config()).await.unwrap();
    assert_eq!(server.metrics_addr, None);
}

#[tokio::test]
async fn refusals_stalls_and_closed_connections_are_counted() {
    let (logs, _guard) = LogCapture::install();
    let config = Config {
        max_calls: 1,
        ..with_metrics(fast_config())
    };
    let server = TestServer::start(config).await.unwrap();
    // 144 KB against a 16 KiB window: the story stalls until the client
    // reads on, and holds the only call slot meanwhile.
    let channel = tonic::transport::Endpoint::from_shared(server.url())
        .unwrap()
        .initial_stream_window_size(Some(16 * 1024))
        .connect()
        .await
        .unwrap();

    let mut story = AssistantServiceClient::new(channel.clone())
        .tell_story(peter())
        .await
        .unwrap()
        .into_inner();
    story.message().await.unwrap().unwrap();
    timeout(
        PATIENCE,
        logs.wait_for(|m| m.starts_with("Waiting for Peter S to read")),
    )
    .await
    .expect("the story stalls");
    let stalled = scrape(&server).await;
    assert_eq!(stalled["assistant_calls_stalled"], 1.0);
    assert_eq!(stalled["assistant_calls_in_flight"], 1.0);

    let refused = AssistantServiceClient::new(channel.clone())
        .tell_story(peter())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);

    assert_eq!(ending(&mut story).await, Code::Cancelled);
    timeout(PATIENCE, server.calls.idle()).await.unwrap();

    // A connection that does not speak HTTP/2 is closed, for that reason.
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let _ = timeout(PATIENCE, tcp.read_to_end(&mut rest)).await;
    let not_http2 = "assistant_connections_closed_total{reason=\"not_http2\"}";
    let after = timeout(PATIENCE, async {
        loop {
            let after = scrape(&server).await;
            if after.get(not_http2) == Some(&1.0) {
                return after;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the closed connection is counted");

    assert_eq!(
        after["assistant_calls_refused_total{limit=\"max_calls\"}"],
        1.0
    );
    assert_eq!(after[&story_series("ResourceExhausted")], 1.0);
    assert_eq!(after[&story_series("Canceled")], 1.0);
    assert_eq!(after["assistant_calls_stalled"], 0.0);
    assert!(after["assistant_stall_seconds_count"] >= 1.0);
    assert!(after["assistant_stall_seconds_sum"] > 0.0);
    assert_eq!(after["assistant_connections_refused_total"], 0.0);
}
