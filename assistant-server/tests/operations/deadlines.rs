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
