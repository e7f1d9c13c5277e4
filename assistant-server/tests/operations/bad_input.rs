//! Bad input gets a clear status, and the server keeps serving.

use super::*;
use std::io::{Read, Write};

use assistant_proto::assistant::TellStoryRequest;
use bytes::Bytes;

#[tokio::test]
async fn bad_names_are_invalid_arguments_naming_the_field() {
    let server = TestServer::start(fast_config()).await.unwrap();
    let channel = server.channel().await;
    let long = "x".repeat(129);
    for bad in [
        "",
        "   ",
        long.as_str(),
        "a\nINFO forged line",
        "\u{1b}[2J",
        "nul\0",
    ] {
        for (field, request) in [
            (
                "user_name",
                TellStoryRequest {
                    user_name: bad.into(),
                    institution: "SUSTech".into(),
                    ..Default::default()
                },
            ),
            (
                "institution",
                TellStoryRequest {
                    user_name: "Peter S".into(),
                    institution: bad.into(),
                    ..Default::default()
                },
            ),
        ] {
            let status = AssistantServiceClient::new(channel.clone())
                .tell_story(request)
                .await
                .unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{field} = {bad:?}");
            assert!(status.message().starts_with(field), "{}", status.message());
        }
        let status = GreeterClient::new(channel.clone())
            .say_hello(HelloRequest { name: bad.into() })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "name = {bad:?}");
        assert!(status.message().starts_with("name"), "{}", status.message());
    }
    // The server keeps serving.
    let reply = GreeterClient::new(channel)
        .say_hello(HelloRequest {
            name: "Ferris".into(),
        })
        .await
        .unwrap();
    assert_eq!(reply.into_inner().response_text, "Hello, Ferris!");
}

/// Sends and receives raw message bytes, to say what no generated client

