//! The standard health service, `grpc.health.v1.Health`: SERVING for the
//! server as a whole (`""`) and for each service; NOT_SERVING while the
//! server is at its limit of calls, and from the moment shutdown begins.
//!
//! It follows the health-checking spec where tonic-health does not: a
//! `Watch` on a service the server does not know answers SERVICE_UNKNOWN
//! and stays open (the service may appear later), as grpcio's does, where
//! tonic-health fails it at once with NOT_FOUND. `Check` on an unknown
//! service is NOT_FOUND, as the spec says.

use std::{collections::HashMap, pin::Pin, sync::Arc};

use tokio::sync::watch;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use tonic_health::pb::{
    HealthCheckRequest, HealthCheckResponse,
    health_check_response::ServingStatus,
    health_server::{Health as HealthApi, HealthServer},
};

use super::SERVICES;

/// What the health service reports, shared by the service and the server
/// that sets it. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Health {
    statuses: Arc<watch::Sender<HashMap<String, ServingStatus>>>,
}

impl Health {
    /// A health service that reports the server and every service SERVING.
    pub(crate) fn serving() -> Self {
        let health = Self {
            statuses: Arc::new(watch::Sender::new(HashMap::new())),
        };
        health.set_all(ServingStatus::Serving);
        health
    }

    /// The service, to serve.
    pub(super) fn service(&self) -> HealthServer<Self> {
        HealthServer::new(self.clone())
    }

    /// Reports the server and every service NOT_SERVING: it is shutting
    /// down, or refusing calls.
    pub(crate) fn not_serving(&self) {
        self.set_all(ServingStatus::NotServing);
    }

    /// Reports the server and every service SERVING again.
    pub(crate) fn serving_again(&self) {
        self.set_all(ServingStatus::Serving);
    }

    fn set_all(&self, status: ServingStatus) {
        self.statuses.send_modify(|statuses| {
            for service in std::iter::once("").chain(SERVICES) {
                statuses.insert(service.to_owned(), status);
            }
        });
    }
}

fn response(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status.into(),
    }
}

#[tonic::async_trait]
impl HealthApi for Health {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let service = request.into_inner().service;
        match self.statuses.borrow().get(&service) {
            Some(status) => Ok(Response::new(response(*status))),
            None => Err(Status::not_found(format!(
                "no service called `{}` here",
                assistant_proto::text::Escaped(service.as_bytes())
            ))),
        }
    }

    type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let service = request.into_inner().service;
        let mut statuses = self.statuses.subscribe();
        let stream = async_stream::stream! {
            let mut last = None;
            loop {
                let status = statuses
                    .borrow_and_update()
                    .get(&service)
                    .copied()
                    .unwrap_or(ServingStatus::ServiceUnknown);
                if last != Some(status) {
                    last = Some(status);
                    yield Ok(response(status));
                }
                // Ends only when the server does: the call layer ends
                // health watches when shutdown begins.
                if statuses.changed().await.is_err() {
                    break;
                }
            }
        };
        Ok(Response::new(Box::pin(stream)))
    }
}
