//! How a story cut short ends: what the client says, what the server logs,
//! and where the terminal's cursor is left.

use std::time::Duration;

use assistant_client::{Cli, Ending, terminal::TerminalSafe};
use assistant_server::Config;
use assistant_test_support::{
    LogCapture, PATIENCE, Tap, TestServer,
    fixtures::{GREETING, fast_config},
};
use tokio::time::timeout;
use tonic::Code;

fn cli(server: &TestServer, extra: &[&str]) -> Cli {
    let url = server.url();
    let argv = ["assistant-client", "--server", &url]
        .into_iter()
        .chain(extra.iter().copied());
    Cli::try_parse_args(argv).unwrap()
}

/// An hour between chunks: the story stops after its first.
fn stuck_after_one_chunk() -> Config {
    Config {
        chunk_delay: Duration::from_secs(3600),
        ..fast_config()
    }
}

#[tokio::test]
async fn a_timeout_mid_story_is_the_servers_deadline_and_says_how_far_it_got() {
    let (logs, _guard) = LogCapture::install();
    let server = TestServer::start(stuck_after_one_chunk()).await.unwrap();
    let mut out = Vec::new();
    let cli = cli(&server, &["--step-sec", "0", "--timeout", "0.5"]);
    let ending = timeout(
        PATIENCE,
        assistant_client::run(cli, &mut out, std::future::pending()),
    )
    .await
    .unwrap()
    .unwrap();

    let Ending::Failed(status) = &ending else {
        panic!("expected a deadline error, got {ending:?}");
    };
    assert_eq!(status.code(), Code::DeadlineExceeded);
    assert_eq!(out.len(), GREETING.len() + 1024);
    assert_eq!(
        status.message(),
        format!(
            "--timeout 0.5s ran out after {} bytes of the story were typed",
            out.len()
        )
    );
    assert_eq!(ending.exit_code(), 1);

    // The server ended the call at the deadline, before the client gave up.
    timeout(PATIENCE, server.calls.idle()).await.unwrap();
    let messages = logs.messages();
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("Call ended code=DEADLINE_EXCEEDED")),
        "{messages:#?}"
    );
    assert!(
        !messages.iter().any(|m| m.starts_with("Client went away")),
        "{messages:#?}"
    );
}

#[tokio::test]
async fn a_timeout_during_the_think_time_counts_the_greeting_typed() {
    let config = Config {
        think_time: Duration::from_secs(3600),
        ..fast_config()
    };
    let server = TestServer::start(config).await.unwrap();
    let cli = cli(&server, &["--step-sec", "0", "--timeout", "0.3"]);
    // The greeting is typed: only a story that never came is "none".
    let ending = timeout(
        PATIENCE,
        assistant_client::run(cli, Vec::new(), std::future::pending()),
    )
    .await
    .unwrap()
    .unwrap();
    let Ending::Failed(status) = &ending else {
        panic!("expected a deadline error, got {ending:?}");
    };
    assert_eq!(
        status.message(),
        format!(
            "--timeout 0.3s ran out after {} bytes of the story were typed",
            GREETING.len()
        )
    );
}

#[tokio::test]
async fn ctrl_c_mid_line_on_a_terminal_leaves_the_cursor_on_a_new_line() {
    let server = TestServer::start(stuck_after_one_chunk()).await.unwrap();
    let terminal = Tap::new();
    let typed = GREETING.len() + 1024;
    let cli = cli(&server, &["--step-sec", "0"]);
    // Ctrl-C once the first chunk is typed.
    let interrupt = terminal.written(typed);
    let ending = timeout(
        PATIENCE,
        assistant_client::run(cli, TerminalSafe::new(terminal.clone()), interrupt),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(matches!(ending, Ending::CancelledByUser), "{ending:?}");

    // The first chunk ends mid-line; the terminal got a newline after it.
    let shown = terminal.bytes();
    assert_eq!(shown.len(), typed + 1);
    assert_eq!(shown.last(), Some(&b'\n'));
    assert_ne!(shown[typed - 1], b'\n');
}
