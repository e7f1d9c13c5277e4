//! The per-connection and server-wide limits on calls.

use super::*;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

#[tokio::test]
async fn streams_past_the_per_connection_limit_wait_and_nothing_breaks() {
    let config = Config {
        max_concurrent_streams: 2,
        ..slow_config()
    };
    let server = TestServer::start(config).await.unwrap();
    let channel = server.channel().await;
    let open = |channel: Channel| async move {
        let mut stream = AssistantServiceClient::new(channel)
            .tell_story(peter())
            .await
            .unwrap()
            .into_inner();
        stream.message().await.unwrap().unwrap();
        stream
    };
    let first = open(channel.clone()).await;
    let _second = open(channel.clone()).await;
    let third = tokio::spawn(open(channel.clone()));
    // The third call may not start while two are open on the connection.
    assert!(
        timeout(Duration::from_millis(200), server.calls.wait_for(|n| n > 2))
            .await
            .is_err()
    );
    assert!(!third.is_finished());
    drop(first);
    let _third = timeout(PATIENCE, third)
        .await
        .expect("the third call starts once one ends")
        .unwrap();
    assert_eq!(server.calls.active(), 2);
}

#[tokio::test]
async fn calls_past_the_server_wide_cap_are_resource_exhausted_but_health_answers() {
    let config = Config {
        max_calls: 2,
        ..slow_config()
    };
    let server = TestServer::start(config).await.unwrap();
    let mut streams = Vec::new();
    for _ in 0..2 {
        let mut stream = AssistantServiceClient::new(server.channel().await)
            .tell_story(peter())
            .await
            .unwrap()
            .into_inner();
        stream.message().await.unwrap().unwrap();
        streams.push(stream);
    }
    let fresh = server.channel().await;
    let status = AssistantServiceClient::new(fresh.clone())
        .tell_story(peter())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().contains("limit of 2"),
        "{}",
        status.message()
    );
    let health = HealthClient::new(fresh.clone())
        .check(HealthCheckRequest { service: "".into() })
        .await
        .unwrap();
    assert_eq!(health.into_inner().status(), ServingStatus::Serving);

    drop(streams);
    timeout(PATIENCE, server.calls.idle()).await.unwrap();
    still_serves(&fresh).await;
}
