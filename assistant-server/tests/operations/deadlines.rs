//! The caller's deadline covers the whole call, on the server.

use super::*;
use tonic::Request;

#[tokio::test]
async fn the_server_ends_a_stream_at_the_callers_deadline() {
    let (logs, _guard) = LogCapture::install();
    let server = TestServer::start(slow_config()).await.unwrap();
    let mut client = AssistantServiceClient::new(server.channel().await);
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
    let (status, _) = raw::h2_call(
        &server,
        "/ChatService/CollectStream",
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
    let (status, text) = raw::h2_call(
        &server,
        "/Greeter/SayHello",
        Some("99999999H"),
        b"\x00\x00\x00\x00\x08\x0a\x06Ferris",
        true,
    )
    .await;
    assert_eq!(status, 0);
    assert!(text.windows(14).any(|w| w == b"Hello, Ferris!"));
    still_serves(&server.channel().await).await;
}

#[tokio::test]
async fn a_body_that_is_always_ready_still_ends_at_the_deadline() {
    let (logs, _guard) = LogCapture::install();
    // One byte per message, no pauses: the story is always ready, and
    // takes far longer than 20 ms to send.
    let config = Config {
        chunk_size: 1,
        ..fast_config()
    };
    let server = TestServer::start(config).await.unwrap();
    let (status, received) = raw::h2_call(
        &server,
        "/assistant.AssistantService/TellStory",
        Some("20m"),
        b"\x00\x00\x00\x00\x12\x0a\x07Peter S\x12\x07SUSTech",
        true,
    )
    .await;
    assert_eq!(status, Code::DeadlineExceeded as i32);
    assert!(received.len() < 144_396, "{} bytes", received.len());
    timeout(PATIENCE, server.calls.idle()).await.unwrap();
    assert!(
        logs.contents()
            .contains("Call ended code=DEADLINE_EXCEEDED"),
        "{}",
        logs.contents()
    );
}

#[tokio::test]
async fn a_stream_stalled_on_flow_control_still_ends_at_the_deadline_and_is_freed() {
    let (logs, _guard) = LogCapture::install();
    let server = TestServer::start(fast_config()).await.unwrap();
    // A client that grants no window at all: no byte of the response can
    // go, so nothing in the call is ever polled for it.
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (client, connection) = h2::client::Builder::new()
        .initial_window_size(0)
        .handshake::<_, bytes::Bytes>(tcp)
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request = http::Request::post(format!(
        "{}/assistant.AssistantService/TellStory",
        server.url()
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .header("grpc-timeout", "300m")
    .body(())
    .unwrap();
    let (response, mut send) = client.send_request(request, false).unwrap();
    send.send_data(
        bytes::Bytes::from_static(b"\x00\x00\x00\x00\x12\x0a\x07Peter S\x12\x07SUSTech"),
        true,
    )
    .unwrap();
    let started = std::time::Instant::now();
    let response = timeout(PATIENCE, response).await.unwrap().unwrap();
    server.calls.wait_for(|active| active == 1).await;

    timeout(PATIENCE, server.calls.idle())
        .await
        .expect("the call ends and frees its place, stalled as it is");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "ended {took:?} after a 300 ms deadline"
    );
    // The stream was reset: trailers could not have gone out behind data
    // the client never let through.
    let mut body = response.into_body();
    let err = timeout(PATIENCE, body.data())
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(err.reason(), Some(h2::Reason::CANCEL), "{err}");
    assert!(
        logs.contents()
            .contains("Call ended code=DEADLINE_EXCEEDED"),
        "{}",
        logs.contents()
    );
}
