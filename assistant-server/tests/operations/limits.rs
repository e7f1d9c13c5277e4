//! The per-connection and server-wide limits on calls.

use super::*;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

#[tokio::test]
async fn streams_past_the_per_connection_limit_wait_and_nothing_breaks() {
    let config = Config {
        max_concurrent_streams: 2,
        ..slow_config()
    };
    let server = TestServer::start(config).await.unwrap();
    let channel = server.channel().await;
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
async fn calls_past_the_server_wide_cap_are_resource_exhausted_and_health_says_so() {
    let config = Config {
        max_calls: 2,
        ..slow_config()
    };
    let server = TestServer::start(config).await.unwrap();
    let mut streams = Vec::new();
    for _ in 0..2 {
        let mut stream = AssistantServiceClient::new(server.channel().await)
            .tell_story(peter())
            .await
            .unwrap()
            .into_inner();
        stream.message().await.unwrap().unwrap();
        streams.push(stream);
    }
    let fresh = server.channel().await;
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
    // Health answers, and says that a full server is not serving, until
    // calls end.
    let mut watch = HealthClient::new(fresh.clone())
        .watch(HealthCheckRequest { service: "".into() })
        .await
        .unwrap()
        .into_inner();
    timeout(PATIENCE, until(&mut watch, ServingStatus::NotServing))
        .await
        .expect("a full server reports NOT_SERVING");

    drop(streams);
    timeout(PATIENCE, server.calls.idle()).await.unwrap();
    timeout(PATIENCE, until(&mut watch, ServingStatus::Serving))
        .await
        .expect("SERVING again once calls end");
    still_serves(&fresh).await;
}

/// Waits until a health watch reports `wanted`.
async fn until(
    watch: &mut tonic::Streaming<tonic_health::pb::HealthCheckResponse>,
    wanted: ServingStatus,
) {
    while watch.message().await.unwrap().unwrap().status() != wanted {}
}

/// Opens a TellStory call on its own connection, sending 5 bytes of its
/// 10-byte request message and nothing more, as a slowloris client does.
/// Returns the call's response future (and what keeps it open).
async fn half_a_request(
    server: &TestServer,
) -> (
    h2::client::ResponseFuture,
    h2::SendStream<bytes::Bytes>,
    h2::client::SendRequest<bytes::Bytes>,
) {
    part_of_a_request(
        server,
        "/assistant.AssistantService/TellStory",
        b"\x00\x00\x00\x00\x0a",
    )
    .await
}

/// Opens a call to `path` on its own connection, sending `part` of its
/// request and nothing more; as [`half_a_request`].
async fn part_of_a_request(
    server: &TestServer,
    path: &str,
    part: &'static [u8],
) -> (
    h2::client::ResponseFuture,
    h2::SendStream<bytes::Bytes>,
    h2::client::SendRequest<bytes::Bytes>,
) {
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request = raw::grpc_post(server, path).body(()).unwrap();
    let (response, mut send) = client.send_request(request, false).unwrap();
    send.send_data(bytes::Bytes::from_static(part), false)
        .unwrap();
    (response, send, client)
}

/// The `grpc-status` a response ends with, headers or trailers.
async fn status_of(response: h2::client::ResponseFuture) -> i32 {
    let response = timeout(PATIENCE, response).await.unwrap().unwrap();
    let (parts, mut body) = response.into_parts();
    let status = match parts.headers.get("grpc-status") {
        Some(status) => status.clone(),
        None => {
            while let Some(data) = body.data().await {
                let data = data.unwrap();
                let _ = body.flow_control().release_capacity(data.len());
            }
            body.trailers().await.unwrap().unwrap()["grpc-status"].clone()
        }
    };
    status.to_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_request_that_does_not_arrive_in_time_ends_the_call_and_its_slot() {
    let (logs, _guard) = LogCapture::install();
    let config = Config {
        request_timeout: Duration::from_millis(200),
        ..fast_config()
    };
    let server = TestServer::start(config).await.unwrap();
    let (response, _send, _client) = half_a_request(&server).await;
    assert_eq!(status_of(response).await, Code::DeadlineExceeded as i32);
    timeout(PATIENCE, server.calls.idle())
        .await
        .expect("the slot is free again");
    // Such a call is no call for the log: no line of its own.
    assert!(
        !logs.contents().contains("Call ended"),
        "{}",
        logs.contents()
    );
    still_serves(&server.channel().await).await;
}

#[tokio::test]
async fn a_full_server_makes_room_for_a_good_call_by_ending_one_whose_request_has_not_come() {
    let config = Config {
        max_calls: 2,
        request_timeout: Duration::from_secs(3600),
        ..fast_config()
    };
    let server = TestServer::start(config).await.unwrap();
    // The calls are on connections of their own, which the server may
    // serve on different threads: the first is in before the second starts.
    let (oldest, _a, _c1) = half_a_request(&server).await;
    server.calls.wait_for(|active| active == 1).await;
    let (newer, _b, _c2) = half_a_request(&server).await;
    server.calls.wait_for(|active| active == 2).await;
    tokio::time::sleep(REQUEST_GRACE).await;

    a_good_call_gets_its_story(&server).await;
    assert_eq!(status_of(oldest).await, Code::ResourceExhausted as i32);
    assert!(
        timeout(Duration::from_millis(100), newer).await.is_err(),
        "only the oldest made room"
    );
}

/// How long a call must have waited for its request before a full server
/// may end it to make room: the server's grace for a request on its way.
const REQUEST_GRACE: Duration = Duration::from_millis(100);

/// A story call on a connection of its own gets its story: room is made
/// for it.
async fn a_good_call_gets_its_story(server: &TestServer) {
    let mut stream = AssistantServiceClient::new(server.channel().await)
        .tell_story(peter())
        .await
        .expect("room is made for it")
        .into_inner();
    while stream.message().await.is_ok_and(|m| m.is_some()) {}
}

#[tokio::test]
async fn a_full_server_makes_room_with_counted_calls_only_not_a_health_check() {
    let config = Config {
        max_calls: 1,
        request_timeout: Duration::from_secs(3600),
        ..fast_config()
    };
    let server = TestServer::start(config).await.unwrap();
    // A health check waits for its request (3 bytes of an empty message's
    // 5); then, on the same connection and so after it, the one counted
    // call waits for its own.
    let (check, mut check_request, client) =
        part_of_a_request(&server, "/grpc.health.v1.Health/Check", b"\x00\x00\x00").await;
    let mut client = client.ready().await.unwrap();
    let request = raw::grpc_post(&server, "/assistant.AssistantService/TellStory")
        .body(())
        .unwrap();
    let (story, mut story_request) = client.send_request(request, false).unwrap();
    story_request
        .send_data(bytes::Bytes::from_static(b"\x00\x00\x00\x00\x0a"), false)
        .unwrap();
    server.calls.wait_for(|active| active == 1).await;
    tokio::time::sleep(REQUEST_GRACE).await;

    a_good_call_gets_its_story(&server).await;
    assert_eq!(status_of(story).await, Code::ResourceExhausted as i32);

    // The health check, which the count leaves out, was not the one ended:
    // its request completes, and it answers.
    check_request
        .send_data(bytes::Bytes::from_static(b"\x00\x00"), true)
        .unwrap();
    assert_eq!(status_of(check).await, Code::Ok as i32);
}

/// An HTTP/2 connection to `server` that gives its streams no window.
async fn zero_window_connection(server: &TestServer) -> h2::client::SendRequest<bytes::Bytes> {
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (client, connection) = h2::client::Builder::new()
        .initial_window_size(0)
        .handshake(tcp)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

#[tokio::test]
async fn a_chat_whose_place_is_taken_ends_though_it_never_reads_its_request() {
    // Chat answers before it reads: with no window from its client, a
    // chat waits to send and never polls its request. Taken off the list
    // of calls waiting for their request, it must end all the same, or
    // every new one at a full server would add one to the count.
    let config = Config {
        max_calls: 1,
        ..fast_config()
    };
    let server = TestServer::start(config).await.unwrap();
    let mut client = zero_window_connection(&server).await.ready().await.unwrap();
    let mut chat = || {
        let request = raw::grpc_post(&server, "/ChatService/Chat")
            .body(())
            .unwrap();
        client.send_request(request, false).unwrap()
    };
    let (first, _first_request) = chat();
    server.calls.wait_for(|active| active == 1).await;
    tokio::time::sleep(REQUEST_GRACE).await;
    let (second, _second_request) = chat();

    let ended = timeout(PATIENCE, status_of(first))
        .await
        .expect("the first chat ends");
    assert_eq!(ended, Code::ResourceExhausted as i32);
    timeout(PATIENCE, server.calls.wait_for(|active| active == 1))
        .await
        .expect("one call in flight, as --max-calls allows");
    drop(second);
}

#[tokio::test]
async fn one_connection_gets_no_more_than_its_share_of_calls() {
    let config = Config {
        max_calls_per_connection: 2,
        ..slow_config()
    };
    let server = TestServer::start(config).await.unwrap();
    let channel = server.channel().await;
    let mut streams = Vec::new();
    for _ in 0..2 {
        let mut stream = AssistantServiceClient::new(channel.clone())
            .tell_story(peter())
            .await
            .unwrap()
            .into_inner();
        stream.message().await.unwrap().unwrap();
        streams.push(stream);
    }
    let status = AssistantServiceClient::new(channel.clone())
        .tell_story(peter())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().contains("its share"),
        "{}",
        status.message()
    );
    // Another connection has a share of its own.
    let mut other = AssistantServiceClient::new(server.channel().await)
        .tell_story(peter())
        .await
        .unwrap()
        .into_inner();
    other.message().await.unwrap().unwrap();
}

#[tokio::test]
async fn a_full_server_makes_room_by_ending_a_stalled_call_of_its_busiest_connection() {
    let (logs, _guard) = LogCapture::install();
    let config = Config {
        max_calls: 3,
        ..fast_config()
    };
    let server = TestServer::start(config).await.unwrap();
    // One connection fills the server with calls that never get a window.
    let client = zero_window_connection(&server).await;
    let mut stalled = Vec::new();
    for _ in 0..3 {
        let mut client = client.clone().ready().await.unwrap();
        let request = raw::grpc_post(&server, "/assistant.AssistantService/TellStory")
            .body(())
            .unwrap();
        let (response, mut send) = client.send_request(request, false).unwrap();
        send.send_data(
            bytes::Bytes::from_static(b"\x00\x00\x00\x00\x12\x0a\x07Peter S\x12\x07SUSTech"),
            true,
        )
        .unwrap();
        stalled.push(response);
    }
    logs.wait_for_lines(3, |m| m.starts_with("Waiting for Peter S to read"))
        .await;

    // A good client, on a connection of its own, still gets its story.
    let mut stream = AssistantServiceClient::new(server.channel().await)
        .tell_story(peter())
        .await
        .expect("room is made for it")
        .into_inner();
    while stream.message().await.is_ok_and(|m| m.is_some()) {}

    // The call ended for it says why, though its client reads nothing.
    let mut statuses = Vec::new();
    for response in stalled {
        let mut body = timeout(PATIENCE, response)
            .await
            .unwrap()
            .unwrap()
            .into_body();
        if let Ok(data) = timeout(Duration::from_millis(200), body.data()).await {
            assert!(data.is_none(), "no window, no data");
            let trailers = body.trailers().await.unwrap().unwrap();
            statuses.push(trailers["grpc-status"].to_str().unwrap().to_owned());
        }
    }
    assert_eq!(statuses, ["8"], "RESOURCE_EXHAUSTED, for one call only");
}
