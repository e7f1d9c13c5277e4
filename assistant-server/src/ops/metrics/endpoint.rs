//! The metrics endpoint: `GET /metrics` over HTTP/1.1, on a listener of
//! its own (`--metrics-addr`), never on the gRPC port.
//!
//! It is for an operator's Prometheus, but bounded all the same: a few
//! connections at once, each with a time limit on its request's headers
//! and on its whole life.
//! It runs until told to stop, which the server does only after its
//! shutdown sequence, so the last scrape sees the drain.

use std::{convert::Infallible, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{Metrics, Sources};

/// Scrapes served at once; more wait to be accepted.
const MAX_CONNECTIONS: usize = 16;

/// How long a scraper may take to send its request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one connection may last, its responses included: a scraper
/// that stops reading cannot hold a slot for good. Prometheus opens
/// another.
const CONNECTION_LIMIT: Duration = Duration::from_secs(30);

/// How often recorded histogram samples are folded into their buckets,
/// whether or not anything scrapes: until then each sample is held.
const UPKEEP: Duration = Duration::from_secs(5);

/// The text format's content type, as Prometheus asks for it.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves `metrics` on `listener`, reading the scraped series from
/// `sources`, until `stop` is cancelled.
pub(crate) async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    sources: Sources,
    stop: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(upkeep(metrics.clone(), stop.clone()));
    loop {
        let permit = tokio::select! {
            () = stop.cancelled() => return,
            permit = Arc::clone(&slots).acquire_owned() => permit,
        };
        let Ok(permit) = permit else { return };
        let tcp = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(err) => {
                    warn!("Cannot accept a metrics connection ({err})");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (metrics, sources, stop) = (metrics.clone(), sources.clone(), stop.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let service = service_fn(move |request| {
                let response = answer(&request, &metrics, &sources);
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(tcp), service);
            tokio::select! {
                _ = tokio::time::timeout(CONNECTION_LIMIT, connection) => {}
                () = stop.cancelled() => {}
            }
        });
    }
}

/// Folds histogram samples into their buckets every [`UPKEEP`], until
/// `stop`.
async fn upkeep(metrics: Metrics, stop: CancellationToken) {
    let mut every = tokio::time::interval(UPKEEP);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = every.tick() => metrics.upkeep(),
        }
    }
}

/// The answer to one request.
fn answer(
    request: &Request<Incoming>,
    metrics: &Metrics,
    sources: &Sources,
) -> Response<Full<Bytes>> {
    let plain = |status: StatusCode, text: &'static str| {
        let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
        *response.status_mut() = status;
        response
    };
    if request.uri().path() != "/metrics" {
        return plain(StatusCode::NOT_FOUND, "Metrics are at /metrics.\n");
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "Use GET.\n");
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let Some(text) = metrics.render(sources) else {
        return plain(StatusCode::NOT_FOUND, "Metrics are off.\n");
    };
    let mut response = Response::new(Full::new(Bytes::from(text)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(CONTENT_TYPE),
    );
    response
}
