//! The client prints exactly what any server sends, or says it could not:
//! a server without offsets (as the tutorial's) is read in order, and any
//! gap, step back, changed resend or changed story ends in DATA_LOSS and
//! exit 1, never in exit 0.

use std::{
    pin::Pin,
    sync::{Arc, Mutex},
    time::Duration,
};

use assistant_client::{Cli, Ending};
use assistant_proto::assistant::{
    ListStoriesRequest, ListStoriesResponse, TellStoryRequest, TellStoryResponse,
    assistant_service_server::{AssistantService, AssistantServiceServer},
};
use assistant_server::Config;
use assistant_test_support::{LogCapture, PATIENCE, Tap, TestServer, WriteFile, fixtures};
use tokio::time::timeout;
use tonic::{Code, Request, Response, Status};

/// What a stand-in server sends on one call: messages, then a status.
#[derive(Clone)]
struct Attempt {
    messages: Vec<(u64, &'static str, &'static str)>,
    ending: Status,
}

/// A story server that answers its calls from a script, one attempt per
/// call, and records the requests.
#[derive(Clone)]
struct Scripted {
    attempts: Arc<Mutex<Vec<Attempt>>>,
    requests: Arc<Mutex<Vec<TellStoryRequest>>>,
}

impl Scripted {
    fn new(attempts: Vec<Attempt>) -> Self {
        Self {
            attempts: Arc::new(Mutex::new(attempts)),
            requests: Arc::default(),
        }
    }
}

type Messages = Pin<Box<dyn tokio_stream::Stream<Item = Result<TellStoryResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AssistantService for Scripted {
    type TellStoryStream = Messages;

    async fn tell_story(
        &self,
        request: Request<TellStoryRequest>,
    ) -> Result<Response<Messages>, Status> {
        self.requests.lock().unwrap().push(request.into_inner());
        let mut attempts = self.attempts.lock().unwrap();
        if attempts.is_empty() {
            return Err(Status::internal("the script has no more attempts"));
        }
        let attempt = attempts.remove(0);
        let mut items: Vec<_> = attempt
            .messages
            .into_iter()
            .map(|(offset, text, version)| {
                Ok(TellStoryResponse {
                    text_chunk: text.into(),
                    offset,
                    story_version: version.into(),
                })
            })
            .collect();
        items.push(Err(attempt.ending));
        Ok(Response::new(Box::pin(tokio_stream::iter(items))))
    }

    async fn list_stories(
        &self,
        _: Request<ListStoriesRequest>,
    ) -> Result<Response<ListStoriesResponse>, Status> {
        Err(Status::unimplemented(
            "the tutorial's server has no ListStories",
        ))
    }
}

/// Runs the client against `attempts`; returns what it printed, how it
/// ended, what it logged, and what it asked for.
async fn run(attempts: Vec<Attempt>) -> (Vec<u8>, Ending, Vec<String>, Vec<TellStoryRequest>) {
    let (logs, _guard) = LogCapture::install();
    let server = Scripted::new(attempts);
    let addr = assistant_test_support::serve(AssistantServiceServer::new(server.clone())).await;
    let cli = Cli::try_parse_args([
        "assistant-client",
        "--server",
        &addr.to_string(),
        "--step-sec",
        "0",
        "--retry-backoff",
        "0.001",
    ])
    .unwrap();
    let mut out = Vec::new();
    let ending = timeout(
        PATIENCE,
        assistant_client::run(cli, &mut out, std::future::pending()),
    )
    .await
    .unwrap()
    .unwrap();
    let requests = server.requests.lock().unwrap().clone();
    (out, ending, logs.messages(), requests)
}

fn finished() -> Status {
    Status::cancelled("story finished")
}

fn lost() -> Status {
    Status::unavailable("connection lost")
}

/// Asserts that `ending` is DATA_LOSS with a message containing `why`.
fn assert_data_loss(ending: &Ending, why: &str) {
    let Ending::Failed(status) = ending else {
        panic!("expected DATA_LOSS, got {ending:?}");
    };
    assert_eq!(status.code(), Code::DataLoss, "{status:?}");
    assert!(status.message().contains(why), "{}", status.message());
    assert_eq!(ending.exit_code(), 1);
}

#[tokio::test]
async fn a_server_without_offsets_gets_every_byte_printed() {
    // The tutorial's server: offset and story_version are not in its
    // contract, so every message reads as offset 0.
    let (out, ending, logs, _) = run(vec![Attempt {
        messages: vec![
            (0, "Hi Peter S from SUSTech! Here's your story:\n\n", ""),
            (0, "Once upon a time", ""),
            (0, " there was a story.\n", ""),
            (0, "\nThat's it! Hope you like the story~\n", ""),
        ],
        ending: finished(),
    }])
    .await;
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "Hi Peter S from SUSTech! Here's your story:\n\nOnce upon a time there was a story.\n\
         \nThat's it! Hope you like the story~\n"
    );
    assert!(matches!(ending, Ending::CancelledByServer), "{ending:?}");
    assert!(logs.contains(&"Stream cancelled by server. Exiting gracefully.".to_owned()));
}

#[tokio::test]
async fn a_lost_call_to_a_server_without_offsets_fails_rather_than_print_twice() {
    let (out, ending, logs, requests) = run(vec![
        Attempt {
            messages: vec![(0, "Hi there, ", "")],
            ending: lost(),
        },
        Attempt {
            messages: vec![(0, "Hi there, and again", "")],
            ending: finished(),
        },
    ])
    .await;
    assert_eq!(out, b"Hi there, ");
    let Ending::Failed(status) = &ending else {
        panic!("expected a failure, got {ending:?}");
    };
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("cannot resume"),
        "{}",
        status.message()
    );
    assert_eq!(requests.len(), 1, "no second attempt");
    assert!(!logs.iter().any(|m| m.starts_with("Connection lost")));
}

