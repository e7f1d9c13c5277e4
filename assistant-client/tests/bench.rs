//! `assistant-client bench` end to end: it completes the calls it was asked
//! for, checks every byte, counts failures by status code, and writes JSON.

use std::time::Duration;

use assistant_client::{Cli, Ending};
use assistant_server::Config;
use assistant_test_support::{TestServer, fixtures::fast_config};

async fn bench(server: &TestServer, args: &[&str]) -> (String, Ending, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("results.json");
    let url = server.url();
    let argv = [
        "assistant-client",
        "--server",
        url.as_str(),
        "bench",
        "--json",
        json.to_str().unwrap(),
    ]
    .into_iter()
    .chain(args.iter().copied());
    let mut out = Vec::new();
    let ending = assistant_client::run(
        Cli::try_parse_args(argv).unwrap(),
        &mut out,
        std::future::pending(),
    )
    .await
    .unwrap();
    let results = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    (String::from_utf8(out).unwrap(), ending, results)
}

#[tokio::test]
async fn a_run_completes_its_calls_and_checks_every_byte() {
    let server = TestServer::start(fast_config()).await.unwrap();
    let (report, ending, results) = bench(
        &server,
        &["--calls", "40", "--concurrency", "4", "--connections", "2"],
    )
    .await;
    assert!(matches!(ending, Ending::Finished), "{ending:?}\n{report}");
    assert_eq!(results["calls_ok"], 40);
    assert_eq!(results["calls_failed"], 0);
    // The bench asks as "bench" from "bench": a 41-byte greeting.
    let greeting = "Hi bench from bench! Here's your story:\n\n".len();
    assert_eq!(results["expected_bytes_per_call"], greeting + 144_396 + 37);
    assert!(results["calls_per_second"].as_f64().unwrap() > 0.0);
    assert!(
        results["whole_call_ms"]["p99"].as_f64().unwrap()
            >= results["whole_call_ms"]["p50"].as_f64().unwrap()
    );
    assert!(report.contains("40 ok, 0 failed"), "{report}");
    assert!(
        report.contains("every call delivered 144474 bytes of text"),
        "{report}"
    );
}

#[tokio::test]
async fn failures_are_counted_by_status_code_and_fail_the_run() {
    // One call at a time, each taking over a second: the other callers are
    // refused with RESOURCE_EXHAUSTED while one is in flight.
    let config = Config {
        max_calls: 1,
        chunk_delay: Duration::from_millis(10),
        ..fast_config()
    };
    let server = TestServer::start(config).await.unwrap();
    let (report, ending, results) = bench(
        &server,
        &["--calls", "8", "--concurrency", "4", "--connections", "1"],
    )
    .await;
    assert_eq!(ending.exit_code(), 1, "{report}");
    assert!(
        results["errors"]["RESOURCE_EXHAUSTED"].as_u64().unwrap() >= 1,
        "{results}"
    );
    assert!(
        report.contains("error          RESOURCE_EXHAUSTED: "),
        "{report}"
    );
}
