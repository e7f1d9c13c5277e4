//! `--timeline` against a real server: the chart's data says what happened
//! on the wire, and agrees with what the server logged.

use std::time::Duration;

use assistant_client::{Cli, Ending};
use assistant_server::Config;
use assistant_test_support::{
    LogCapture, TestServer, WriteFile,
    fixtures::{GREETING, fast_config},
};
use serde_json::Value;

/// Runs the story with `flags` and `--timeline` to a JSON file, and
/// returns how it ended, what it printed, and the chart's data.
async fn timeline(server: &TestServer, flags: &[&str]) -> (Ending, Vec<u8>, Value) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.json");
    let path = path.to_str().unwrap();
    let url = server.url();
    let argv = ["assistant-client", "--server", &url, "--timeline", path]
        .into_iter()
        .chain(flags.iter().copied());
    let cli = Cli::try_parse_args(argv).unwrap();
    let mut out = Vec::new();
    let ending = assistant_client::run(cli, &mut out, std::future::pending())
        .await
        .unwrap();
    let data = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    (ending, out, data)
}

fn u(value: &Value) -> u64 {
    value.as_u64().unwrap()
}

fn f(value: &Value) -> f64 {
    value.as_f64().unwrap()
}

/// The bands of one kind, as (from, to) seconds.
fn bands(data: &Value, pause: &str) -> Vec<(f64, f64)> {
    data["bands"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|band| band["pause"] == pause)
        .map(|band| (f(&band["from"]), f(&band["to"])))
        .collect()
}

/// Checks what holds of any chart: time and both counts only go up, no
/// byte is typed before it arrives, and at the end every byte received
/// was typed.
fn assert_lines_are_sound(data: &Value) {
    let samples = data["samples"].as_array().unwrap();
    assert!(samples.len() > 10, "{} samples", samples.len());
    for pair in samples.windows(2) {
        let [a, b] = pair else { unreachable!() };
        assert!(f(&a["at"]) <= f(&b["at"]));
        assert!(u(&a["received"]) <= u(&b["received"]), "{a} {b}");
        assert!(u(&a["typed"]) <= u(&b["typed"]), "{a} {b}");
    }
    for sample in samples {
        assert!(u(&sample["typed"]) <= u(&sample["received"]), "{sample}");
    }
    let last = samples.last().unwrap();
    assert_eq!(u(&last["typed"]), u(&last["received"]), "{last}");
}

#[tokio::test]
async fn the_servers_pauses_are_marked_where_the_client_waited() {
    let dir = tempfile::tempdir().unwrap();
    let text = vec![b'x'; 3 * 1024];
    let config = Config {
        story: Some(dir.write("three.txt", &text)),
        think_time: Duration::from_millis(400),
        chunk_delay: Duration::from_millis(300),
        ..fast_config()
    };
    let server = TestServer::start(config).await.unwrap();
    let (ending, out, data) = timeline(&server, &["--step-sec", "0"]).await;
    assert!(matches!(ending, Ending::CancelledByServer), "{ending:?}");
    assert_lines_are_sound(&data);

    // Every byte of text arrived, in 1 + 3 + 1 messages of 5 bytes of
    // framing and a few of fields each.
    let samples = data["samples"].as_array().unwrap();
    let received = u(&samples.last().unwrap()["received"]);
    let text = out.len() as u64;
    assert!(text > 3 * 1024);
    assert!(
        (text + 5 * 5..text + 5 * 30).contains(&received),
        "{received}"
    );

    // The think-time, after the greeting: the client waited with only the
    // greeting's bytes, and nothing came.
    let think = bands(&data, "think_time");
    assert_eq!(think.len(), 1, "{think:?}");
    let (from, to) = think[0];
    assert!(to - from >= 0.3, "{think:?}");
    let during: Vec<u64> = samples
        .iter()
        .filter(|s| (from..to).contains(&f(&s["at"])))
        .map(|s| u(&s["received"]))
        .collect();
    assert!(during.iter().all(|&r| r == during[0]), "{during:?}");
    assert!(
        during[0] > GREETING.len() as u64 && during[0] < 200,
        "{during:?}"
    );

    // One chunk delay after each of the three chunks.
    let delays = bands(&data, "chunk_delay");
    assert_eq!(delays.len(), 3, "{delays:?}");
    assert!(
        delays.iter().all(|(from, to)| to - from >= 0.2),
        "{delays:?}"
    );
    assert!(bands(&data, "stall").is_empty());
}

#[tokio::test]
async fn the_stalls_are_where_the_server_said_it_waited_for_the_window() {
    let (logs, _guard) = LogCapture::install();
    // 80 KiB in 8 KiB messages: more than the client's 64 KiB window.
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        story: Some(dir.write("long.txt", vec![b'y'; 80 * 1024])),
        chunk_size: 8 * 1024,
        ..fast_config()
    };
    let server = TestServer::start(config).await.unwrap();
    // A message typed in about 0.3 s: the server waits for each.
    let flags = ["--buffer-size", "1024", "--step-sec", "0.04"];
    let (_, _, data) = timeline(&server, &flags).await;
    assert_lines_are_sound(&data);
    assert!(
        logs.contents().contains("Timeline written to ") && logs.contents().contains("flow.json"),
        "the client says where the chart went"
    );

    // The server's word for each stall it noticed: the bytes it had sent.
    let stalled_at: Vec<u64> = logs
        .messages()
        .iter()
        .filter_map(|m| m.strip_prefix("Waiting for Peter S to read: the window is full after "))
        .map(|rest| rest.trim_end_matches(" bytes").parse().unwrap())
        .collect();
    assert!(!stalled_at.is_empty(), "{:#?}", logs.messages());

    // The chart marks a stall at each, with the received line flat there.
    let samples = data["samples"].as_array().unwrap();
    let stalls = bands(&data, "stall");
    for bytes in stalled_at {
        let marked = stalls.iter().any(|&(from, to)| {
            samples
                .iter()
                .filter(|s| (from..to).contains(&f(&s["at"])))
                .all(|s| u(&s["received"]) == bytes && s["waiting"] == "for_client")
        });
        assert!(marked, "no stall at {bytes} bytes: {stalls:?}");
    }
}
