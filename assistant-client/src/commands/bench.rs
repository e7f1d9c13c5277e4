//! `assistant-client bench`: drives a server with many concurrent story
//! calls and reports throughput and latency.
//!
//! Callers share a few connections (HTTP/2 multiplexes calls on each), read
//! every message as fast as it arrives (no typing), and check that every
//! call delivered every byte: a fast wrong answer is not a result.

use std::{
    collections::BTreeMap,
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
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tonic::{Code, Status};

use crate::{
    ClientError,
    call::{self, CallArgs, Ending},
    connect::{self, Channel, ConnectArgs},
    reassembly::Reassembly,
};

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

/// The results of a run.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Seconds the run took.
    pub seconds: f64,
    /// Calls that delivered every byte and ended well.
    pub calls_ok: u64,
    /// Calls that ended with an error, or delivered the wrong bytes.
    pub calls_failed: u64,
    /// Completed calls per second.
    pub calls_per_second: f64,
    /// Megabytes (10^6) of story text per second.
    pub megabytes_per_second: f64,
    /// Messages per second.
    pub messages_per_second: f64,
    /// Text bytes each call must deliver, when known.
    pub expected_bytes_per_call: Option<u64>,
    /// Whether the server gave that figure (ListStories); if not, it is
    /// what the first call delivered, and every call had to match it.
    pub expected_bytes_from_server: bool,
    /// Time to the first message, in milliseconds.
    pub first_message_ms: Percentiles,
    /// Time for the whole call, in milliseconds.
    pub whole_call_ms: Percentiles,
    /// Failed calls by status code; `INCOMPLETE` for wrong byte counts.
    pub errors: BTreeMap<String, u64>,
}

/// Latency percentiles, in milliseconds.
#[derive(Debug, Serialize)]
pub struct Percentiles {
    /// The median.
    pub p50: f64,
    /// The 90th percentile.
    pub p90: f64,
    /// The 99th percentile.
    pub p99: f64,
    /// The slowest.
    pub max: f64,
    /// The mean.
    pub mean: f64,
}

impl Percentiles {
    fn of(histogram: &Histogram<u64>) -> Self {
        let ms = |micros: u64| micros as f64 / 1000.0;
        Self {
            p50: ms(histogram.value_at_quantile(0.50)),
            p90: ms(histogram.value_at_quantile(0.90)),
            p99: ms(histogram.value_at_quantile(0.99)),
            max: ms(histogram.max()),
            mean: histogram.mean() / 1000.0,
        }
    }
}

/// One caller's tallies, merged at the end.
struct Tally {
    ok: u64,
    failed: u64,
    text_bytes: u64,
    messages: u64,
    first_message: Histogram<u64>,
    whole_call: Histogram<u64>,
    errors: BTreeMap<String, u64>,
}

impl Tally {
    fn new() -> Self {
        // Microseconds, up to an hour, three significant figures.
        let histogram =
            || Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds");
        Self {
            ok: 0,
            failed: 0,
            text_bytes: 0,
            messages: 0,
            first_message: histogram(),
            whole_call: histogram(),
            errors: BTreeMap::new(),
        }
    }

    fn merge(&mut self, other: Self) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.text_bytes += other.text_bytes;
        self.messages += other.messages;
        let _ = self.first_message.add(&other.first_message);
        let _ = self.whole_call.add(&other.whole_call);
        for (code, count) in other.errors {
            *self.errors.entry(code).or_default() += count;
        }
    }

    fn fail(&mut self, what: &str) {
        self.failed += 1;
        *self.errors.entry(what.to_owned()).or_default() += 1;
    }
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

fn report(tally: &Tally, elapsed: Duration, expected: &Expected) -> Report {
    let seconds = elapsed.as_secs_f64().max(1e-9);
    Report {
        seconds,
        calls_ok: tally.ok,
        calls_failed: tally.failed,
        calls_per_second: (tally.ok + tally.failed) as f64 / seconds,
        megabytes_per_second: tally.text_bytes as f64 / 1e6 / seconds,
        messages_per_second: tally.messages as f64 / seconds,
        expected_bytes_per_call: expected.bytes.get().copied(),
        expected_bytes_from_server: expected.from_server,
        first_message_ms: Percentiles::of(&tally.first_message),
        whole_call_ms: Percentiles::of(&tally.whole_call),
        errors: tally.errors.clone(),
    }
}

async fn print_report<W: AsyncWrite + Unpin>(out: &mut W, report: &Report) -> std::io::Result<()> {
    let line = |name: &str, p: &Percentiles| {
        format!(
            "{name:<14} p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms  mean {:.3} ms\n",
            p.p50, p.p90, p.p99, p.max, p.mean
        )
    };
    let mut text = format!(
        "calls          {} ok, {} failed, in {:.2} s\n\
         throughput     {:.1} calls/s  {:.2} MB/s  {:.0} messages/s\n",
        report.calls_ok,
        report.calls_failed,
        report.seconds,
        report.calls_per_second,
        report.megabytes_per_second,
        report.messages_per_second
    );
    text += &line("first message", &report.first_message_ms);
    text += &line("whole call", &report.whole_call_ms);
    match (
        report.expected_bytes_per_call,
        report.expected_bytes_from_server,
    ) {
        (Some(bytes), true) => {
            text +=
                &format!("checked        every call delivered {bytes} bytes of text, in order\n")
        }
        (Some(bytes), false) => {
            text += &format!(
                "checked        every call delivered the same {bytes} bytes of text, in order \
                 (the server did not say how long the story is)\n"
            )
        }
        (None, _) => text += "checked        no call ended well\n",
    }
    for (code, count) in &report.errors {
        text += &format!("error          {code}: {count}\n");
    }
    out.write_all(text.as_bytes()).await?;
    out.flush().await
}
