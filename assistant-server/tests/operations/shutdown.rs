//! Graceful shutdown: calls finish within the grace period, the rest end UNAVAILABLE, and no client keeps the server alive.

use super::*;

/// Asserts the server's last word: how many calls it served, and how many
/// of them shutdown ended.
fn assert_stopped_after(logs: &LogCapture, served: u64, ended: u64) {
    let calls = if served == 1 { "call" } else { "calls" };
    let expected = format!("Server stopped: {served} {calls} served, {ended} ended by shutdown");
    let messages = logs.messages();
    assert!(messages.contains(&expected), "{messages:#?}");
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
    let mut client = AssistantServiceClient::new(server.channel().await);
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
    let mut client = ChatServiceClient::new(server.channel().await);
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
    assert_stopped_after(&logs, 1, 1);
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
    assert_stopped_after(&logs, 1, 1);
}
