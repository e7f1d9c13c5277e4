//! Cancelled calls leave nothing behind.

use super::*;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count())
}

#[tokio::test]
async fn cancelled_calls_leave_no_call_or_file_handle_behind() {
    let server = TestServer::start(slow_config()).await.unwrap();
    let baseline = open_fds();
    for _ in 0..10 {
        let channel = server.channel().await;
        let mut story = AssistantServiceClient::new(channel.clone())
            .tell_story(peter())
            .await
            .unwrap()
            .into_inner();
        story.message().await.unwrap().unwrap();
        let mut chat = ChatServiceClient::new(channel.clone())
            .chat_stream(ChatMessage::default())
            .await
            .unwrap()
            .into_inner();
        chat.message().await.unwrap().unwrap();
        server.calls.wait_for(|active| active == 2).await;
        drop((story, chat, channel));
        timeout(PATIENCE, server.calls.idle())
            .await
            .expect("both calls end");
    }
    // Both ends of every connection live in this process; once the server
    // has seen each close, the count is back where it started.
    let settled = async {
        while open_fds() > baseline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    if cfg!(target_os = "linux") {
        timeout(PATIENCE, settled)
            .await
            .expect("no file handle is left open");
    }
}
