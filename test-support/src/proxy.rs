//! A TCP proxy that can stop forwarding without closing anything, as a
//! proxy or a network that silently drops packets does.

use std::{net::SocketAddr, sync::Arc};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream, tcp::OwnedReadHalf, tcp::OwnedWriteHalf},
    sync::{Mutex, watch},
};

/// A proxy on a free loopback port, forwarding to a fixed address.
#[derive(Debug)]
pub struct Proxy {
    /// Where it listens.
    pub addr: SocketAddr,
    /// One switch per connection accepted so far; `true` freezes it.
    switches: Arc<Mutex<Vec<watch::Sender<bool>>>>,
}

impl Proxy {
    /// Starts forwarding connections to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free loopback port");
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let switches: Arc<Mutex<Vec<watch::Sender<bool>>>> = Arc::default();
        let accepted = Arc::clone(&switches);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(target).await else {
                    continue;
                };
                let (switch, frozen) = watch::channel(false);
                accepted.lock().await.push(switch);
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(forward(client_read, server_write, frozen.clone()));
                tokio::spawn(forward(server_read, client_write, frozen));
            }
        });
        Self { addr, switches }
    }

    /// The proxy's URL for `--server`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops forwarding on every connection accepted so far, in both
    /// directions, closing nothing. Connections accepted later are
    /// forwarded as usual.
    pub async fn freeze(&self) {
        for switch in self.switches.lock().await.iter() {
            let _ = switch.send(true);
        }
    }
}

/// Copies `from` to `to` until either closes, or forever holds both once
/// `frozen` says so.
async fn forward(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut frozen: watch::Receiver<bool>,
) {
    let mut buf = vec![0; 16 * 1024];
    loop {
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = frozen.wait_for(|frozen| *frozen) => break,
        };
        if *frozen.borrow() || to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    // Frozen: hold both ends open, and forward nothing, until the test
    // ends.
    std::future::pending::<()>().await;
    drop((from, to));
}
