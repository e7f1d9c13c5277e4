//! An output whose text can be awaited while the client is still writing.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use tokio::{io::AsyncWrite, sync::watch};

/// An output whose text can be awaited while the client is still writing.
/// Clones share the text.
#[derive(Debug, Clone)]
pub struct Tap(watch::Sender<Vec<u8>>);

impl Default for Tap {
    fn default() -> Self {
        Self(watch::channel(Vec::new()).0)
    }
}

impl Tap {
    /// An empty output.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything written so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.borrow()).into_owned()
    }

    /// Everything written so far.
    pub fn bytes(&self) -> Vec<u8> {
        self.0.borrow().clone()
    }

    /// Waits until the output contains `needle`.
    pub async fn printed(&self, needle: &str) {
        let mut rx = self.0.subscribe();
        let _ = rx
            .wait_for(|text| String::from_utf8_lossy(text).contains(needle))
            .await;
    }

    /// Waits until at least `n` bytes have been written.
    pub async fn written(&self, n: usize) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|text| text.len() >= n).await;
    }
}

impl AsyncWrite for Tap {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.0.send_modify(|text| text.extend_from_slice(buf));
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
