//! Servers on free loopback ports: the real one, and stand-ins.

use std::{convert::Infallible, net::SocketAddr};

use assistant_server::{Calls, Config, Handle, Server};
use tonic::transport::Channel;

/// A server running in the background on an ephemeral loopback port.
#[derive(Debug)]
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its count of calls in flight.
    pub calls: Calls,
    /// Where it serves metrics, if `config.metrics_addr` asked for them.
    pub metrics_addr: Option<SocketAddr>,
    /// Where it serves the story page and gRPC-Web, if `config.web_addr`
    /// asked for them.
    pub web_addr: Option<SocketAddr>,
    handle: Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestServer {
    /// Binds `127.0.0.1:0` (whatever `config.addr` says) and serves
    /// `config` in a background task. The port is bound when this returns,
    /// so clients may connect at once.
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        Self::start_at(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    /// Like [`TestServer::start`], on `addr`: to restart a server where an
    /// earlier one was, so its clients can come back.
    pub async fn start_at(addr: SocketAddr, config: Config) -> anyhow::Result<Self> {
        let config = Config { addr, ..config };
        let server = Server::bind(config).await?;
        let addr = server.local_addr();
        let metrics_addr = server.metrics_addr();
        let web_addr = server.web_addr();
        let handle = server.handle();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(async {
            let _ = stopped.await;
        }));
        Ok(Self {
            addr,
            calls: handle.calls().clone(),
            metrics_addr,
            web_addr,
            handle,
            stop: Some(stop),
            task,
        })
    }

    /// The server's URL for `--server`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A fresh connection to the server, with tonic's defaults.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.url())
            .expect("a loopback URL is valid")
            .connect()
            .await
            .expect("the test server accepts connections")
    }

    /// Begins shutdown, as a signal would, without waiting for it.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Waits for the server to stop (after [`TestServer::begin_shutdown`]).
    pub async fn stopped(&mut self) -> anyhow::Result<()> {
        (&mut self.task).await?
    }

    /// Begins shutdown and waits for the server to stop.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.begin_shutdown();
        self.stopped().await
    }

    /// Closes every connection at once, as if the server had crashed.
    pub fn kill_connections(&self) {
        self.handle.close_connections();
    }
}

/// Serves `service` (a stand-in server) on a free loopback port.
pub async fn serve<S>(service: S) -> SocketAddr
where
    S: tower_service::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = Infallible,
        > + tonic::server::NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free loopback port");
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    addr
}
