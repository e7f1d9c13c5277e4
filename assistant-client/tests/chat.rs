//! Bidirectional chat end to end, driven through the client's library: a
//! reply arrives while the client is still sending, and a client that
//! leaves mid-chat is noticed by the server.

use std::time::Duration;

use assistant_client::{Ending, commands::chat};
use assistant_server::Config;
use assistant_test_support::{LogCapture, PATIENCE, Tap, TestServer, fixtures::fast_config};
use tokio::time::timeout;
use tokio_stream::{Stream, StreamExt};

mod common;

const CHAT_TEXTS: [&str; 3] = [
    "Hello grpc!",
    "This is Bidirectional Streaming RPC!",
    "Is it working good?",
];

/// The texts to send, each held back until the reply to the one before
/// has been printed.
fn lockstep(tap: Tap) -> impl Stream<Item = String> + Send + 'static {
    tokio_stream::iter(CHAT_TEXTS.iter().enumerate()).then(move |(i, text)| {
        let tap = tap.clone();
        async move {
            if i > 0 {
                tap.printed(&format!(
                    "Received message: Received: {}\n",
                    CHAT_TEXTS[i - 1]
                ))
                .await;
            }
            text.to_string()
        }
    })
}

#[tokio::test]
async fn chat_is_truly_bidirectional_reply_n_arrives_before_text_n_plus_1_is_sent() {
    let (logs, _guard) = LogCapture::install();
    let server = TestServer::start(fast_config()).await.unwrap();
    let channel = common::connect(&server).await;
    let tap = Tap::new();
    // A client that sent everything before reading would never see a reply
    // here, so `lockstep` would never yield its second text.
    let ending = timeout(
        PATIENCE,
        chat::chat(
            channel,
            lockstep(tap.clone()),
            &Default::default(),
            tap.clone(),
            std::future::pending(),
        ),
    )
    .await
    .expect("a reply arrives while the client is still sending")
    .unwrap();
    assert!(matches!(ending, Ending::Finished), "{ending:?}");
    assert_eq!(
        tap.text(),
        "Client Message: Hello grpc!\n\
         Received message: Received: Hello grpc!\n\
         Client Message: This is Bidirectional Streaming RPC!\n\
         Received message: Received: This is Bidirectional Streaming RPC!\n\
         Client Message: Is it working good?\n\
         Received message: Received: Is it working good?\n"
    );
    let server_lines: Vec<String> = logs
        .messages()
        .into_iter()
        .filter(|m| m.starts_with("Client Message: "))
        .collect();
    assert_eq!(
        server_lines,
        [
            "Client Message: Hello grpc!",
            "Client Message: This is Bidirectional Streaming RPC!",
            "Client Message: Is it working good?",
        ]
    );
}

#[tokio::test]
async fn cancelling_mid_chat_is_noticed_by_the_server_which_stops() {
    let (logs, _guard) = LogCapture::install();
    // The server pauses an hour after each reply: the call can only end
    // early if the server notices the client leave.
    let config = Config {
        chat_reply_delay: Duration::from_secs(3600),
        ..fast_config()
    };
    let server = TestServer::start(config).await.unwrap();
    let channel = common::connect(&server).await;
    let tap = Tap::new();
    let texts = tokio_stream::iter(["one".to_owned()]).chain(tokio_stream::pending());
    let interrupt = {
        let tap = tap.clone();
        async move { tap.printed("Received message: Received: one\n").await }
    };
    let ending = timeout(
        PATIENCE,
        chat::chat(channel, texts, &Default::default(), tap.clone(), interrupt),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(matches!(ending, Ending::CancelledByUser), "{ending:?}");
    assert_eq!(ending.exit_code(), 130);

    timeout(PATIENCE, server.calls.idle())
        .await
        .expect("the server ends the chat when the client leaves");
    let messages = logs.messages();
    assert!(
        messages.iter().any(|m| m == "Call cancelled by user."),
        "{messages:#?}"
    );
    // 13 bytes: the one reply sent, "Received: one".
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("Client went away: 127.0.0.1:")
                && m.ends_with(" after 13 bytes of text were queued for it")),
        "{messages:#?}"
    );
}
