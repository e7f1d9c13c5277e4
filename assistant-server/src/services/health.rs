//! The standard health service, `grpc.health.v1.Health`: SERVING for the
//! server as a whole (`""`) and for each service, until shutdown begins.

use tonic_health::{
    ServingStatus,
    pb::health_server::HealthServer,
    server::{HealthReporter, HealthService},
};

use super::SERVICES;

/// What the health service reports, and the service itself.
#[derive(Debug, Clone)]
pub(crate) struct Health {
    reporter: HealthReporter,
}

impl Health {
    /// A health service that reports the server and every service SERVING.
    pub(crate) async fn serving() -> Self {
        let health = Self {
            reporter: HealthReporter::new(),
        };
        health.set_all(ServingStatus::Serving).await;
        health
    }

    /// The service, to serve.
    pub(super) fn service(&self) -> HealthServer<HealthService> {
        HealthServer::new(HealthService::from_health_reporter(self.reporter.clone()))
    }

    /// Reports the server and every service NOT_SERVING: it is shutting
    /// down.
    pub(crate) async fn not_serving(&self) {
        self.set_all(ServingStatus::NotServing).await;
    }

    async fn set_all(&self, status: ServingStatus) {
        self.reporter.set_service_status("", status).await;
        for service in SERVICES {
            self.reporter.set_service_status(service, status).await;
        }
    }
}
