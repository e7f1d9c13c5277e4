//! Helpers shared by the client's end-to-end tests.

#![allow(dead_code)] // Each test file uses its own share of them.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use tokio::{io::AsyncWrite, sync::watch};

/// An output whose text can be awaited while the client is still writing.
#[derive(Clone)]
pub struct Tap(watch::Sender<String>);

impl Tap {
    pub fn new() -> Self {
        Self(watch::channel(String::new()).0)
    }

    pub fn text(&self) -> String {
        self.0.borrow().clone()
    }

    /// Waits until the output contains `needle`.
    pub async fn printed(&self, needle: &str) {
        let mut rx = self.0.subscribe();
        rx.wait_for(|text| text.contains(needle)).await.unwrap();
    }
}

impl AsyncWrite for Tap {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.0
            .send_modify(|text| text.push_str(std::str::from_utf8(buf).unwrap()));
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl Tap {
    /// Waits until at least `n` bytes have been written.
    pub async fn written(&self, n: usize) {
        let mut rx = self.0.subscribe();
        rx.wait_for(|text| text.len() >= n).await.unwrap();
    }
}

/// A channel to `server`, with the client's default options.
pub async fn connect(
    server: &assistant_server::test_util::TestServer,
) -> tonic::transport::Channel {
    assistant_client::connect::connect(&server.url(), &Default::default(), &Default::default())
        .await
        .unwrap()
}

/// Serves `service` (a stand-in server) on a free loopback port.
pub async fn serve<S>(service: S) -> std::net::SocketAddr
where
    S: tower_service::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        > + tonic::server::NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    addr
}
