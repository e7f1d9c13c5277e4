//! The `assistant-server` binary itself: signals, exit codes and log
//! formats, as an operator meets them.

#![cfg(unix)]

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use assistant_proto::hello_world::{HelloRequest, greeter_client::GreeterClient};

const PATIENCE: Duration = Duration::from_secs(20);

/// A running `assistant-server`, and the lines it logs.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_assistant-server"))
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .env_remove("RUST_LOG")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                if tx.send(line.unwrap_or_default()).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a logged line containing `needle`.
    fn wait_for(&mut self, needle: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(PATIENCE)
                .unwrap_or_else(|_| panic!("no line containing {needle:?} in {:#?}", self.seen));
            self.seen.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
    }

    /// The port from the `Server started on port N` line.
    fn port(&mut self) -> u16 {
        let line = self.wait_for("Server started on port ");
        let digits: String = line
            .split("Server started on port ")
            .nth(1)
            .unwrap()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().unwrap()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn exit_code(&mut self) -> Option<i32> {
        let deadline = std::time::Instant::now() + PATIENCE;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        panic!("the server did not exit");
    }
}

async fn say_hello(port: u16) -> String {
    let mut client = GreeterClient::connect(format!("http://127.0.0.1:{port}"))
        .await
        .unwrap();
    client
        .say_hello(HelloRequest {
            name: "Ferris".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .response_text
}

#[tokio::test]
async fn sigterm_and_sigint_stop_the_server_with_exit_code_0_and_a_summary() {
    for signal in ["TERM", "INT"] {
        let mut server = Running::start(&[]);
        let port = server.port();
        assert_eq!(say_hello(port).await, "Hello, Ferris!");
        server.signal(signal);
        server.wait_for("Shutting down");
        server.wait_for("Server stopped: 1 call served, 0 ended by shutdown");
        assert_eq!(server.exit_code(), Some(0), "after SIG{signal}");
    }
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_with_the_calls_fields() {
    let mut server = Running::start(&["--log-format", "json"]);
    let port = server.port();
    say_hello(port).await;
    let line = server.wait_for("Call ended");
    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["level"], "INFO");
    assert_eq!(event["fields"]["message"], "Call ended");
    assert_eq!(event["fields"]["code"], "OK");
    assert_eq!(event["fields"]["messages"], 1);
    assert_eq!(event["span"]["method"], "/Greeter/SayHello");
    assert!(
        event["span"]["peer"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    server.signal("TERM");
    assert_eq!(server.exit_code(), Some(0));
}

#[test]
fn a_missing_story_file_exits_1_naming_the_path() {
    let output = Command::new(env!("CARGO_BIN_EXE_assistant-server"))
        .args(["--addr", "127.0.0.1:0", "--story", "no/such/story.txt"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no/such/story.txt"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn text_logs_give_a_calls_context_once_then_its_number() {
    use assistant_proto::assistant::{
        TellStoryRequest, assistant_service_client::AssistantServiceClient,
    };
    let mut server = Running::start(&["--think-time", "0", "--chunk-delay", "0"]);
    let port = server.port();
    let mut client = AssistantServiceClient::connect(format!("http://127.0.0.1:{port}"))
        .await
        .unwrap();
    let mut stream = client
        .tell_story(TellStoryRequest {
            user_name: "Peter S".into(),
            institution: "SUSTech".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    while stream.message().await.is_ok_and(|m| m.is_some()) {}

    let first = server.wait_for("Received story-telling request from Peter S, SUSTech.");
    assert!(
        first.contains(" INFO call{id=")
            && first.contains(" method=/assistant.AssistantService/TellStory peer=127.0.0.1:")
            && first.contains(" user=Peter S}: Received"),
        "{first}"
    );
    let id = first
        .split("call{id=")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    let read = server.wait_for("Read 1024 bytes: [Alice's A ...");
    assert!(
        read.contains(&format!(" INFO call#{id}: Read 1024 bytes")),
        "{read}"
    );
    let ended = server.wait_for("Call ended");
    assert!(
        ended.contains(&format!(
            "call#{id}: Call ended code=CANCELLED messages=144 "
        )),
        "{ended}"
    );
    assert!(
        !ended.contains('\u{1b}'),
        "no colour codes when stderr is not a terminal: {ended}"
    );
    server.signal("TERM");
    assert_eq!(server.exit_code(), Some(0));
}

/// The names of the threads that serve connections, read from `/proc`.
#[cfg(target_os = "linux")]
fn connection_threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter(|task| {
            let comm = std::fs::read_to_string(task.as_ref().unwrap().path().join("comm"));
            comm.is_ok_and(|name| name.starts_with("connections-"))
        })
        .count()
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn connections_are_served_on_one_thread_a_core_or_as_many_as_threads_says() {
    let cores = std::thread::available_parallelism().unwrap().get();
    for (args, threads) in [(&[][..], cores), (&["--threads", "3"][..], 3)] {
        let mut server = Running::start(args);
        let port = server.port();
        assert_eq!(say_hello(port).await, "Hello, Ferris!", "{args:?}");
        assert_eq!(connection_threads(server.child.id()), threads, "{args:?}");
        server.signal("TERM");
        assert_eq!(server.exit_code(), Some(0), "{args:?}");
    }
}
