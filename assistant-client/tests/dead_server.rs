//! A dead server is noticed: one whose packets stop with nothing closed, a
//! TCP server that never speaks, an HTTP/2 server that stops answering.
//! Short intervals here; the defaults (10 s, 10 s, 5 s) are the same code.

use std::time::{Duration, Instant};

use assistant_client::{Cli, ClientError, Ending};
use assistant_server::Config;
use assistant_test_support::{LogCapture, PATIENCE, Proxy, Tap, TestServer, fixtures};
use tokio::time::timeout;

/// Pings after 0.3 s of silence, and gives each 2 s to be answered: long
/// enough that a loaded machine still answers a live one.
const KEEPALIVE: [&str; 4] = ["--keepalive-interval", "0.3", "--keepalive-timeout", "2"];

fn cli(server: &str, extra: &[&str]) -> Cli {
    let argv = [
        "assistant-client",
        "--server",
        server,
        "--buffer-size",
        "1024",
        "--step-sec",
        "0",
        "--retry-backoff",
        "0.01",
    ]
    .into_iter()
    .chain(KEEPALIVE)
    .chain(extra.iter().copied());
    Cli::try_parse_args(argv).unwrap()
}

#[tokio::test]
async fn a_server_whose_packets_stop_is_noticed_and_the_story_resumes_whole() {
    let (logs, _guard) = LogCapture::install();
    let config = Config {
        chunk_delay: Duration::from_millis(2),
        ..fixtures::fast_config()
    };
    let server = TestServer::start(config).await.unwrap();
    let proxy = Proxy::start(server.addr).await;
    let tap = Tap::new();
    let client = tokio::spawn(assistant_client::run(
        cli(&proxy.url(), &[]),
        tap.clone(),
        std::future::pending(),
    ));
    timeout(PATIENCE, tap.written(20_000)).await.unwrap();
    // Nothing closes: the client's only way to know is to ask.
    proxy.freeze().await;

    let ending = timeout(PATIENCE, client).await.unwrap().unwrap().unwrap();
    assert!(matches!(ending, Ending::CancelledByServer), "{ending:?}");
    assert!(
        tap.bytes() == fixtures::whole_story(),
        "no byte lost or repeated"
    );
    let messages = logs.messages();
    let lost = messages
        .iter()
        .find(|m| m.starts_with("Connection lost"))
        .unwrap_or_else(|| panic!("the client noticed: {messages:#?}"));
    assert!(lost.contains("the server stopped answering"), "{lost}");
}

#[tokio::test]
async fn a_tcp_server_that_never_speaks_is_one_clear_error_within_the_connect_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket); // accepted, never read, never written
        }
    });
    let started = Instant::now();
    let err = timeout(
        PATIENCE,
        assistant_client::run(
            cli(&addr.to_string(), &["--connect-timeout", "0.5"]),
            Vec::new(),
            std::future::pending(),
        ),
    )
    .await
    .expect("the client gives up by itself")
    .unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert!(matches!(err, ClientError::NotHttp2 { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("no HTTP/2 answer within 0.5 s"),
        "{message}"
    );
    assert!(!message.contains('\n'), "{message}");
}

/// An HTTP/2 server that answers the handshake, takes each call, and then
/// stops: no response, no ping answered, nothing closed.
async fn a_server_that_stops_answering() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut connection = h2::server::handshake(socket).await.unwrap();
                // Served (pings answered) until the first call arrives...
                let call = connection.accept().await;
                // ...then never polled again, with everything held open.
                std::future::pending::<()>().await;
                drop((connection, call));
            });
        }
    });
    addr
}

#[tokio::test]
async fn an_http2_server_that_stops_answering_is_noticed_and_reported() {
    let (logs, _guard) = LogCapture::install();
    let addr = a_server_that_stops_answering().await;
    let ending = timeout(
        PATIENCE,
        assistant_client::run(
            cli(&addr.to_string(), &["--retries", "1"]),
            Vec::new(),
            std::future::pending(),
        ),
    )
    .await
    .expect("the client gives up by itself")
    .unwrap();
    let Ending::Failed(status) = &ending else {
        panic!("expected a failure, got {ending:?}");
    };
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("the server stopped answering"),
        "{}",
        status.message()
    );
    assert_eq!(ending.exit_code(), 1);
    let retries = logs
        .messages()
        .iter()
        .filter(|m| m.starts_with("Connection lost"))
        .count();
    assert_eq!(retries, 1, "it tried again once, as --retries 1 says");
}

#[tokio::test]
async fn a_slow_reader_never_pings_a_server_that_waits_on_it() {
    // The client types slowly, so the server soon waits on its window and
    // sends nothing for long stretches. The client is not waiting on the
    // server then, so it must not ping: grpcio and grpc-go close
    // connections that ping too often without data.
    let (logs, _guard) = LogCapture::install_at(tracing::Level::DEBUG);
    let server = TestServer::start(fixtures::fast_config()).await.unwrap();
    let tap = Tap::new();
    let client = tokio::spawn(assistant_client::run(
        Cli::try_parse_args([
            "assistant-client",
            "--server",
            &server.url(),
            "--buffer-size",
            "100",
            "--step-sec",
            "0.01",
            "--keepalive-interval",
            "0.05",
        ])
        .unwrap(),
        tap.clone(),
        std::future::pending(),
    ));
    // About 1.5 s of typing, with the window full all along.
    timeout(PATIENCE, tap.written(15_000)).await.unwrap();
    client.abort();
    let pings = logs
        .messages()
        .iter()
        .filter(|m| m.contains("pinging it"))
        .count();
    assert_eq!(
        pings, 0,
        "the server was never the one keeping the client waiting"
    );
}
