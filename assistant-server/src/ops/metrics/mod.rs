//! Prometheus metrics, served on a listener of their own with
//! `--metrics-addr` ([`endpoint`]).
//!
//! - The standard gRPC server set ([`grpc`]), under go-grpc-middleware's
//!   names, so that existing dashboards work unchanged.
//! - The server's own, under `assistant_`: calls in flight and stalled,
//!   story bytes sent, flow-control stalls, connections and what closed
//!   them, calls ended by shutdown, log lines dropped, stories cached.
//!
//! What the server already counts for itself (calls in flight,
//! connections, the story cache, dropped log lines) is read when Prometheus
//! scrapes, so those cost nothing between scrapes. The rest is counted as
//! it happens: an atomic add per event, and for a histogram a sample kept
//! until the endpoint folds it into its buckets (every 5 s). Without `--metrics-addr`,
//! [`Metrics`] is empty and every count is a no-op.
//!
//! The exporter is `metrics-exporter-prometheus`: it writes the classic
//! text format, which `promtool check metrics` reads (`prometheus-client`
//! writes only OpenMetrics, whose counters promtool 2.42 reads as untyped
//! series without help).

pub(crate) mod endpoint;
mod grpc;

use std::{collections::HashMap, sync::Arc, time::Duration};

use metrics::{
    Counter, Gauge, Histogram, Key, KeyName, Label, Level, Metadata, Recorder, SharedString,
};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

pub(crate) use self::grpc::MethodMetrics;
use crate::{call::Calls, library::Library, ops::logging, transport::ConnectionCounter};

/// go-grpc-middleware's default buckets (Prometheus's `DefBuckets`), and
/// more past 10 s: a story at the default pacing takes about 10 s.
const HANDLING_BUCKETS: [f64; 15] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0,
];

/// Stalls are logged from 0.1 s on; a client may stop reading for good.
const STALL_BUCKETS: [f64; 9] = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// The server's metrics; cheap to clone. Empty unless `--metrics-addr`
/// is given.
#[derive(Debug, Clone, Default)]
pub(crate) struct Metrics {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    handle: PrometheusHandle,
    methods: HashMap<String, Arc<MethodMetrics>>,
    story_bytes: Counter,
    stalls: Histogram,
    calls_refused_max_calls: Counter,
    calls_refused_per_connection: Counter,
    scraped: Scraped,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("methods", &self.methods.len())
            .finish_non_exhaustive()
    }
}

/// The series set from the server's own counts at each scrape.
struct Scraped {
    calls_in_flight: Gauge,
    calls_stalled: Gauge,
    calls_ended_by_shutdown: Counter,
    connections_open: Gauge,
    connections_refused: Counter,
    connections_closed: Vec<(&'static str, Counter)>,
    log_lines_dropped: Counter,
    stories_cached: Gauge,
    story_cache_bytes: Gauge,
}

/// Where the scraped series come from.
#[derive(Debug, Clone)]
pub(crate) struct Sources {
    /// Calls in flight, stalled and ended by shutdown.
    pub(crate) calls: Calls,
    /// Connections open, refused and closed.
    pub(crate) connections: ConnectionCounter,
    /// The stories held in memory.
    pub(crate) library: Library,
}

/// Registers series on a recorder.
pub(super) struct Registrar<'a> {
    recorder: &'a PrometheusRecorder,
}

fn metadata() -> Metadata<'static> {
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()))
}

fn key(name: &'static str, labels: &[(&'static str, String)]) -> Key {
    let labels: Vec<Label> = labels
        .iter()
        .map(|(name, value)| Label::new(*name, value.clone()))
        .collect();
    Key::from_parts(name, labels)
}

impl Registrar<'_> {
    fn counter(&self, name: &'static str, labels: &[(&'static str, String)]) -> Counter {
        self.recorder
            .register_counter(&key(name, labels), &metadata())
    }

    fn gauge(&self, name: &'static str) -> Gauge {
        self.recorder.register_gauge(&key(name, &[]), &metadata())
    }

    fn histogram(&self, name: &'static str, labels: &[(&'static str, String)]) -> Histogram {
        self.recorder
            .register_histogram(&key(name, labels), &metadata())
    }

    fn describe_counter(&self, name: &'static str, help: &'static str) {
        self.recorder.describe_counter(
            KeyName::from_const_str(name),
            None,
            SharedString::const_str(help),
        );
    }

    fn describe_gauge(&self, name: &'static str, help: &'static str) {
        self.recorder.describe_gauge(
            KeyName::from_const_str(name),
            None,
            SharedString::const_str(help),
        );
    }

    fn describe_histogram(&self, name: &'static str, help: &'static str) {
        self.recorder.describe_histogram(
            KeyName::from_const_str(name),
            None,
            SharedString::const_str(help),
        );
    }

    /// A counter with its help.
    fn new_counter(&self, name: &'static str, help: &'static str) -> Counter {
        self.describe_counter(name, help);
        self.counter(name, &[])
    }

    /// A gauge with its help.
    fn new_gauge(&self, name: &'static str, help: &'static str) -> Gauge {
        self.describe_gauge(name, help);
        self.gauge(name)
    }
}

/// Why the server closed connections, as `reason` labels them.
pub(crate) const CLOSE_REASONS: [&str; 6] = [
    "max_connections",
    "handshake_timeout",
    "not_http2",
    "tls_handshake",
    "keepalive_timeout",
    "http2_error",
];

