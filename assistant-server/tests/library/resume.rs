//! Continuing a call from any byte: the same bytes from there, no
//! think-time past the greeting, and never a text that changed meanwhile.

use super::*;

#[tokio::test]
async fn a_call_resumes_from_any_byte_with_the_same_bytes() {
    let server = TestServer::start(Config {
        chunk_size: 1000,
        ..fast_config()
    })
    .await
    .unwrap();
    let mut client = client(&server).await;
    let whole = whole_story();
    let (text, code) = tell(&mut client, request("", 0)).await.unwrap();
    assert_eq!((text.as_slice(), code), (whole.as_slice(), Code::Cancelled));

    let total = whole.len() as u64;
    // In the greeting, at its end, mid-chunk, on a chunk boundary, in the
    // ending, and at the very end.
    for resume_from in [10, 45, 45 + 1500, 45 + 2000, total - 5, total] {
        let (text, code) = tell(&mut client, request("", resume_from)).await.unwrap();
        assert!(
            text == whole[resume_from as usize..],
            "resuming from {resume_from}"
        );
        assert_eq!(code, Code::Cancelled);
    }
}

#[tokio::test]
async fn resuming_past_the_greeting_skips_the_think_time() {
    let config = Config {
        think_time: Duration::from_secs(3600),
        ..fast_config()
    };
    let server = TestServer::start(config).await.unwrap();
    let mut client = client(&server).await;
    let mut stream = client
        .tell_story(request("", 45))
        .await
        .unwrap()
        .into_inner();
    let first = timeout(PATIENCE, stream.message())
        .await
        .expect("no think-time")
        .unwrap()
        .unwrap();
    assert_eq!(first.offset, 45);
    assert!(first.text_chunk.starts_with(b"[Alice's Adventures"));
}

#[tokio::test]
async fn resuming_past_the_end_is_out_of_range() {
    let server = TestServer::start(fast_config()).await.unwrap();
    let mut client = client(&server).await;
    let total = whole_story().len() as u64;
    let status = client.tell_story(request("", total + 1)).await.unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange);
    assert!(
        status.message().contains(&total.to_string()),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn the_first_message_of_every_call_names_the_text_and_no_other_does() {
    let server = TestServer::start(fast_config()).await.unwrap();
    let mut client = client(&server).await;
    for resume_from in [0, 20, 5000] {
        let mut stream = client
            .tell_story(request("", resume_from))
            .await
            .unwrap()
            .into_inner();
        let first = stream.message().await.unwrap().unwrap();
        // The SHA-256 of stories/alice.txt, as `sha256sum` prints it, cut
        // to 128 bits.
        assert_eq!(
            first.story_version, "sha256:84157c64cf991c7cd7f3fc39aa8fddef",
            "from byte {resume_from}"
        );
        while let Ok(Some(message)) = stream.message().await {
            assert_eq!(message.story_version, "", "only the first message says");
        }
    }
}

#[tokio::test]
async fn a_resume_against_a_text_that_changed_is_aborted_not_served() {
    let (dir, config) = library();
    let server = TestServer::start(config).await.unwrap();
    let mut client = client(&server).await;
    let mut stream = client
        .tell_story(request("snark.txt", 0))
        .await
        .unwrap()
        .into_inner();
    let version = stream.message().await.unwrap().unwrap().story_version;
    drop(stream);

    // The same text: resumed.
    let same = TellStoryRequest {
        story_version: version.clone(),
        ..request("snark.txt", 10)
    };
    let (text, _) = tell(&mut client, same.clone()).await.unwrap();
    assert_eq!(text, whole_story_of(SNARK)[10..]);

    // The file is replaced: the same request is refused.
    dir.write("snark.txt", "The Hunting of the Snark, revised\n");
    let status = client.tell_story(same).await.unwrap_err();
    assert_eq!(status.code(), Code::Aborted, "{status:?}");
    assert!(
        status.message().contains("has changed"),
        "{}",
        status.message()
    );
}
