//! Compression end to end: the client asks for gzip or zstd, a server run
//! with `--compress-responses` answers in kind, and the story arrives byte
//! for byte with far fewer bytes on the wire. Without the flag the server
//! answers uncompressed, whatever the client accepts.

use assistant_client::{
    Cli, Ending,
    commands::story,
    connect::{self, ConnectArgs},
};
use assistant_test_support::{
    LogCapture, TestServer,
    fixtures::{fast_config, whole_story},
};

/// Tells the whole story with `--compression compression`, from a server
/// that compresses its responses if `compress_responses`; returns what was
/// printed and the bytes received on the wire.
async fn tell(compression: &str, compress_responses: bool) -> (Vec<u8>, u64) {
    let config = assistant_server::Config {
        compress_responses,
        ..fast_config()
    };
    let server = TestServer::start(config).await.unwrap();
    let cli = Cli::try_parse_args([
        "assistant-client",
        "--compression",
        compression,
        "--buffer-size",
        "1024",
        "--step-sec",
        "0",
        "--retries",
        "0",
    ])
    .unwrap();
    let connection = connect::connect(&ConnectArgs::to(server.url()), None)
        .await
        .unwrap();
    let wire = connection.wire.clone();
    let mut out = Vec::new();
    let ending = story::tell_story(
        connection,
        &cli.story,
        &cli.options,
        &mut out,
        std::future::pending(),
    )
    .await
    .unwrap();
    assert!(matches!(ending, Ending::CancelledByServer), "{ending:?}");
    (out, wire.get())
}

#[tokio::test]
async fn gzip_and_zstd_deliver_the_same_bytes_in_far_fewer_on_the_wire() {
    let text = whole_story().len() as u64;
    let (plain_out, plain_wire) = tell("none", true).await;
    assert!(plain_out == whole_story());
    assert!(
        plain_wire > text,
        "uncompressed, the wire carries the text and its framing"
    );

    for encoding in ["gzip", "zstd"] {
        let (out, wire) = tell(encoding, true).await;
        assert!(out == whole_story(), "{encoding:?} changed the story");
        // English text compresses well even in 1 KiB messages.
        assert!(
            wire * 10 < text * 7,
            "{encoding:?}: {wire} wire bytes for {text} of text"
        );
    }
}

#[tokio::test]
async fn the_server_compresses_nothing_unless_told_to_even_when_asked() {
    let text = whole_story().len() as u64;
    for encoding in ["gzip", "zstd"] {
        let (out, wire) = tell(encoding, false).await;
        assert!(out == whole_story());
        assert!(
            wire > text,
            "{encoding:?}: {wire} wire bytes for {text} of text"
        );
    }
}

#[tokio::test]
async fn the_debug_log_reports_wire_bytes_against_text_bytes() {
    let (logs, _guard) = LogCapture::install_at(tracing::Level::DEBUG);
    let (_, wire) = tell("gzip", true).await;
    let text = whole_story().len() as u64;
    let messages = logs.messages();
    let line = messages
        .iter()
        .find_map(|m| m.strip_prefix(&format!("Received {text} bytes of text in ")))
        .unwrap_or_else(|| panic!("no wire report in {messages:#?}"));
    let logged: u64 = line.split(' ').next().unwrap().parse().unwrap();
    // Counted when the story ended; a late control frame may add a few.
    assert!(logged > 0 && logged <= wire && logged < text, "{line}");
}