#[tokio::test]
async fn an_offset_that_skips_ahead_is_data_loss() {
    let (out, ending, _, _) = run(vec![Attempt {
        messages: vec![(0, "abc", "v1"), (5, "fgh", "")],
        ending: finished(),
    }])
    .await;
    assert_eq!(out, b"abc");
    assert_data_loss(&ending, "skipped from byte 3 to byte 5");
}

#[tokio::test]
async fn an_offset_that_goes_backwards_is_data_loss() {
    let (out, ending, _, _) = run(vec![Attempt {
        messages: vec![(0, "abcdef", "v1"), (2, "cdefgh", "")],
        ending: finished(),
    }])
    .await;
    assert_eq!(out, b"abcdef");
    assert_data_loss(&ending, "went back from byte 6 to byte 2");
}

#[tokio::test]
async fn a_resumed_call_that_resends_different_bytes_is_data_loss() {
    let (out, ending, _, requests) = run(vec![
        Attempt {
            messages: vec![(0, "abcdef", "v1")],
            ending: lost(),
        },
        Attempt {
            messages: vec![(4, "EFgh", "v1")],
            ending: finished(),
        },
    ])
    .await;
    assert_eq!(out, b"abcdef");
    assert_eq!(
        (requests[1].resume_from, requests[1].story_version.as_str()),
        (6, "v1")
    );
    assert_data_loss(&ending, "differ from those printed");
}

#[tokio::test]
async fn a_resumed_call_that_resends_the_same_bytes_prints_them_once() {
    let (out, ending, _, _) = run(vec![
        Attempt {
            messages: vec![(0, "abcdef", "v1")],
            ending: lost(),
        },
        Attempt {
            messages: vec![(4, "efgh", "v1")],
            ending: finished(),
        },
    ])
    .await;
    assert_eq!(out, b"abcdefgh");
    assert!(matches!(ending, Ending::CancelledByServer), "{ending:?}");
}

#[tokio::test]
async fn a_resumed_call_of_another_version_is_data_loss() {
    let (out, ending, _, _) = run(vec![
        Attempt {
            messages: vec![(0, "old text ", "v1")],
            ending: lost(),
        },
        Attempt {
            messages: vec![(9, "new text", "v2")],
            ending: finished(),
        },
    ])
    .await;
    assert_eq!(out, b"old text ");
    assert_data_loss(&ending, "the story changed between attempts");
}

#[tokio::test]
async fn a_story_file_replaced_while_the_client_waits_to_resume_is_data_loss() {
    let (logs, _guard) = LogCapture::install();
    let dir = tempfile::tempdir().unwrap();
    let old = "The old story.\n".repeat(4000);
    dir.write("alice.txt", &old);
    let config = || Config {
        stories_dir: Some(dir.path().to_owned()),
        chunk_delay: Duration::from_millis(2),
        ..fixtures::fast_config()
    };
    let server = TestServer::start(config()).await.unwrap();
    let addr = server.addr;
    let cli = Cli::try_parse_args([
        "assistant-client",
        "--server",
        &server.url(),
        "--buffer-size",
        "1024",
        "--step-sec",
        "0",
        "--retry-backoff",
        "0.01",
    ])
    .unwrap();
    let tap = Tap::new();
    let client = tokio::spawn(assistant_client::run(
        cli,
        tap.clone(),
        std::future::pending(),
    ));

    timeout(PATIENCE, tap.written(10_000)).await.unwrap();
    server.kill_connections();
    server.stop().await.unwrap();
    dir.write("alice.txt", "The new story.\n".repeat(4000));
    let _server = TestServer::start_at(addr, config()).await.unwrap();

    let ending = timeout(PATIENCE, client).await.unwrap().unwrap().unwrap();
    assert_data_loss(&ending, "changed");
    let out = tap.bytes();
    let whole_old = format!("{}{old}{}", fixtures::GREETING, fixtures::ENDING);
    assert!(
        whole_old.as_bytes().starts_with(&out),
        "everything printed is the old story's, and nothing of the new"
    );
    assert!(
        logs.messages()
            .iter()
            .any(|m| m.starts_with("Connection lost")),
        "the client tried to resume"
    );
}

#[tokio::test]
async fn bench_checks_the_bytes_of_a_server_without_offsets_as_the_story_does() {
    let text = "Once upon a time there was a story.\n";
    let attempts = (0..6)
        .map(|_| Attempt {
            messages: vec![(0, "Hi bench! ", ""), (0, text, "")],
            ending: finished(),
        })
        .collect();
    let server = Scripted::new(attempts);
    let addr = assistant_test_support::serve(AssistantServiceServer::new(server)).await;
    let cli = Cli::try_parse_args([
        "assistant-client",
        "--server",
        &addr.to_string(),
        "bench",
        "--calls",
        "6",
        "--concurrency",
        "2",
        "--connections",
        "1",
    ])
    .unwrap();
    let mut out = Vec::new();
    let ending = timeout(
        PATIENCE,
        assistant_client::run(cli, &mut out, std::future::pending()),
    )
    .await
    .unwrap()
    .unwrap();
    let report = String::from_utf8(out).unwrap();
    assert!(matches!(ending, Ending::Finished), "{ending:?}\n{report}");
    let bytes = "Hi bench! ".len() + text.len();
    assert!(
        report.contains(&format!(
            "every call delivered the same {bytes} bytes of text"
        )),
        "{report}"
    );
}
