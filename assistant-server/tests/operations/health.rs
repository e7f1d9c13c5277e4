//! Health: SERVING for the server and every service, its turn to
//! NOT_SERVING at shutdown, and the spec for services it does not know.

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

#[tokio::test]
async fn watching_an_unknown_service_says_service_unknown_and_stays_open() {
    let mut server = TestServer::start(fast_config()).await.unwrap();
    let channel = server.channel().await;
    let mut watch = HealthClient::new(channel.clone())
        .watch(HealthCheckRequest {
            service: "no.Such".into(),
        })
        .await
        .expect("the spec keeps the stream open, where tonic-health answers NOT_FOUND")
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status(), ServingStatus::ServiceUnknown);

    // Still open: another call on the same connection completes while the
    // watch has nothing more to say.
    still_serves(&channel).await;
    assert!(
        timeout(Duration::from_millis(100), watch.message())
            .await
            .is_err(),
        "the watch should stay open with nothing to say"
    );

    // Shutdown ends it, as it ends every watch.
    server.begin_shutdown();
    let ended = timeout(PATIENCE, async {
        while let Ok(Some(_)) = watch.message().await {}
    })
    .await;
    assert!(ended.is_ok(), "shutdown ends the watch");
    timeout(PATIENCE, server.stopped()).await.unwrap().unwrap();
}
