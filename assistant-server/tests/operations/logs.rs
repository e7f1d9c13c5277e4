//! Each call logs in a span and ends with one summary line.

use super::*;

#[tokio::test]
async fn each_call_logs_in_a_span_and_ends_with_one_summary_line() {
    let (logs, _guard) = LogCapture::install();
    let server = TestServer::start(fast_config()).await.unwrap();
    let mut stream = AssistantServiceClient::new(server.channel().await)
        .tell_story(peter())
        .await
        .unwrap()
        .into_inner();
    while stream.message().await.is_ok_and(|m| m.is_some()) {}
    timeout(PATIENCE, server.calls.idle()).await.unwrap();

    let contents = logs.contents();
    let received = contents
        .lines()
        .find(|line| line.contains("Received story-telling request"))
        .unwrap();
    assert!(
        received.contains("call{id=")
            && received.contains(" method=/assistant.AssistantService/TellStory peer=127.0.0.1:"),
        "{received}"
    );
    assert!(received.contains("user=Peter S}"), "{received}");
    let ended: Vec<&str> = contents
        .lines()
        .filter(|line| line.contains("Call ended"))
        .collect();
    assert_eq!(ended.len(), 1, "{contents}");
    // The greeting, 142 chunks and the ending.
    assert!(
        ended[0].contains("Call ended code=CANCELLED messages=144 bytes="),
        "{}",
        ended[0]
    );
    assert!(ended[0].contains(" elapsed_ms="), "{}", ended[0]);
}
