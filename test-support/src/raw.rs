//! Calls made by hand, to send what no generated client would: message
//! bytes of our choosing, and HTTP/2 frames.

use bytes::{Buf, BufMut, Bytes};
use tonic::{
    Request, Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    transport::Channel,
};

use crate::{PATIENCE, TestServer};

/// Sends and receives raw message bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = Self;
    type Decoder = Self;

    fn encoder(&mut self) -> Self {
        Self
    }

    fn decoder(&mut self) -> Self {
        Self
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// A unary call to `path` whose request message is `body`, as it is.
pub async fn unary(channel: &Channel, path: &'static str, body: Bytes) -> Result<Bytes, Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready()
        .await
        .map_err(|err| Status::unavailable(err.to_string()))?;
    grpc.unary(
        Request::new(body),
        http::uri::PathAndQuery::from_static(path),
        RawCodec,
    )
    .await
    .map(tonic::Response::into_inner)
}

/// The request head of a gRPC call to `path` on `server`, for HTTP/2 by
/// hand: POST with gRPC's content type and `te: trailers`.
pub fn grpc_post(server: &TestServer, path: &str) -> http::request::Builder {
    http::Request::post(format!("{}{path}", server.url()))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
}

/// Makes a call over HTTP/2 by hand, sending `body` as the request stream
/// (and ending it if `end`), and returns the call's `grpc-status` and the
/// response bytes before it.
///
/// # Panics
/// If the server does not answer within [`PATIENCE`], or answers with no
/// `grpc-status`.
pub async fn h2_call(
    server: &TestServer,
    path: &str,
    grpc_timeout: Option<&str>,
    body: &'static [u8],
    end: bool,
) -> (i32, Vec<u8>) {
    let headers: Vec<(&str, &str)> = grpc_timeout
        .map(|timeout| ("grpc-timeout", timeout))
        .into_iter()
        .collect();
    let (status, _, received) = h2_call_with(server, path, &headers, body, end).await;
    (status, received)
}

/// Like [`h2_call`], with request `headers` of our choosing; also returns
/// the response headers.
///
/// # Panics
/// As [`h2_call`].
pub async fn h2_call_with(
    server: &TestServer,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
    end: bool,
) -> (i32, http::HeaderMap, Vec<u8>) {
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let mut request = grpc_post(server, path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let (response, mut send) = client
        .send_request(request.body(()).unwrap(), false)
        .unwrap();
    send.send_data(body.into(), end).unwrap();

    let response = tokio::time::timeout(PATIENCE, response)
        .await
        .unwrap()
        .expect("response headers");
    let (parts, mut body) = response.into_parts();
    let mut received = Vec::new();
    let status = match parts.headers.get("grpc-status") {
        Some(status) => status.clone(),
        None => {
            while let Some(data) = body.data().await {
                let data = data.unwrap();
                let _ = body.flow_control().release_capacity(data.len());
                received.extend_from_slice(&data);
            }
            body.trailers().await.unwrap().unwrap()["grpc-status"].clone()
        }
    };
    (
        status.to_str().unwrap().parse().unwrap(),
        parts.headers,
        received,
    )
}
