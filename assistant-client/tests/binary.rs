//! The `assistant-client` binary as a user runs it: on a terminal, the
//! server's text is made harmless; into a file or a pipe, it is written
//! byte for byte.

#![cfg(unix)]

use assistant_server::Config;
use assistant_test_support::{TestServer, WriteFile, fixtures};

/// A story that tries to clear the screen, write the clipboard (OSC 52),
/// make a link (OSC 8), send a DCS string, and use a C1 CSI.
const HOSTILE: &str = "Once\x1b[2J upon\x1b]52;c;ZXZpbA==\x07 a\x1b]8;;http://x\x1b\\time\x1bPq\x1b\\ \u{9b}31mthere\n";

async fn hostile_server() -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        story: Some(dir.write("hostile.txt", HOSTILE)),
        ..fixtures::fast_config()
    };
    (TestServer::start(config).await.unwrap(), dir)
}

fn client_args(server: &TestServer) -> Vec<String> {
    [
        "--server",
        &server.url(),
        "--buffer-size",
        "1024",
        "--step-sec",
        "0",
    ]
    .map(str::to_owned)
    .to_vec()
}

#[tokio::test]
async fn on_a_terminal_control_characters_show_as_escapes() {
    let (server, _dir) = hostile_server().await;
    // `script` runs the client with a pseudo-terminal as its stdout, as a
    // shell in a terminal window would.
    let command = std::iter::once(env!("CARGO_BIN_EXE_assistant-client").to_owned())
        .chain(client_args(&server))
        .map(|arg| format!("'{arg}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let output = tokio::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("RUST_LOG", "off")
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let shown = String::from_utf8(output.stdout).unwrap();
    assert!(
        !shown.contains('\u{1b}') && !shown.contains('\u{9b}') && !shown.contains('\u{7}'),
        "{shown:?}"
    );
    assert!(
        shown.contains(r"Once\u{1b}[2J upon\u{1b}]52;c;ZXZpbA==\u{7} a\u{1b}]8;;http://x\u{1b}\time\u{1b}Pq\u{1b}\ \u{9b}31mthere"),
        "{shown:?}"
    );
}

#[tokio::test]
async fn into_a_pipe_the_bytes_are_exact() {
    let (server, _dir) = hostile_server().await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_assistant-client"))
        .args(client_args(&server))
        .env("RUST_LOG", "off")
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let expected = format!("{}{HOSTILE}{}", fixtures::GREETING, fixtures::ENDING);
    assert_eq!(String::from_utf8(output.stdout).unwrap(), expected);
}

#[tokio::test]
async fn show_flow_on_a_terminal_keeps_a_status_line_and_gives_the_rows_back() {
    let (server, _dir) = hostile_server().await;
    let command = std::iter::once(env!("CARGO_BIN_EXE_assistant-client").to_owned())
        .chain(client_args(&server))
        .chain(["--show-flow".to_owned()])
        .map(|arg| format!("'{arg}'"))
        .collect::<Vec<_>>()
        .join(" ");
    // A terminal of 24 rows: rows 1 to 23 scroll, the status is on row 24.
    let output = tokio::process::Command::new("script")
        .args([
            "-qec",
            &format!("stty rows 24 cols 100; {command}"),
            "/dev/null",
        ])
        .env("RUST_LOG", "off")
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let shown = String::from_utf8(output.stdout).unwrap();
    let reserved = shown
        .find("\x1b7\x1b[1;23r\x1b8")
        .expect("a scrolling region");
    let drawn = shown
        .find("\x1b7\x1b[24;1H\x1b[2Kreceived ")
        .expect("a status line");
    let released = shown
        .rfind("\x1b7\x1b[r\x1b[24;1H\x1b[2K\x1b8")
        .expect("the rows back");
    assert!(reserved < drawn && drawn < released, "{shown:?}");
    // The story is all there, and the last word after it.
    let story_end = shown.find("Hope you like the story~").unwrap();
    assert!(story_end < released, "{shown:?}");
    assert!(shown[released..].contains("Flow: received "), "{shown:?}");
}

#[test]
fn bad_flags_exit_2_with_what_is_wrong() {
    for (args, says) in [
        (
            &["--step-sec", "-1"][..],
            "`-1` must be zero or a positive number of seconds",
        ),
        (&["--server", "http://exa mple:1"], "invalid --server"),
        (&["--timeline", "flow.png"], "must end in .svg"),
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_assistant-client"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
