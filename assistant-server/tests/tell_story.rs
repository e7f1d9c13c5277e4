//! `TellStory` against a real server on a loopback port, driven by the
//! generated client: the messages, the log lines, and what happens when a
//! client goes away.

use std::time::Duration;

use assistant_proto::{
    assistant::{
        TellStoryRequest, TellStoryResponse, assistant_service_client::AssistantServiceClient,
    },
    sequence,
};
use assistant_server::{Config, Finish};
use assistant_test_support::{
    LogCapture, PATIENCE, TestServer, WriteFile,
    fixtures::{ALICE, ENDING, GREETING, fast_config, peter},
};
use tokio::time::timeout;
use tonic::{Code, Streaming, transport::Channel};

async fn client(server: &TestServer) -> AssistantServiceClient<Channel> {
    let channel = Channel::from_shared(server.url())
        .unwrap()
        // HTTP/2's default window, so the server cannot run far ahead.
        .initial_stream_window_size(65_535)
        .connect()
        .await
        .unwrap();
    AssistantServiceClient::new(channel)
}

async fn open(server: &TestServer) -> Streaming<TellStoryResponse> {
    client(server)
        .await
        .tell_story(peter())
        .await
        .unwrap()
        .into_inner()
}

/// Reads every message, and the status that ended the stream.
async fn read_all(
    stream: &mut Streaming<TellStoryResponse>,
) -> (Vec<Vec<u8>>, Option<tonic::Status>) {
    let mut messages = Vec::new();
    loop {
        match stream.message().await {
            Ok(Some(message)) => messages.push(message.text_chunk.to_vec()),
            Ok(None) => return (messages, None),
            Err(status) => return (messages, Some(status)),
        }
    }
}

#[tokio::test]
async fn streams_greeting_then_142_chunks_then_ending_then_cancelled() {
    let server = TestServer::start(fast_config()).await.unwrap();
    let (messages, status) = read_all(&mut open(&server).await).await;

    assert_eq!(messages.first().unwrap(), GREETING.as_bytes());
    assert_eq!(messages.last().unwrap(), ENDING.as_bytes());
    let story = &messages[1..messages.len() - 1];
    assert_eq!(story.len(), 142);
    assert!(story[..141].iter().all(|chunk| chunk.len() == 1024));
    assert_eq!(story[141].len(), 12);
    assert_eq!(story.concat(), ALICE);

    let status = status.expect("the tutorial's server ends with a status");
    assert_eq!(status.code(), Code::Cancelled);
    assert_eq!(status.message(), "story finished");
}

#[tokio::test]
async fn a_request_larger_than_the_decoders_first_buffer_is_read_whole() {
    // The longest names there may be, in four-byte characters: a request
    // of about 1 KiB, four times what the decoder first makes room for. So
    // the decoder's buffer must grow (tonic's own 8 KiB would not need to).
    let name = "\u{1d504}".repeat(128);
    let server = TestServer::start(fast_config()).await.unwrap();
    let request = TellStoryRequest {
        user_name: name.clone(),
        institution: name.clone(),
        ..Default::default()
    };
    assert!(prost::Message::encoded_len(&request) > 1000);
    let mut stream = client(&server)
        .await
        .tell_story(request)
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(
        first.text_chunk,
        sequence::greeting(&name, &name).as_bytes()
    );
}

#[tokio::test]
async fn finish_ok_ends_with_status_ok_after_every_byte() {
    let config = Config {
        finish: Finish::Ok,
        ..fast_config()
    };
    let server = TestServer::start(config).await.unwrap();
    let (messages, status) = read_all(&mut open(&server).await).await;
    assert!(status.is_none(), "{status:?}");
    let expected = [GREETING.as_bytes(), ALICE, ENDING.as_bytes()].concat();
    assert_eq!(messages.concat(), expected);
}

#[tokio::test]
async fn logs_the_tutorials_lines_in_order() {
    let (logs, _guard) = LogCapture::install();
    let server = TestServer::start(fast_config()).await.unwrap();
    let port = server.addr.port();
    read_all(&mut open(&server).await).await;
    timeout(PATIENCE, server.calls.idle()).await.unwrap();

    let messages = logs.messages();
    let story_lines: Vec<&str> = messages
        .iter()
        .map(String::as_str)
        // The tutorial's lines: not the chunks, the call's record, or the
        // limits the server runs with.
        .filter(|line| {
            !line.starts_with("Read ")
                && !line.starts_with("Call ended")
                && !line.starts_with("Limits: ")
        })
        .collect();
    assert_eq!(
        story_lines,
        [
            format!("Server started on port {port}").as_str(),
            "Received story-telling request from Peter S, SUSTech.",
            "Start streaming alice.txt",
            "[EOF]",
            "Finishes streaming alice.txt for Peter S from SUSTech.",
        ]
    );
    let reads: Vec<&str> = messages
        .iter()
        .map(String::as_str)
        .filter(|line| line.starts_with("Read "))
        .collect();
    assert_eq!(reads.len(), 142);
    assert_eq!(reads[0], "Read 1024 bytes: [Alice's A ...");
    assert_eq!(reads[1], "Read 1024 bytes: y TOOK A W ...");
    assert_eq!(reads[2], "Read 1024 bytes: of the wel ...");
    assert_eq!(reads[141], "Read 12 bytes: mmer days. ...");
}

