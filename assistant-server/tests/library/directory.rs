//! Serving a directory of stories: every `.txt` by name, listed, read
//! once however many ask, and nothing outside it, however it is named.

use super::*;

#[tokio::test]
async fn a_directory_serves_every_txt_file_by_name_and_lists_them() {
    let (logs, _guard) = LogCapture::install();
    let (dir, config) = library();
    let server = TestServer::start(config).await.unwrap();
    let mut client = client(&server).await;

    let listed = client
        .list_stories(ListStoriesRequest {})
        .await
        .unwrap()
        .into_inner()
        .stories;
    let summary: Vec<(String, u64, String)> = listed
        .into_iter()
        .map(|s| (s.name, s.size, s.title))
        .collect();
    assert_eq!(
        summary,
        [
            (
                "alice.txt".to_owned(),
                ALICE.len() as u64,
                "Alice's short story".to_owned()
            ),
            (
                "snark.txt".to_owned(),
                SNARK.len() as u64,
                "The Hunting of the Snark".to_owned()
            ),
        ]
    );

    let (text, _) = tell(&mut client, request("snark.txt", 0)).await.unwrap();
    assert_eq!(text, format!("{GREETING}{SNARK}{ENDING}").as_bytes());
    let (text, _) = tell(&mut client, request("", 0)).await.unwrap();
    assert!(
        text.starts_with(format!("{GREETING}Alice's short story").as_bytes()),
        "an empty name means alice.txt"
    );

    // Added while the server runs: served and listed at once.
    dir.write("jabberwocky.txt", "Jabberwocky\n'Twas brillig.\n");
    let (text, _) = tell(&mut client, request("jabberwocky.txt", 0))
        .await
        .unwrap();
    assert!(text.ends_with(format!("'Twas brillig.\n{ENDING}").as_bytes()));
    let listed = client
        .list_stories(ListStoriesRequest {})
        .await
        .unwrap()
        .into_inner()
        .stories;
    assert_eq!(listed.len(), 3);

    let messages = logs.messages();
    assert!(
        messages.iter().any(|m| m == "Start streaming snark.txt"),
        "{messages:#?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m == "Finishes streaming jabberwocky.txt for Peter S from SUSTech.")
    );
}

#[tokio::test]
async fn an_unknown_story_is_not_found_and_lists_what_exists() {
    let (_dir, config) = library();
    let server = TestServer::start(config).await.unwrap();
    let mut client = client(&server).await;
    for missing in ["nope.txt", "notes.md"] {
        let status = client.tell_story(request(missing, 0)).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{missing}");
        assert!(
            status.message().contains("alice.txt, snark.txt"),
            "{}",
            status.message()
        );
    }
    // The built-in library has just the one story.
    let builtin = TestServer::start(fast_config()).await.unwrap();
    let status = AssistantServiceClient::connect(builtin.url())
        .await
        .unwrap()
        .tell_story(request("snark.txt", 0))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(
        status.message().contains("alice.txt"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn nothing_outside_the_directory_is_ever_served() {
    let (dir, config) = library();
    let outside = tempfile::tempdir().unwrap();
    outside.write("secret.txt", "do not serve\n");
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(
            outside.path().join("secret.txt"),
            dir.path().join("escape.txt"),
        )
        .unwrap();
        std::os::unix::fs::symlink(dir.path().join("snark.txt"), dir.path().join("alias.txt"))
            .unwrap();
    }
    let server = TestServer::start(config).await.unwrap();
    let mut client = client(&server).await;
    let secret_path = outside.path().join("secret.txt").display().to_string();
    for bad in [
        "..",
        "../secret.txt",
        "/etc/passwd",
        secret_path.as_str(),
        "sub/alice.txt",
        "..\\alice.txt",
        ".hidden.txt",
        "alice.txt\0",
        "escape.txt",
    ] {
        if bad == "escape.txt" && !cfg!(unix) {
            continue;
        }
        let status = client.tell_story(request(bad, 0)).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}: {status:?}");
    }
    #[cfg(unix)]
    {
        // A symlink that stays inside is just another name.
        let (text, _) = tell(&mut client, request("alias.txt", 0)).await.unwrap();
        assert!(text.windows(6).any(|w| w == b"Snark!"));
        let listed = client
            .list_stories(ListStoriesRequest {})
            .await
            .unwrap()
            .into_inner()
            .stories;
        assert!(!listed.iter().any(|s| s.name == "escape.txt"), "{listed:?}");
    }
}

#[tokio::test]
async fn a_story_asked_for_by_many_calls_at_once_is_read_once() {
    let (logs, _guard) = LogCapture::install_at(tracing::Level::DEBUG);
    let (dir, config) = library();
    dir.write("long.txt", "All work and no play.\n".repeat(50_000));
    let server = TestServer::start(config).await.unwrap();
    let client = client(&server).await;
    let calls = (0..20).map(|_| {
        let mut client = client.clone();
        async move { tell(&mut client, request("long.txt", 0)).await.unwrap() }
    });
    let told = futures_join_all(calls).await;
    assert!(told.iter().all(|(text, _)| text.len() > 1_100_000));
    let reads = logs
        .messages()
        .iter()
        .filter(|m| m.starts_with("Read long.txt from the stories directory"))
        .count();
    assert_eq!(reads, 1, "{:#?}", logs.messages());
}

/// Runs every future at once and collects their outputs.
async fn futures_join_all<F: Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let tasks: Vec<_> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::new();
    for task in tasks {
        outputs.push(task.await.unwrap());
    }
    outputs
}

#[tokio::test]
async fn stories_over_the_cache_budget_are_still_told_and_over_the_size_limit_are_refused() {
    let (dir, config) = library();
    dir.write("big.txt", "x".repeat(5_000));
    let config = Config {
        story_cache: 100,
        max_story_size: 4_000,
        ..config
    };
    let server = TestServer::start(config).await.unwrap();
    let mut client = client(&server).await;
    for _ in 0..2 {
        let (text, _) = tell(&mut client, request("snark.txt", 0)).await.unwrap();
        assert_eq!(text, whole_story_of(SNARK));
    }
    let status = client.tell_story(request("big.txt", 0)).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("--max-story-size"),
        "{}",
        status.message()
    );
}

#[cfg(unix)]
#[tokio::test]
async fn a_fifo_in_the_directory_is_neither_listed_nor_read() {
    let (dir, config) = library();
    let fifo = std::ffi::CString::new(dir.path().join("pipe.txt").to_str().unwrap()).unwrap();
    // SAFETY: `fifo` is a valid C string, and mkfifo only reads it.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let mut server = TestServer::start(config).await.unwrap();
    let mut client = client(&server).await;
    let status = timeout(PATIENCE, client.tell_story(request("pipe.txt", 0)))
        .await
        .expect("answered at once, not stuck waiting for a writer")
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let listed = client
        .list_stories(ListStoriesRequest {})
        .await
        .unwrap()
        .into_inner()
        .stories;
    assert!(listed.iter().all(|story| story.name != "pipe.txt"));
    server.begin_shutdown();
    timeout(PATIENCE, server.stopped()).await.unwrap().unwrap();
}

#[tokio::test]
async fn not_found_in_a_big_directory_names_twenty_stories_and_counts_the_rest() {
    let (dir, config) = library();
    for i in 0..300 {
        dir.write(&format!("story-{i:03}.txt"), "A story.\n");
    }
    let server = TestServer::start(config).await.unwrap();
    let status = client(&server)
        .await
        .tell_story(request("missing.txt", 0))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(
        status.message().ends_with("and 282 more (see ListStories)"),
        "{}",
        status.message()
    );
}
