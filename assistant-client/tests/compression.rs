//! Compression end to end: the client asks for gzip or zstd, the server
//! answers in kind, and the story arrives byte for byte with far fewer
//! bytes on the wire.

use assistant_client::{CallOptions, Ending, StoryRequest, story::Retry};
use assistant_server::test_util::{LogCapture, TestServer, fast_config, whole_story};
use tonic::codec::CompressionEncoding;

/// Tells the whole story with `compression`; returns what was printed and
/// the bytes received on the wire.
async fn tell(compression: Option<CompressionEncoding>) -> (Vec<u8>, u64) {
    let server = TestServer::start(fast_config()).await.unwrap();
    let options = CallOptions {
        compression,
        ..CallOptions::default()
    };
    let channel = assistant_client::connect::connect(&server.url(), &Default::default(), &options)
        .await
        .unwrap();
    let request = StoryRequest {
        user_name: "Peter S".into(),
        institution: "SUSTech".into(),
        story: String::new(),
        buffer_size: 1024,
        step: std::time::Duration::ZERO,
        retry: Retry {
            retries: 0,
            backoff: std::time::Duration::ZERO,
        },
    };
    let mut out = Vec::new();
    let ending = assistant_client::story::tell_story(
        channel,
        &request,
        &options,
        &mut out,
        std::future::pending(),
    )
    .await
    .unwrap();
    assert!(matches!(ending, Ending::CancelledByServer), "{ending:?}");
    (out, options.wire.get())
}

#[tokio::test]
async fn gzip_and_zstd_deliver_the_same_bytes_in_far_fewer_on_the_wire() {
    let text = whole_story().len() as u64;
    let (plain_out, plain_wire) = tell(None).await;
    assert!(plain_out == whole_story());
    assert!(
        plain_wire > text,
        "uncompressed, the wire carries the text and its framing"
    );

    for encoding in [CompressionEncoding::Gzip, CompressionEncoding::Zstd] {
        let (out, wire) = tell(Some(encoding)).await;
        assert!(out == whole_story(), "{encoding:?} changed the story");
        // English text compresses well even in 1 KiB messages.
        assert!(
            wire * 10 < text * 7,
            "{encoding:?}: {wire} wire bytes for {text} of text"
        );
    }
}

#[tokio::test]
async fn the_debug_log_reports_wire_bytes_against_text_bytes() {
    let (logs, _guard) = LogCapture::install_at(tracing::Level::DEBUG);
    let (_, wire) = tell(Some(CompressionEncoding::Gzip)).await;
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