#[tokio::test]
async fn a_client_that_goes_away_is_noticed_at_once_and_the_call_stops() {
    let (logs, _guard) = LogCapture::install();
    // An hour between chunks: the server can only end this call early by
    // noticing the client left.
    let config = Config {
        chunk_delay: Duration::from_secs(3600),
        ..fast_config()
    };
    let server = TestServer::start(config).await.unwrap();
    let mut stream = open(&server).await;
    stream.message().await.unwrap().unwrap(); // the greeting
    stream.message().await.unwrap().unwrap(); // the first chunk
    assert_eq!(server.calls.active(), 1);

    drop(stream);
    timeout(PATIENCE, server.calls.idle())
        .await
        .expect("the server should end the call as soon as the client leaves");

    let sent = GREETING.len() + 1024;
    let messages = logs.messages();
    assert!(
        messages.contains(&format!(
            "Client went away: Peter S after {sent} bytes of text were queued for it"
        )),
        "{messages:#?}"
    );
    assert_eq!(
        messages.iter().filter(|m| m.starts_with("Read ")).count(),
        1
    );
    assert!(!messages.iter().any(|m| m == "[EOF]"));
}

#[tokio::test]
async fn a_client_that_goes_away_without_pauses_stops_production_early() {
    let (logs, _guard) = LogCapture::install();
    let server = TestServer::start(fast_config()).await.unwrap();
    let mut stream = open(&server).await;
    for _ in 0..3 {
        stream.message().await.unwrap().unwrap();
    }
    drop(stream);
    timeout(PATIENCE, server.calls.idle()).await.unwrap();

    // Flow control (a 64 KiB window) keeps the server from producing the
    // whole story for a client that stopped after three messages.
    let messages = logs.messages();
    let reads = messages.iter().filter(|m| m.starts_with("Read ")).count();
    assert!(reads < 142, "the server read {reads} chunks");
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("Client went away: Peter S after ")),
        "{messages:#?}"
    );
}

#[tokio::test]
async fn many_calls_run_side_by_side() {
    // Each call waits 30 s after each chunk. Were calls served one after
    // another, or by a small fixed pool, the later calls' first chunks
    // would wait for whole stories; concurrently they arrive at once.
    let config = Config {
        chunk_delay: Duration::from_secs(30),
        ..fast_config()
    };
    let server = TestServer::start(config).await.unwrap();
    let client = client(&server).await;
    let mut streams = Vec::new();
    for _ in 0..200 {
        let mut stream = client
            .clone()
            .tell_story(peter())
            .await
            .unwrap()
            .into_inner();
        stream.message().await.unwrap().unwrap(); // greeting
        streams.push(stream);
    }
    let first_chunks = async {
        for stream in &mut streams {
            let chunk = stream.message().await.unwrap().unwrap();
            assert_eq!(chunk.text_chunk.len(), 1024);
        }
    };
    timeout(Duration::from_secs(20), first_chunks)
        .await
        .expect("every call's first chunk arrives before any call's second");
    assert_eq!(server.calls.active(), 200);
    drop(streams);
    timeout(PATIENCE, server.calls.idle()).await.unwrap();
}

#[tokio::test]
async fn a_story_file_is_served_under_its_own_name() {
    let (logs, _guard) = LogCapture::install();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.write("short.txt", "Once upon a time.\n");

    let config = Config {
        story: Some(path.clone()),
        chunk_size: 5,
        ..fast_config()
    };
    let server = TestServer::start(config).await.unwrap();
    let (messages, _) = read_all(&mut open(&server).await).await;

    assert_eq!(
        messages[1..messages.len() - 1].concat(),
        b"Once upon a time.\n"
    );
    assert_eq!(messages.len(), 2 + 4);
    let messages = logs.messages();
    assert!(messages.iter().any(|m| m == "Start streaming short.txt"));
    assert!(
        messages.iter().any(|m| m == "Read 3 bytes: e.\\n ..."),
        "{messages:#?}"
    );
}

