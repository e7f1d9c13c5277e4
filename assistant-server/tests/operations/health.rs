//! Health: SERVING for the server and every service, and its turn to NOT_SERVING at shutdown.

use super::*;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

#[tokio::test]
async fn health_is_serving_for_the_server_and_every_service() {
    let server = TestServer::start(fast_config()).await.unwrap();
    let mut health = HealthClient::new(server.channel().await);
    for service in std::iter::once("").chain(SERVICES) {
        let response = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(response.status(), ServingStatus::Serving, "{service:?}");
    }
    let status = health
        .check(HealthCheckRequest {
            service: "no.Such".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn health_watch_turns_not_serving_as_shutdown_begins_and_does_not_hold_it_up() {
    // A grace period of an hour: only application calls may use it.
    let config = Config {
        shutdown_grace: Duration::from_secs(3600),
        ..fast_config()
    };
    let mut server = TestServer::start(config).await.unwrap();
    let mut health = HealthClient::new(server.channel().await);
    let mut watch = health
        .watch(HealthCheckRequest { service: "".into() })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status(), ServingStatus::Serving);

    server.begin_shutdown();
    let next = timeout(PATIENCE, watch.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(next.status(), ServingStatus::NotServing);
    timeout(PATIENCE, server.stopped())
        .await
        .expect("an open health watch must not hold up shutdown")
        .unwrap();
}
