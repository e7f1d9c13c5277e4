//! `assistant-client bench`: drives a server with many concurrent story
//! calls and reports throughput and latency.
//!
//! Callers share a few connections (HTTP/2 multiplexes calls on each), read
//! every message as fast as it arrives (no typing), and check that every
//! call delivered every byte: a fast wrong answer is not a result.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use assistant_proto::{
    assistant::{
        ListStoriesRequest, TellStoryRequest, assistant_service_client::AssistantServiceClient,
    },
    codes::code_name,
};
use tokio::io::AsyncWrite;
use tonic::{Code, Status};

pub use self::report::{Percentiles, Report};
use self::report::{Tally, print_report, report};
use crate::{
    ClientError,
    call::{self, CallArgs, Ending},
    connect::{self, Channel, ConnectArgs},
    reassembly::Reassembly,
};

mod report;

/// What to run.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Calls in flight at once.
    #[arg(long, allow_negative_numbers = true, default_value_t = 16, value_name = "CALLS", value_parser = clap::value_parser!(u64).range(1..))]
    pub concurrency: u64,

    /// Connections the calls are spread over.
    #[arg(long, allow_negative_numbers = true, default_value_t = 4, value_name = "CONNECTIONS", value_parser = clap::value_parser!(u64).range(1..))]
    pub connections: u64,

    /// Stop after this many calls.
    #[arg(
        long,
        allow_negative_numbers = true,
        value_name = "CALLS",
        conflicts_with = "duration"
    )]
    pub calls: Option<u64>,

    /// Stop after this long (10 s if neither this nor --calls is given).
    #[arg(long, allow_negative_numbers = true, value_name = "SECONDS", value_parser = assistant_proto::seconds::parse)]
    pub duration: Option<Duration>,

    /// Also write the results to this file as JSON.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,

    /// The story to ask for; the server's default if not given.
    #[arg(long, default_value = "", hide_default_value = true)]
    pub story: String,
}

/// When a run stops.
#[derive(Clone)]
enum Budget {
    Calls(Arc<AtomicU64>),
    Until(Instant),
}

impl Budget {
    /// Takes one call from the budget, if any is left.
    fn take(&self, stop: &AtomicBool) -> bool {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        match self {
            Budget::Calls(left) => left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok(),
            Budget::Until(end) => Instant::now() < *end,
        }
    }
}

/// Runs the benchmark against the server `connect` names, printing the
/// report to `out`.
pub async fn run<W: AsyncWrite + Unpin>(
    connect: &ConnectArgs,
    options: &CallArgs,
    args: &BenchArgs,
    mut out: W,
    interrupt: impl Future<Output = ()>,
) -> Result<Ending, ClientError> {
    let mut channels = Vec::new();
    for _ in 0..args.connections {
        channels.push(connect::connect(connect, options.timeout).await?.channel);
    }
    let expected = Arc::new(Expected::from_server(
        expected_bytes(channels[0].clone(), &args.story).await,
    ));

    let budget = match (args.calls, args.duration) {
        (Some(calls), _) => Budget::Calls(Arc::new(AtomicU64::new(calls))),
        (None, duration) => {
            Budget::Until(Instant::now() + duration.unwrap_or(Duration::from_secs(10)))
        }
    };
    let progress = progress_bar(args);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..args.concurrency)
        .map(|i| {
            let channel = channels[(i % args.connections) as usize].clone();
            let (budget, stop, progress) = (budget.clone(), Arc::clone(&stop), progress.clone());
            let (options, story) = (options.clone(), args.story.clone());
            let expected = Arc::clone(&expected);
            tokio::spawn(async move {
                caller(
                    channel, &options, story, &expected, budget, &stop, &progress,
                )
                .await
            })
        })
        .collect();

    let mut tally = Tally::new();
    let joined = async {
        for worker in workers {
            if let Ok(done) = worker.await {
                tally.merge(done);
            }
        }
    };
    tokio::select! {
        () = joined => {}
        () = interrupt => {
            stop.store(true, Ordering::Relaxed);
            progress.abandon();
            return Ok(Ending::CancelledByUser);
        }
    }
    progress.finish_and_clear();

    let report = report(&tally, started.elapsed(), &expected);
    print_report(&mut out, &report)
        .await
        .map_err(ClientError::Output)?;
    if let Some(path) = &args.json {
        let json = serde_json::to_vec_pretty(&report)
            .map_err(|err| ClientError::Setup(err.to_string()))?;
        std::fs::write(path, json)
            .map_err(|err| ClientError::Setup(format!("cannot write {}: {err}", path.display())))?;
    }
    if report.calls_failed > 0 {
        let status = Status::unknown(format!("{} of the calls failed", report.calls_failed));
        let ending = Ending::Failed(status);
        ending.report();
        return Ok(ending);
    }
    Ok(Ending::Finished)
}

