//! The web listener's limits: connections, the handshake timeout, request
//! size, deadlines, shutdown, and clients that never read.

use super::*;

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
    let page = the_page(web).await;
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