#[tokio::test]
async fn oversized_and_malformed_requests_get_a_status_and_the_server_keeps_serving() {
    let server = TestServer::start(fast_config()).await.unwrap();
    let channel = server.channel().await;

    let status = GreeterClient::new(channel.clone())
        .say_hello(HelloRequest {
            name: "x".repeat(5000),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");

    // Field 1 as a string claiming 100 bytes, followed by two.
    let status = raw::unary(
        &channel,
        "/Greeter/SayHello",
        Bytes::from_static(b"\x0a\x64ab"),
    )
    .await
    .unwrap_err();
    assert_ne!(status.code(), Code::Ok);
    let status = raw::unary(
        &channel,
        "/Greeter/SayHello",
        Bytes::from_static(b"\xff\xff\xff"),
    )
    .await
    .unwrap_err();
    assert_ne!(status.code(), Code::Ok);
    still_serves(&channel).await;
}

/// Makes a call over HTTP/2 by hand, sending `body` as the request stream

#[tokio::test]
async fn a_message_claiming_4_gib_is_refused_from_its_header() {
    // A gRPC frame header claiming 0xFFFFFFFF bytes, followed by only
    // three: the server must answer at once, without waiting for (or
    // allocating) the rest.
    let server = TestServer::start(fast_config()).await.unwrap();
    let (status, _) = raw::h2_call(
        &server,
        "/Greeter/SayHello",
        None,
        b"\x00\xff\xff\xff\xffabc",
        false,
    )
    .await;
    assert_eq!(status, Code::ResourceExhausted as i32);
    still_serves(&server.channel().await).await;
}

#[tokio::test]
async fn client_streams_past_their_limits_are_resource_exhausted() {
    let config = Config {
        max_stream_messages: 3,
        max_stream_bytes: 10,
        ..fast_config()
    };
    let server = TestServer::start(config).await.unwrap();
    let channel = server.channel().await;
    let mut chat = ChatServiceClient::new(channel.clone());

    let ok = chat.collect_stream(texts(&["a", "b", "c"])).await.unwrap();
    assert_eq!(ok.into_inner().message_text, "a b c");
    let status = chat
        .collect_stream(texts(&["a", "b", "c", "d"]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    let status = chat
        .collect_stream(texts(&["0123456789", "x"]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);

    let mut replies = chat
        .chat(texts(&["a", "b", "c", "d"]))
        .await
        .unwrap()
        .into_inner();
    let status = loop {
        match replies.message().await {
            Ok(Some(_)) => {}
            Ok(None) => panic!("the fourth message is over the limit"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), Code::ResourceExhausted);
    still_serves(&channel).await;
}

#[tokio::test]
async fn unknown_methods_and_services_are_unimplemented() {
    let server = TestServer::start(fast_config()).await.unwrap();
    let channel = server.channel().await;
    for path in ["/assistant.AssistantService/Nope", "/no.Such/Method"] {
        let status = raw::unary(&channel, path, Bytes::new()).await.unwrap_err();
        assert_eq!(status.code(), Code::Unimplemented, "{path}");
    }
    still_serves(&channel).await;
}

/// Writes `bytes` on a fresh connection and reads until the server closes
/// it.
async fn closed_after(server: &TestServer, bytes: &'static [u8]) {
    let addr = server.addr;
    let read_to_close = tokio::task::spawn_blocking(move || {
        let mut socket = std::net::TcpStream::connect(addr).unwrap();
        socket.set_read_timeout(Some(PATIENCE)).unwrap();
        socket.write_all(bytes).unwrap();
        let mut sink = Vec::new();
        // Ok(_) is end of file; an error may be a reset. Both mean closed,
        // but a timeout means the server held the connection open.
        match socket.read_to_end(&mut sink) {
            Ok(_) => true,
            Err(err) => !matches!(
                err.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        }
    });
    assert!(
        read_to_close.await.unwrap(),
        "the server kept a {:?} connection open",
        String::from_utf8_lossy(bytes)
    );
}

#[tokio::test]
async fn traffic_that_is_not_grpc_is_closed_and_the_server_keeps_serving() {
    let config = Config {
        handshake_timeout: Duration::from_millis(200),
        ..fast_config()
    };
    let server = TestServer::start(config).await.unwrap();
    closed_after(&server, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    closed_after(
        &server,
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 random bytes",
    )
    .await;
    closed_after(&server, b"").await; // a connection that never speaks
    // One byte, or half the preface, does not hold the connection open;
    // nor does the whole preface without the SETTINGS frame after it.
    closed_after(&server, b"P").await;
    closed_after(&server, b"PRI * HTTP/2.0\r\n").await;
    closed_after(&server, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
    closed_after(
        &server,
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x06\x04\x00\x00\x00\x00\x00",
    )
    .await;
    still_serves(&server.channel().await).await;
}

/// A gRPC frame of `message`, compressed with gzip.
fn gzip_frame(message: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(message).unwrap();
    let compressed = encoder.finish().unwrap();
    let mut frame = vec![1];
    frame.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
    frame.extend_from_slice(&compressed);
    frame
}

#[tokio::test]
async fn a_compressed_request_is_held_to_the_limit_once_decompressed() {
    let server = TestServer::start(fast_config()).await.unwrap();
    let gzip = [("grpc-encoding", "gzip")];

    // A small name, compressed: accepted.
    let (status, _, body) = raw::h2_call_with(
        &server,
        "/Greeter/SayHello",
        &gzip,
        gzip_frame(b"\x0a\x06Ferris"),
        true,
    )
    .await;
    assert_eq!(status, 0);
    assert!(body.windows(14).any(|w| w == b"Hello, Ferris!"));

    // 4 MB of one letter, in a few kilobytes of gzip: refused, without
    // inflating it all.
    let mut bomb = b"\x0a\x80\x80\xf4\x01".to_vec(); // field 1, 4,000,000 bytes
    bomb.extend(std::iter::repeat_n(b'x', 4_000_000));
    let frame = gzip_frame(&bomb);
    assert!(frame.len() < 8 * 1024, "{} bytes", frame.len());
    let (status, _, _) = raw::h2_call_with(&server, "/Greeter/SayHello", &gzip, frame, true).await;
    assert_eq!(status, Code::ResourceExhausted as i32);
    still_serves(&server.channel().await).await;
}

#[tokio::test]
async fn a_story_request_that_cannot_be_read_gets_the_status_tonic_gives() {
    // The story is answered by the server's own code, not tonic's; these
    // are tonic's codes and messages.
    let server = TestServer::start(fast_config()).await.unwrap();
    let path = "/assistant.AssistantService/TellStory";
    let answer = |headers: http::HeaderMap| {
        let status = tonic::Status::from_header_map(&headers).expect("a status in the headers");
        (status.code(), status.message().to_owned())
    };

    let (_, headers, _) = raw::h2_call_with(
        &server,
        path,
        &[("grpc-encoding", "br")],
        Bytes::new(),
        true,
    )
    .await;
    assert_eq!(
        answer(headers),
        (
            Code::Unimplemented,
            "Content is compressed with `br` which isn't supported".to_owned()
        )
    );

    // The stream ends with no request message in it.
    let (_, headers, _) = raw::h2_call_with(&server, path, &[], Bytes::new(), true).await;
    assert_eq!(
        answer(headers),
        (Code::Internal, "Missing request message.".to_owned())
    );
    still_serves(&server.channel().await).await;
}

#[tokio::test]
async fn a_compressed_story_request_is_read_whole_and_held_to_the_limit() {
    let server = TestServer::start(fast_config()).await.unwrap();
    let gzip = [("grpc-encoding", "gzip")];
    let path = "/assistant.AssistantService/TellStory";

    // The longest names there may be: about 1 KiB inflated, more than the
    // story's decoder first makes room for.
    let name = "\u{1d504}".repeat(128);
    let request = TellStoryRequest {
        user_name: name.clone(),
        institution: name.clone(),
        ..Default::default()
    };
    let frame = gzip_frame(&prost::Message::encode_to_vec(&request));
    let (status, _, body) = raw::h2_call_with(&server, path, &gzip, frame, true).await;
    assert_eq!(status, Code::Cancelled as i32);
    let greeting = assistant_proto::sequence::greeting(&name, &name);
    assert!(
        body.windows(greeting.len())
            .any(|w| w == greeting.as_bytes())
    );

    // 4 MB of one letter, in a few kilobytes of gzip: refused.
    let mut bomb = b"\x0a\x80\x80\xf4\x01".to_vec(); // field 1, 4,000,000 bytes
    bomb.extend(std::iter::repeat_n(b'x', 4_000_000));
    let (status, _, _) = raw::h2_call_with(&server, path, &gzip, gzip_frame(&bomb), true).await;
    assert_eq!(status, Code::ResourceExhausted as i32);
    still_serves(&server.channel().await).await;
}

#[tokio::test]
async fn responses_are_compressed_only_when_the_server_is_told_to() {
    // grpcio and grpc-js advertise these on every call.
    let accepts = [("grpc-accept-encoding", "identity,deflate,gzip")];
    for compress_responses in [false, true] {
        let config = Config {
            compress_responses,
            ..fast_config()
        };
        let server = TestServer::start(config).await.unwrap();
        let (status, headers, body) = raw::h2_call_with(
            &server,
            "/Greeter/SayHello",
            &accepts,
            &b"\x00\x00\x00\x00\x08\x0a\x06Ferris"[..],
            true,
        )
        .await;
        assert_eq!(status, 0);
        let encoding = headers
            .get("grpc-encoding")
            .map(|v| v.to_str().unwrap().to_owned());
        if compress_responses {
            assert_eq!(encoding.as_deref(), Some("gzip"));
            assert_eq!(body[0], 1, "the message is flagged compressed");
        } else {
            assert!(
                encoding.as_deref().is_none_or(|e| e == "identity"),
                "{encoding:?}"
            );
            assert_eq!(body[0], 0, "the message is not compressed");
            assert!(body.windows(14).any(|w| w == b"Hello, Ferris!"));
        }
    }
}