#[tokio::test]
async fn a_missing_story_file_stops_the_server_with_its_path() {
    let config = Config {
        story: Some("no/such/dir/story.txt".into()),
        ..fast_config()
    };
    let err = TestServer::start(config).await.unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains("no/such/dir/story.txt"), "{message}");
}

#[tokio::test]
async fn shutdown_ends_calls_in_flight_with_unavailable_after_their_bytes() {
    let config = Config {
        chunk_delay: Duration::from_secs(3600),
        shutdown_grace: Duration::from_millis(100),
        ..fast_config()
    };
    let server = TestServer::start(config).await.unwrap();
    let calls = server.calls.clone();
    let mut stream = open(&server).await;
    stream.message().await.unwrap().unwrap();
    stream.message().await.unwrap().unwrap();

    timeout(PATIENCE, server.stop())
        .await
        .expect("shutdown waits out the grace period, not the hour-long pause")
        .unwrap();
    let status = stream.message().await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(status.message(), "server shutting down");
    assert_eq!(calls.active(), 0);
}

#[tokio::test]
async fn the_direct_story_path_sends_the_bytes_tonic_would() {
    // With --compress-responses, stories go through tonic's encoder (to a
    // client that accepts no compression, uncompressed); without it,
    // through the server's own framing, shared by calls whose greetings
    // are as long. On the wire, the same bytes: for greetings of two
    // lengths, each asked for twice, so that the second call of each takes
    // its chunks' framing from the first.
    fn request(user_name: &str, institution: &str) -> Vec<u8> {
        let mut message = vec![0x0a, user_name.len() as u8];
        message.extend_from_slice(user_name.as_bytes());
        message.extend_from_slice(&[0x12, institution.len() as u8]);
        message.extend_from_slice(institution.as_bytes());
        grpc_framed(&message)
    }
    let requests = [request("Peter S", "SUSTech"), request("Zoë", "U")];
    let mut answers = vec![Vec::new(); requests.len()];
    for compress_responses in [false, true] {
        let config = Config {
            compress_responses,
            ..fast_config()
        };
        let server = TestServer::start(config).await.unwrap();
        for _ in 0..2 {
            for (request, answers) in requests.iter().zip(&mut answers) {
                let (status, headers, body) = assistant_test_support::raw::h2_call_with(
                    &server,
                    "/assistant.AssistantService/TellStory",
                    &[],
                    request.clone(),
                    true,
                )
                .await;
                assert_eq!(status, Code::Cancelled as i32);
                assert_eq!(headers["content-type"], "application/grpc");
                answers.push(body);
            }
        }
    }
    for answers in &answers {
        assert!(answers[0].len() > ALICE.len());
        assert!(
            answers.iter().all(|answer| *answer == answers[0]),
            "the two paths' bytes differ"
        );
    }
    assert_ne!(answers[0][0], answers[1][0], "the greetings differ");
}

#[tokio::test]
async fn an_unpaced_story_leaves_in_whole_frames_none_split_for_size() {
    // With windows too large to split anything, every DATA frame is one
    // the server chose, at most 16 KiB (h2 cuts anything longer at this
    // client's largest frame): few of them, not each run followed by the
    // sliver h2 would cut off a run that overshot 16 KiB.
    let server = TestServer::start(fast_config()).await.unwrap();
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (client, connection) = h2::client::Builder::new()
        .initial_window_size(1 << 30)
        .initial_connection_window_size(1 << 30)
        .handshake::<_, bytes::Bytes>(tcp)
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request =
        assistant_test_support::raw::grpc_post(&server, "/assistant.AssistantService/TellStory");
    let (response, mut send) = client
        .send_request(request.body(()).unwrap(), false)
        .unwrap();
    let body = grpc_framed(&prost::Message::encode_to_vec(&peter()));
    send.send_data(body.into(), true).unwrap();
    let mut response = timeout(PATIENCE, response)
        .await
        .unwrap()
        .unwrap()
        .into_body();
    let mut frames = Vec::new();
    while let Some(data) = timeout(PATIENCE, response.data()).await.unwrap() {
        frames.push(data.unwrap().len());
    }
    let bytes: usize = frames.iter().sum();
    assert!(bytes > ALICE.len(), "{bytes} bytes");
    // The first message on its own, then runs of 15 of the others.
    assert!(
        frames.len() <= 2 + bytes / (15 * 1024),
        "{} frames: {frames:?}",
        frames.len()
    );
}

/// `message` as one uncompressed gRPC message: a zero flag, its length in
/// four bytes, then the message.
fn grpc_framed(message: &[u8]) -> Vec<u8> {
    let mut framed = vec![0];
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(message);
    framed
}
