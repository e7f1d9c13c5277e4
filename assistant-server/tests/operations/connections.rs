//! The cap on connections: a good client gets in while the cap is full of
//! connections that never finished their handshake, and is refused with a
//! reason when every connection is established.

use std::io::{Read, Write};

use super::*;

/// A connection that sends one byte and nothing more.
fn one_byte(server: &TestServer) -> std::net::TcpStream {
    let mut socket = std::net::TcpStream::connect(server.addr).unwrap();
    socket.write_all(b"P").unwrap();
    socket
}

#[tokio::test]
async fn at_the_cap_a_good_client_takes_the_place_of_a_silent_connection() {
    let config = Config {
        max_connections: Some(2),
        ..fast_config()
    };
    let server = TestServer::start(config).await.unwrap();
    let silent = [one_byte(&server), one_byte(&server)];
    still_serves(&server.channel().await).await;

    // The oldest silent connection made room: it is closed.
    let addr = server.addr;
    let closed = tokio::task::spawn_blocking(move || {
        let [mut oldest, _newer] = silent;
        oldest.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut sink = Vec::new();
        // Closed with its byte unread by the server, as it may be when the
        // connection is evicted before its task first runs, it is reset.
        match oldest.read_to_end(&mut sink) {
            Ok(_) => true,
            Err(err) => err.kind() == std::io::ErrorKind::ConnectionReset || addr.port() == 0,
        }
    });
    assert!(
        closed.await.unwrap(),
        "the oldest silent connection was closed"
    );
}

#[tokio::test]
async fn when_every_connection_is_established_a_new_one_is_refused_with_a_reason() {
    let config = Config {
        max_connections: Some(1),
        ..fast_config()
    };
    let server = TestServer::start(config).await.unwrap();
    let established = server.channel().await;
    still_serves(&established).await;

    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (_client, connection) = h2::client::handshake(tcp).await.unwrap();
    let err = timeout(PATIENCE, connection)
        .await
        .expect("the server closes the connection")
        .expect_err("with an error");
    assert!(err.is_go_away(), "{err:?}");
    assert_eq!(err.reason(), Some(h2::Reason::ENHANCE_YOUR_CALM));
    assert!(err.to_string().contains("limit of 1 connections"), "{err}");
    // The established client is served as before.
    still_serves(&established).await;
}
