//! The server: bound to its address, then served until told to stop.

use std::{future::Future, net::SocketAddr, pin::pin};

use tokio::{net::TcpListener, sync::watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    call::{CallService, Calls, Endings, Limits},
    config::Config,
    library::{Library, Story},
    ops::{
        metrics::{Metrics, Sources, endpoint},
        shutdown,
    },
    services::{self, health::Health},
    transport::{self, Connections},
    web::Web,
};

/// A server bound to its address, ready to serve.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    web_listener: Option<TcpListener>,
    config: Config,
    library: Library,
    handle: Handle,
}

/// A hand on a running server, to watch it or to cut it off. Cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct Handle {
    calls: Calls,
    closing: CancellationToken,
}

impl Handle {
    /// The count of application calls in flight.
    pub fn calls(&self) -> &Calls {
        &self.calls
    }

    /// Closes every connection at once, and every one accepted later, as
    /// a crash would (but without ending the process): for tests of what
    /// clients do when a server dies.
    pub fn close_connections(&self) {
        self.closing.cancel();
    }
}

impl Server {
    /// Loads the story and binds the listening socket.
    ///
    /// Fails, naming the cause, if the story file cannot be read or the
    /// address cannot be bound.
    pub async fn bind(config: Config) -> anyhow::Result<Self> {
        let library = match (&config.story, &config.stories_dir) {
            (Some(path), _) => Library::One(Story::load(path)?),
            (None, Some(dir)) => Library::dir(dir, config.max_story_size, config.story_cache)?,
            (None, None) => Library::One(Story::alice()),
        };
        let listener = transport::listen(config.addr).await?;
        let metrics_listener =
            match config.metrics_addr {
                Some(addr) => Some(TcpListener::bind(addr).await.map_err(|err| {
                    anyhow::anyhow!("cannot listen for metrics on {addr}: {err}")
                })?),
                None => None,
            };
        let web_listener = match config.web_addr {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(|err| {
                anyhow::anyhow!("cannot listen for the web page on {addr}: {err}")
            })?),
            None => None,
        };
        Ok(Self {
            listener,
            metrics_listener,
            web_listener,
            config,
            library,
            handle: Handle {
                calls: Calls::default(),
                closing: CancellationToken::new(),
            },
        })
    }

    /// The address the server listens on; with port 0, the port the system
    /// picked.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound TCP listener has a local address")
    }

    /// The address metrics are served on, with `--metrics-addr`; with port
    /// 0, the port the system picked.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
    }

    /// The address the story page and gRPC-Web are served on, with
    /// `--web-addr`; with port 0, the port the system picked.
    pub fn web_addr(&self) -> Option<SocketAddr> {
        self.web_listener
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
    }

    /// A hand on the server, which stays valid while it serves.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Serves until `shutdown` completes, then shuts down as the
    /// [crate docs](crate#shutdown) describe.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let metrics_addr = self.metrics_addr();
        let web_addr = self.web_addr();
        let Self {
            listener,
            metrics_listener,
            web_listener,
            config,
            library,
            handle: Handle { calls, closing },
        } = self;
        let port = listener.local_addr()?.port();

        let health = Health::serving();
        let metrics = match metrics_listener {
            Some(_) => Metrics::enabled(),
            None => Metrics::default(),
        };
        let routes = services::Router::new(library.clone(), &config, &health)?;
        let endings = Endings::default();
        let limits = Limits {
            max_calls: config.max_calls,
            max_calls_per_connection: config.max_calls_per_connection,
            request_timeout: config.request_timeout,
        };
        let service = CallService::new(
            routes,
            calls.clone(),
            limits,
            endings.clone(),
            metrics.clone(),
        );
        let (open_files, default_connections) = transport::raise_fd_limit();
        let max_connections = config.max_connections.unwrap_or(default_connections);
        let connections = Connections::new(&config, service.clone(), max_connections, closing)?;
        // The page's listener has connections of its own, at the same cap,
        // drained and closed with the gRPC port's.
        let web = web_listener.map(|listener| {
            let web = Web::new(&config, service, max_connections, connections.hands());
            (web, listener)
        });

        // The metrics endpoint outlives the shutdown sequence, so that the
        // last scrape sees the drain.
        let metrics_stop = CancellationToken::new();
        // Dropped with this future, however it ends, the endpoint stops too.
        let _metrics_stopped = metrics_stop.clone().drop_guard();
        let metrics_task = metrics_listener.map(|listener| {
            let sources = Sources {
                calls: calls.clone(),
                connections: connections.counter(),
                library,
            };
            tokio::spawn(endpoint::serve(
                listener,
                metrics,
                sources,
                metrics_stop.clone(),
            ))
        });

        // A load balancer should not send calls a full server would refuse.
        // The marks are set before the first call can count.
        let fullness = tokio::spawn(health_follows_fullness(
            health.clone(),
            fullness(&calls, config.max_calls),
            config.max_calls,
        ));
        {
            let accepting = pin!(connections.accept(listener));
            let accepting_web = pin!(async {
                match &web {
                    Some((web, listener)) => web.accept(listener).await,
                    None => std::future::pending().await,
                }
            });
            info!("Server started on port {port}");
            if let Some(addr) = metrics_addr {
                info!("Metrics at http://{addr}/metrics");
            }
            if let Some(addr) = web_addr {
                info!("Story page at http://{addr}/");
                if connections.tls() {
                    warn!("The story page and its gRPC-Web are served without TLS");
                }
            }
            info!(
                "Limits: {max_connections} connections, {} calls at once; {open_files} open files",
                config.max_calls
            );
            if connections.tls() {
                let clients = if config.client_ca.is_some() {
                    "required"
                } else {
                    "not required"
                };
                info!("Serving TLS; client certificates {clients}");
            }
            tokio::select! {
                () = accepting => {}
                () = accepting_web => {}
                () = shutdown => {}
            }
            // Leaving this block drops the accept loops, and with them the
            // listening sockets.
        }
        drop(web);

        fullness.abort();
        shutdown::run(shutdown::Serving {
            health: &health,
            connections: &connections,
            calls: &calls,
            endings: &endings,
            grace: config.shutdown_grace,
        })
        .await;
        metrics_stop.cancel();
        if let Some(task) = metrics_task {
            let _ = task.await;
        }
        Ok(())
    }
}

/// Reports NOT_SERVING while the server is `full` (at its `max` calls),
/// and SERVING again once a tenth of them have ended: a margin, so that
/// health does not flap with each call that starts and ends at the limit.
async fn health_follows_fullness(health: Health, mut full: watch::Receiver<bool>, max: usize) {
    loop {
        // Ends only if the server's count of calls is gone.
        if full.wait_for(|full| *full).await.is_err() {
            return;
        }
        warn!("At the limit of {max} calls: refusing new calls, and health reports NOT_SERVING");
        health.not_serving();
        if full.wait_for(|full| !*full).await.is_err() {
            return;
        }
        info!("Below the limit of calls again: health reports SERVING");
        health.serving_again();
    }
}

/// Whether `calls` are at `max`: from `max` until a tenth of them have
/// ended.
fn fullness(calls: &Calls, max: usize) -> watch::Receiver<bool> {
    let again_below = max.saturating_sub((max / 10).max(1)).max(1);
    calls.fullness(max, again_below)
}

/// Runs a server with `config` until Ctrl-C or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    Server::bind(config).await?.serve(shutdown::signal()).await
}