impl Metrics {
    /// Metrics that are counted, for an endpoint to serve.
    pub(crate) fn enabled() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("grpc_server_handling_seconds".into()),
                &HANDLING_BUCKETS,
            )
            .and_then(|builder| {
                builder.set_buckets_for_metric(
                    Matcher::Full("assistant_stall_seconds".into()),
                    &STALL_BUCKETS,
                )
            })
            // Only empty bucket lists are refused, and these are constant.
            .unwrap_or_else(|_| PrometheusBuilder::new())
            .build_recorder();
        let r = Registrar {
            recorder: &recorder,
        };
        let methods = grpc::register(&r);
        r.describe_counter(
            "assistant_calls_refused_total",
            "Calls refused at once with RESOURCE_EXHAUSTED, by the limit they met \
             (--max-calls or --max-calls-per-connection).",
        );
        r.describe_histogram(
            "assistant_stall_seconds",
            "Flow-control stalls of 0.1 s or more: how long a call waited for its client to \
             read, by stalls that ended.",
        );
        r.describe_counter(
            "assistant_connections_closed_total",
            "Connections the server closed because the client gave it cause, by reason.",
        );
        let inner = Inner {
            handle: recorder.handle(),
            methods,
            story_bytes: r.new_counter(
                "assistant_story_bytes_sent_total",
                "Bytes of story text (greeting and ending included) handed to HTTP/2 for clients.",
            ),
            stalls: r.histogram("assistant_stall_seconds", &[]),
            calls_refused_max_calls: r.counter(
                "assistant_calls_refused_total",
                &[("limit", "max_calls".to_owned())],
            ),
            calls_refused_per_connection: r.counter(
                "assistant_calls_refused_total",
                &[("limit", "max_calls_per_connection".to_owned())],
            ),
            scraped: Scraped {
                calls_in_flight: r.new_gauge(
                    "assistant_calls_in_flight",
                    "Application calls running now (health and reflection not included).",
                ),
                calls_stalled: r.new_gauge(
                    "assistant_calls_stalled",
                    "Calls waiting now for a client that is not reading.",
                ),
                calls_ended_by_shutdown: r.new_counter(
                    "assistant_calls_ended_by_shutdown_total",
                    "Calls that shutdown ended rather than let finish.",
                ),
                connections_open: r
                    .new_gauge("assistant_connections_open", "Client connections open now."),
                connections_refused: r.new_counter(
                    "assistant_connections_refused_total",
                    "Connections refused because the server was at --max-connections, with \
                     every connection established.",
                ),
                connections_closed: CLOSE_REASONS
                    .iter()
                    .map(|&reason| {
                        let labels = [("reason", reason.to_owned())];
                        (
                            reason,
                            r.counter("assistant_connections_closed_total", &labels),
                        )
                    })
                    .collect(),
                log_lines_dropped: r.new_counter(
                    "assistant_log_lines_dropped_total",
                    "Log lines dropped because stderr was not taking them.",
                ),
                stories_cached: r.new_gauge(
                    "assistant_stories_cached",
                    "Stories held in memory from --stories-dir (1 with a single story).",
                ),
                story_cache_bytes: r.new_gauge(
                    "assistant_story_cache_bytes",
                    "Bytes of the stories held in memory.",
                ),
            },
        };
        Self {
            inner: Some(Arc::new(inner)),
        }
    }

    /// The series of the method at `path`; `None` if metrics are off or the
    /// server does not serve that method.
    pub(crate) fn method(&self, path: &str) -> Option<Arc<MethodMetrics>> {
        self.inner.as_ref()?.methods.get(path).cloned()
    }

    /// `bytes` more of story text were handed to HTTP/2.
    pub(crate) fn story_bytes(&self, bytes: u64) {
        if let Some(inner) = &self.inner {
            inner.story_bytes.increment(bytes);
        }
    }

    /// A call waited `stalled` for its client to read.
    pub(crate) fn stall(&self, stalled: Duration) {
        if let Some(inner) = &self.inner {
            inner.stalls.record(stalled.as_secs_f64());
        }
    }

    /// A call was refused at `--max-calls` (or, if `per_connection`, at
    /// its connection's share).
    pub(crate) fn call_refused(&self, per_connection: bool) {
        if let Some(inner) = &self.inner {
            match per_connection {
                true => inner.calls_refused_per_connection.increment(1),
                false => inner.calls_refused_max_calls.increment(1),
            }
        }
    }

    /// The metrics in the Prometheus text format, with the scraped series
    /// read from `sources` now; `None` if metrics are off.
    pub(crate) fn render(&self, sources: &Sources) -> Option<String> {
        let inner = self.inner.as_ref()?;
        let scraped = &inner.scraped;
        scraped.calls_in_flight.set(sources.calls.active() as f64);
        scraped
            .calls_stalled
            .set(sources.calls.stalled_now() as f64);
        scraped
            .calls_ended_by_shutdown
            .absolute(sources.calls.ended_by_shutdown());
        let connections = sources.connections.counts();
        scraped.connections_open.set(connections.open as f64);
        scraped.connections_refused.absolute(connections.refused);
        for (reason, counter) in &scraped.connections_closed {
            counter.absolute(connections.closed(reason));
        }
        scraped.log_lines_dropped.absolute(logging::dropped_lines());
        let (stories, bytes) = sources.library.cached();
        scraped.stories_cached.set(stories as f64);
        scraped.story_cache_bytes.set(bytes as f64);
        Some(inner.handle.render())
    }

    /// Folds recorded histogram samples into their buckets, so that they
    /// hold no memory between scrapes.
    pub(crate) fn upkeep(&self) {
        if let Some(inner) = &self.inner {
            inner.handle.run_upkeep();
        }
    }
}
