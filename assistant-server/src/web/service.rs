//! What the web listener answers, request by request: the page's files,
//! gRPC-Web calls to `TellStory` and `ListStories`, and a plain refusal
//! for anything else.
//!
//! A gRPC-Web call is translated to gRPC by `tonic-web` and then goes
//! through the same call layer as on the gRPC port ([`CallService`]): the
//! same cap on calls, request sizes, deadline, shutdown and log lines.

use std::{
    convert::Infallible,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use tokio_util::sync::CancellationToken;
use tonic::{Status, body::Body};
use tonic_web::GrpcWebService;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_layer::Layer;
use tower_service::Service;

use super::{page, watch::WatchedBody};
use crate::{
    call::CallService,
    services::{LIST_STORIES_PATH, Router, TELL_STORY_PATH},
};

/// The methods a browser may call.
const SERVED_TO_BROWSERS: [&str; 2] = [TELL_STORY_PATH, LIST_STORIES_PATH];

/// The answer to one request.
type BoxFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

/// The web listener's service for one connection: it marks the
/// connection's first request, then CORS answers preflights, then
/// [`Answers`].
#[derive(Clone)]
pub(super) struct Site {
    inner: tower_http::cors::Cors<Answers>,
    /// Cancelled by the connection's first request: its handshake is over.
    first_request: CancellationToken,
}

impl std::fmt::Debug for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Site").finish_non_exhaustive()
    }
}

/// The site for `service`'s calls, letting `origins` call it from other
/// pages (none: same-origin only).
pub(super) fn site(
    service: CallService<Router>,
    origins: &[String],
    first_request: CancellationToken,
) -> Site {
    Site {
        inner: cors(origins).layer(Answers {
            grpc_web: tonic_web::GrpcWebLayer::new().layer(Browser(service)),
        }),
        first_request,
    }
}

impl<B> Service<Request<B>> for Site
where
    Answers: Service<Request<B>, Response = Response<Body>, Error = Infallible>,
    <Answers as Service<Request<B>>>::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = <tower_http::cors::Cors<Answers> as Service<Request<B>>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        self.first_request.cancel();
        self.inner.call(request)
    }
}

/// CORS for `origins`. With none, no response allows another origin, so
/// browsers keep other sites' pages from calling.
fn cors(origins: &[String]) -> CorsLayer {
    let allow = if origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|origin| HeaderValue::from_str(origin).ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::POST])
        .allow_headers([
            header::CONTENT_TYPE,
            header::HeaderName::from_static("x-grpc-web"),
            header::HeaderName::from_static("x-user-agent"),
            header::HeaderName::from_static("grpc-timeout"),
        ])
        .expose_headers([
            header::HeaderName::from_static("grpc-status"),
            header::HeaderName::from_static("grpc-message"),
            header::HeaderName::from_static("grpc-status-details-bin"),
        ])
        .max_age(std::time::Duration::from_secs(2 * 60 * 60))
}

/// Sends each request where it belongs; see the [module docs](self).
#[derive(Clone)]
pub(super) struct Answers {
    grpc_web: GrpcWebService<Browser>,
}

impl std::fmt::Debug for Answers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answers").finish_non_exhaustive()
    }
}

impl<B> Service<Request<B>> for Answers
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + std::fmt::Display,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Service::<Request<B>>::poll_ready(&mut self.grpc_web, cx)
    }

    fn call(&mut self, request: Request<B>) -> BoxFuture {
        let path = request.uri().path();
        if page::is_page(path) {
            let response = page::answer(request.method(), path);
            return Box::pin(std::future::ready(Ok(response)));
        }
        let grpc_web = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/grpc-web"));
        if !grpc_web && request.method() != Method::POST {
            let response = page::plain(StatusCode::NOT_FOUND, "Not found.\n");
            return Box::pin(std::future::ready(Ok(response)));
        }
        if !grpc_web {
            let response = page::plain(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "This port serves the story page at / and gRPC-Web for it; \
                 gRPC clients belong on the server's gRPC port.\n",
            );
            return Box::pin(std::future::ready(Ok(response)));
        }
        Box::pin(self.grpc_web.call(request))
    }
}

/// The gRPC side of a gRPC-Web call: the methods a browser may call,
/// through the call layer, their bytes as `tonic-web` takes them.
#[derive(Debug, Clone)]
pub(super) struct Browser(CallService<Router>);

impl Service<Request<Body>> for Browser {
    type Response = Response<WatchedBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<WatchedBody>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Service::<Request<Body>>::poll_ready(&mut self.0, cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        if !SERVED_TO_BROWSERS.contains(&request.uri().path()) {
            let status = Status::unimplemented(format!(
                "the web listener serves {} and {}; other methods are on the gRPC port",
                TELL_STORY_PATH, LIST_STORIES_PATH
            ));
            let response = status.into_http().map(|()| WatchedBody::empty());
            return Box::pin(std::future::ready(Ok(response)));
        }
        let answer = self.0.call(request);
        Box::pin(async move {
            let response = answer.await?;
            Ok(response.map(WatchedBody::new))
        })
    }
}
