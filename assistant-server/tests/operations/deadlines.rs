//! The caller's deadline covers the whole call, on the server.

use super::*;
use assistant_test_support::WriteFile;
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

/// Calls `TellStory` for Peter S over HTTP/2 by hand, with a deadline of
/// `grpc_timeout` and a stream window of `window` bytes; returns the
/// response, unread.
async fn tell_story_raw(
    server: &TestServer,
    window: u32,
    grpc_timeout: &str,
) -> http::Response<h2::RecvStream> {
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (client, connection) = h2::client::Builder::new()
        .initial_window_size(window)
        .initial_connection_window_size(window.max(65_535))
        .handshake::<_, bytes::Bytes>(tcp)
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request = raw::grpc_post(server, "/assistant.AssistantService/TellStory")
        .header("grpc-timeout", grpc_timeout)
        .body(())
        .unwrap();
    let (response, mut send) = client.send_request(request, false).unwrap();
    send.send_data(
        bytes::Bytes::from_static(b"\x00\x00\x00\x00\x12\x0a\x07Peter S\x12\x07SUSTech"),
        true,
    )
    .unwrap();
    timeout(PATIENCE, response).await.unwrap().unwrap()
}

/// Reads a response body to its end, giving the window back as it goes;
/// returns the bytes and the trailers' `grpc-status`, or the error the
/// stream ended with.
async fn read_to_end(body: &mut h2::RecvStream) -> (Vec<u8>, Result<String, h2::Error>) {
    let mut received = Vec::new();
    while let Some(data) = timeout(PATIENCE, body.data()).await.unwrap() {
        match data {
            Ok(data) => {
                received.extend_from_slice(&data);
                let _ = body.flow_control().release_capacity(data.len());
            }
            Err(err) => return (received, Err(err)),
        }
    }
    let status = timeout(PATIENCE, body.trailers())
        .await
        .unwrap()
        .map(|trailers| {
            trailers.expect("trailers")["grpc-status"]
                .to_str()
                .unwrap()
                .to_owned()
        });
    (received, status)
}

/// Whether `bytes` are whole gRPC messages, none cut short.
fn whole_messages(mut bytes: &[u8]) -> bool {
    while bytes.len() >= 5 {
        let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
        let Some(rest) = bytes.get(5 + len..) else {
            return false;
        };
        bytes = rest;
    }
    bytes.is_empty()
}

fn assert_logged_deadline_exceeded(logs: &LogCapture) {
    assert!(
        logs.contents()
            .contains("Call ended code=DEADLINE_EXCEEDED"),
        "{}",
        logs.contents()
    );
}

#[tokio::test]
async fn a_body_that_is_always_ready_still_ends_at_the_deadline() {
    let (logs, _guard) = LogCapture::install();
    // One byte per message, no pauses: the story is always ready, and
    // its 4 million messages take far longer than 200 ms to send. The
    // client's window is large: flow control hardly holds the server back.
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        story: Some(dir.write("long.txt", vec![b'x'; 4 << 20])),
        chunk_size: 1,
        ..fast_config()
    };
    let server = TestServer::start(config).await.unwrap();
    let mut body = tell_story_raw(&server, 64 << 20, "200m").await.into_body();
    let (received, status) = read_to_end(&mut body).await;
    // The server outruns the socket, so the deadline may find a message
    // half sent: the client reads, so the rest of it goes, then the status.
    assert_eq!(status.unwrap(), "4", "DEADLINE_EXCEEDED");
    assert!(whole_messages(&received));
    // Far less than the story: 4 MiB of text, in 1-byte messages.
    assert!(received.len() < 4 << 20, "{} bytes", received.len());
    timeout(PATIENCE, server.calls.idle()).await.unwrap();
    assert_logged_deadline_exceeded(&logs);
}

#[tokio::test]
async fn a_stream_stalled_on_flow_control_still_ends_at_the_deadline_and_is_freed() {
    let (logs, _guard) = LogCapture::install();
    let server = TestServer::start(fast_config()).await.unwrap();
    // A client that grants no window at all: no byte of the response can
    // go, so nothing in the call is ever polled for it.
    let started = std::time::Instant::now();
    let response = tell_story_raw(&server, 0, "300m").await;
    timeout(PATIENCE, server.calls.idle())
        .await
        .expect("the call ends and frees its place, stalled as it is");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "ended {took:?} after a 300 ms deadline"
    );
    // Trailers are not flow-controlled: the status reaches the client,
    // which never let a byte of data through.
    let (received, status) = read_to_end(&mut response.into_body()).await;
    assert!(received.is_empty());
    assert_eq!(status.unwrap(), "4", "DEADLINE_EXCEEDED");
    assert_logged_deadline_exceeded(&logs);
}

#[tokio::test]
async fn a_stream_stalled_mid_message_is_reset_at_the_deadline() {
    let (logs, _guard) = LogCapture::install();
    let server = TestServer::start(fast_config()).await.unwrap();
    // Room for the greeting and half the first chunk: a status after that
    // would leave the client a message cut short.
    let response = tell_story_raw(&server, 600, "300m").await;
    timeout(PATIENCE, server.calls.idle())
        .await
        .expect("the call ends and frees its place, stalled as it is");
    let (received, status) = read_to_end(&mut response.into_body()).await;
    assert_eq!(received.len(), 600);
    assert!(!whole_messages(&received));
    let err = status.unwrap_err();
    assert_eq!(err.reason(), Some(h2::Reason::CANCEL), "{err}");
    assert_logged_deadline_exceeded(&logs);
}