/// The text bytes a call must deliver: greeting, story and ending. `None`
/// if the server cannot say how long the story is.
async fn expected_bytes(channel: Channel, story: &str) -> Option<u64> {
    let stories = AssistantServiceClient::new(channel)
        .list_stories(ListStoriesRequest {})
        .await
        .ok()?
        .into_inner()
        .stories;
    let name = if story.is_empty() { "alice.txt" } else { story };
    let size = stories.iter().find(|s| s.name == name)?.size;
    Some(assistant_proto::sequence::total_len("bench", "bench", size))
}

/// How many text bytes every call must deliver.
#[derive(Debug)]
struct Expected {
    bytes: std::sync::OnceLock<u64>,
    /// Whether the server said so (through ListStories); otherwise the
    /// first call that ends well sets it, and every other call must match.
    from_server: bool,
}

impl Expected {
    fn from_server(bytes: Option<u64>) -> Self {
        Self {
            bytes: bytes.map(std::sync::OnceLock::from).unwrap_or_default(),
            from_server: bytes.is_some(),
        }
    }

    /// Whether a call that delivered `bytes` delivered them all.
    fn matches(&self, bytes: u64) -> bool {
        *self.bytes.get_or_init(|| bytes) == bytes
    }
}

/// One caller: calls until the budget runs out.
async fn caller(
    channel: Channel,
    options: &CallArgs,
    story: String,
    expected: &Expected,
    budget: Budget,
    stop: &AtomicBool,
    progress: &indicatif::ProgressBar,
) -> Tally {
    let mut client = call::compressed!(AssistantServiceClient::new(channel), options);
    let mut tally = Tally::new();
    while budget.take(stop) {
        let request = TellStoryRequest {
            user_name: "bench".into(),
            institution: "bench".into(),
            story: story.clone(),
            ..TellStoryRequest::default()
        };
        let started = Instant::now();
        let mut first = None;
        // Every message is checked as the story client checks it.
        let mut received = Reassembly::default();
        let ended = async {
            let mut stream = client
                .tell_story(call::request(request, options.timeout))
                .await?
                .into_inner();
            while let Some(message) = stream.message().await? {
                first.get_or_insert_with(|| started.elapsed());
                received.accept(&message)?;
                tally.messages += 1;
            }
            Ok::<_, Status>(())
        }
        .await;
        let elapsed = started.elapsed();
        let bytes = received.received();
        tally.text_bytes += bytes;
        match ended.err().map(|status| status.code()) {
            None | Some(Code::Cancelled) if expected.matches(bytes) => {
                tally.ok += 1;
                let _ = tally.whole_call.record(elapsed.as_micros().max(1) as u64);
                if let Some(first) = first {
                    let _ = tally.first_message.record(first.as_micros().max(1) as u64);
                }
            }
            None | Some(Code::Cancelled) => tally.fail("INCOMPLETE"),
            Some(code) => tally.fail(code_name(code)),
        }
        progress.inc(1);
    }
    tally
}

fn progress_bar(args: &BenchArgs) -> indicatif::ProgressBar {
    let bar = match args.calls {
        Some(calls) => indicatif::ProgressBar::new(calls),
        None => indicatif::ProgressBar::new_spinner(),
    };
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr_with_hz(4));
    let template = if args.calls.is_some() {
        "{bar:40} {pos}/{len} calls {per_sec} {elapsed}"
    } else {
        "{spinner} {pos} calls {per_sec} {elapsed}"
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}
