//! The server says when a client's flow-control window holds a story
//! back: one line when the stream stops, one when it moves again, and none
//! for the pauses the server makes itself.

use std::time::Duration;

use assistant_proto::assistant::assistant_service_client::AssistantServiceClient;
use assistant_server::Config;
use assistant_test_support::{
    LogCapture, TestServer, WriteFile,
    fixtures::{fast_config, peter},
    raw,
};
use bytes::{BufMut, BytesMut};
use h2::RecvStream;
use prost::Message;

/// The client's window for each stream, far smaller than the story.
const WINDOW: u32 = 4096;

/// Opens `TellStory` over HTTP/2 by hand, with a stream window of
/// [`WINDOW`] bytes, and returns the response body unread.
async fn open_with_small_window(server: &TestServer) -> RecvStream {
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (client, connection) = h2::client::Builder::new()
        .initial_window_size(WINDOW)
        .handshake(tcp)
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request = raw::grpc_post(server, "/assistant.AssistantService/TellStory")
        .body(())
        .unwrap();
    let (response, mut send) = client.send_request(request, false).unwrap();
    let message = peter().encode_to_vec();
    let mut body = BytesMut::new();
    body.put_u8(0);
    body.put_u32(message.len() as u32);
    body.put_slice(&message);
    send.send_data(body.freeze(), true).unwrap();
    response.await.unwrap().into_body()
}

/// Reads `n` bytes, and gives back exactly that much of the window.
async fn read(body: &mut RecvStream, n: usize) {
    let mut read = 0;
    while read < n {
        read += body.data().await.unwrap().unwrap().len();
    }
    body.flow_control().release_capacity(n).unwrap();
}

fn is_stall(message: &str) -> bool {
    message.starts_with("Waiting for Peter S to read: the window is full after ")
}

fn is_resumption(message: &str) -> bool {
    message.starts_with("Peter S is reading again after ") && message.ends_with(" s")
}

#[tokio::test]
async fn a_full_window_is_one_line_when_it_fills_and_one_when_it_moves() {
    let (logs, _guard) = LogCapture::install();
    let server = TestServer::start(fast_config()).await.unwrap();
    let mut body = open_with_small_window(&server).await;

    // The server sends exactly the window, then waits, and says so once.
    logs.wait_for(|m| m == "Waiting for Peter S to read: the window is full after 4096 bytes")
        .await;
    let reads = |logs: &LogCapture| {
        logs.messages()
            .iter()
            .filter(|m| m.starts_with("Read "))
            .count()
    };

    // Reading 1024 bytes moves the stream by that much, then it stalls
    // again: a new pair of lines, not one per chunk.
    read(&mut body, 1024).await;
    logs.wait_for(|m| m.ends_with("the window is full after 5120 bytes"))
        .await;
    let messages = logs.messages();
    assert_eq!(
        messages.iter().filter(|m| is_stall(m)).count(),
        2,
        "{messages:#?}"
    );
    assert_eq!(
        messages.iter().filter(|m| is_resumption(m)).count(),
        1,
        "{messages:#?}"
    );
    // The story runs at most one frame (16 chunks at most) ahead of
    // what the window lets go.
    assert!(reads(&logs) <= 5 + 16 + 1, "{messages:#?}");
    drop(body);
}

#[tokio::test]
async fn the_servers_own_pauses_are_not_stalls() {
    let (logs, _guard) = LogCapture::install();
    let dir = tempfile::tempdir().unwrap();
    let story = dir.write("short.txt", [b'x'; 3000]);
    let config = Config {
        story: Some(story),
        think_time: Duration::from_millis(300),
        chunk_delay: Duration::from_millis(300),
        ..fast_config()
    };
    let server = TestServer::start(config).await.unwrap();
    // tonic's client with its default window, far larger than the story:
    // nothing ever waits on it.
    let mut client = AssistantServiceClient::new(server.channel().await);
    let mut stream = client.tell_story(peter()).await.unwrap().into_inner();
    let mut received = 0;
    while let Ok(Some(message)) = stream.message().await {
        received += message.text_chunk.len();
    }
    assert!(received > 3000);
    let messages = logs.messages();
    assert!(messages.iter().any(|m| m == "[EOF]"), "{messages:#?}");
    assert!(
        !messages.iter().any(|m| is_stall(m) || is_resumption(m)),
        "{messages:#?}"
    );
}
