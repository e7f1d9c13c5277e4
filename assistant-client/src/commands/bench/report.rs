//! What a benchmark run reports: the tallies its callers keep, merged
//! into throughput and latency percentiles, printed and written as JSON.

use std::{collections::BTreeMap, time::Duration};

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::Expected;

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
pub(super) struct Tally {
    pub(super) ok: u64,
    failed: u64,
    pub(super) text_bytes: u64,
    pub(super) messages: u64,
    pub(super) first_message: Histogram<u64>,
    pub(super) whole_call: Histogram<u64>,
    errors: BTreeMap<String, u64>,
}

impl Tally {
    pub(super) fn new() -> Self {
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

    pub(super) fn merge(&mut self, other: Self) {
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

    pub(super) fn fail(&mut self, what: &str) {
        self.failed += 1;
        *self.errors.entry(what.to_owned()).or_default() += 1;
    }
}

pub(super) fn report(tally: &Tally, elapsed: Duration, expected: &Expected) -> Report {
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

pub(super) async fn print_report<W: AsyncWrite + Unpin>(
    out: &mut W,
    report: &Report,
) -> std::io::Result<()> {
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
