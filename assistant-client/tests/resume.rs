//! Stories that survive dropped connections: the server is killed
//! mid-stream and started again, and the client's output must still be
//! byte-identical to an uninterrupted run.

use std::time::Duration;

use assistant_client::{Cli, Ending};
use assistant_server::Config;
use assistant_test_support::{
    LogCapture, Tap, TestServer,
    fixtures::{fast_config, whole_story},
};
use tokio::time::timeout;

const PATIENCE: Duration = Duration::from_secs(20);

/// A few milliseconds per chunk: slow enough to kill the server mid-story.
fn config() -> Config {
    Config {
        chunk_delay: Duration::from_millis(3),
        ..fast_config()
    }
}

fn cli(server: &TestServer) -> Cli {
    let url = server.url();
    Cli::try_parse_args([
        "assistant-client",
        "--server",
        url.as_str(),
        "--buffer-size",
        "1024",
        "--step-sec",
        "0",
        "--retry-backoff",
        "0.01",
    ])
    .unwrap()
}

/// Runs the client while the server is killed (every connection closed at
/// once, as a crash would) and restarted after each of `kills_at` bytes of
/// output, and returns what it printed.
async fn tell_through_kills(kills_at: &[usize]) -> (String, Ending, Vec<String>) {
    let (logs, _guard) = LogCapture::install();
    let mut server = TestServer::start(config()).await.unwrap();
    let addr = server.addr;
    let tap = Tap::new();
    let client = tokio::spawn(assistant_client::run(
        cli(&server),
        tap.clone(),
        std::future::pending(),
    ));

    for &at in kills_at {
        timeout(PATIENCE, tap.written(at))
            .await
            .expect("the story gets that far");
        server.kill_connections();
        server.stop().await.unwrap();
        server = TestServer::start_at(addr, config()).await.unwrap();
    }
    let ending = timeout(PATIENCE, client).await.unwrap().unwrap().unwrap();
    (tap.text(), ending, logs.messages())
}

#[tokio::test]
async fn a_story_resumes_after_the_server_is_killed_with_no_byte_lost_or_repeated() {
    let (out, ending, logs) = tell_through_kills(&[30_000]).await;
    assert!(matches!(ending, Ending::CancelledByServer), "{ending:?}");
    assert!(
        out.as_bytes() == whole_story(),
        "the output differs from an uninterrupted run"
    );
    let retries: Vec<&String> = logs
        .iter()
        .filter(|m| m.starts_with("Connection lost"))
        .collect();
    assert!(!retries.is_empty(), "{logs:#?}");
    assert!(
        logs.iter()
            .any(|m| m.starts_with("Received request to resume alice.txt for Peter S from byte ")),
        "{logs:#?}"
    );
}

#[tokio::test]
async fn a_story_survives_several_kills_in_one_call() {
    let (out, ending, logs) = tell_through_kills(&[10_000, 50_000, 90_000, 130_000]).await;
    assert!(matches!(ending, Ending::CancelledByServer), "{ending:?}");
    assert!(
        out.as_bytes() == whole_story(),
        "the output differs from an uninterrupted run"
    );
    let resumed = logs
        .iter()
        .filter(|m| m.starts_with("Received request to resume"))
        .count();
    assert!(resumed >= 4, "{logs:#?}");
}

#[tokio::test]
async fn the_client_gives_up_after_its_retries_with_one_clear_error() {
    let (logs, _guard) = LogCapture::install();
    let config = Config {
        chunk_delay: Duration::from_secs(3600),
        ..fast_config()
    };
    let server = TestServer::start(config).await.unwrap();
    let url = server.url();
    let cli = Cli::try_parse_args([
        "assistant-client",
        "--server",
        &url,
        "--step-sec",
        "0",
        "--retries",
        "2",
        "--retry-backoff",
        "0.01",
    ])
    .unwrap();
    let tap = Tap::new();
    let client = tokio::spawn(assistant_client::run(
        cli,
        tap.clone(),
        std::future::pending(),
    ));
    timeout(PATIENCE, tap.printed("[Alice")).await.unwrap();
    server.kill_connections();
    server.stop().await.unwrap(); // and nothing comes back

    let ending = timeout(PATIENCE, client).await.unwrap().unwrap().unwrap();
    let Ending::Failed(status) = &ending else {
        panic!("expected a failure, got {ending:?}");
    };
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert_eq!(ending.exit_code(), 1);
    let messages = logs.messages();
    assert_eq!(
        messages
            .iter()
            .filter(|m| m.starts_with("Connection lost"))
            .count(),
        2,
        "{messages:#?}"
    );
}
