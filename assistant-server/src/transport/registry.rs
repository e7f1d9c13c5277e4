//! The connections the server holds, and the cap on them.
//!
//! Past `--max-connections`, a new connection takes the place of the
//! oldest one that has not finished its HTTP/2 handshake yet: a client
//! that opened a connection and said nothing (or one byte, or half the
//! preface) is the likeliest attacker, and the cheapest to drop. When every
//! connection is established, a new one is refused with an HTTP/2 GOAWAY
//! that says why, never left to time out.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
};

use tokio_util::sync::CancellationToken;

use super::handshake::Reads;
use crate::ops::metrics::CLOSE_REASONS;

/// One connection, as the registry knows it.
#[derive(Debug)]
pub(super) struct Entry {
    id: u64,
    /// What the connection has read: whether it is established.
    pub(super) reads: Arc<Reads>,
    evict: CancellationToken,
}

impl Entry {
    /// Completes when the registry evicts the connection.
    pub(super) async fn evicted(&self) {
        self.evict.cancelled().await;
    }
}

/// The connections the server holds; see the [module docs](self).
#[derive(Debug)]
pub(super) struct Registry {
    max: usize,
    open: AtomicUsize,
    /// Connections refused at the cap.
    refused: AtomicU64,
    /// Connections closed for cause, by [`Closed::reason`], in the order
    /// of [`CLOSE_REASONS`].
    closed_for_cause: [AtomicU64; CLOSE_REASONS.len()],
    next_id: AtomicU64,
    /// Connections that may still be handshaking, oldest first.
    handshaking: Mutex<BTreeMap<u64, Arc<Entry>>>,
}

impl Registry {
    pub(super) fn new(max: usize) -> Self {
        Self {
            max,
            open: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            closed_for_cause: Default::default(),
            next_id: AtomicU64::new(0),
            handshaking: Mutex::default(),
        }
    }

    /// The cap on connections.
    pub(super) fn max(&self) -> usize {
        self.max
    }

    /// Connections open now.
    pub(super) fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    fn handshaking(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Entry>>> {
        self.handshaking.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a new connection in, evicting the oldest handshaking one if
    /// the cap is reached; `None` if every connection is established.
    pub(super) fn admit(&self) -> Option<Arc<Entry>> {
        let mut handshaking = self.handshaking();
        if self.open.load(Ordering::Relaxed) >= self.max {
            let evicted = loop {
                let (_, entry) = handshaking.pop_first()?;
                if !entry.reads.established() {
                    break entry;
                }
            };
            // Its slot is freed when its task ends, at once.
            evicted.evict.cancel();
        }
        self.open.fetch_add(1, Ordering::Relaxed);
        let entry = Arc::new(Entry {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            reads: Arc::default(),
            evict: CancellationToken::new(),
        });
        handshaking.insert(entry.id, Arc::clone(&entry));
        Some(entry)
    }

    /// Lets `entry`'s connection go: it closed, as `closed` says.
    pub(super) fn closed(&self, entry: &Entry, closed: &Closed) {
        self.handshaking().remove(&entry.id);
        self.open.fetch_sub(1, Ordering::Relaxed);
        if let Some(reason) = closed.reason() {
            let at = CLOSE_REASONS.iter().position(|r| *r == reason);
            if let Some(count) = at.and_then(|at| self.closed_for_cause.get(at)) {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A connection was refused at the cap.
    pub(super) fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts, as metrics show them.
    pub(super) fn counts(&self) -> ConnectionCounts {
        ConnectionCounts {
            open: self.open(),
            refused: self.refused.load(Ordering::Relaxed),
            closed_for_cause: std::array::from_fn(|at| {
                self.closed_for_cause[at].load(Ordering::Relaxed)
            }),
        }
    }
}

/// The server's connections, counted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionCounts {
    /// Open now.
    pub(crate) open: usize,
    /// Refused at `--max-connections`, every connection established.
    pub(crate) refused: u64,
    closed_for_cause: [u64; CLOSE_REASONS.len()],
}

impl ConnectionCounts {
    /// Connections the server closed for `reason` (one of
    /// [`CLOSE_REASONS`]).
    pub(crate) fn closed(&self, reason: &str) -> u64 {
        CLOSE_REASONS
            .iter()
            .position(|r| *r == reason)
            .map_or(0, |at| self.closed_for_cause[at])
    }
}

/// Why a connection ended.
#[derive(Debug)]
pub(super) enum Closed {
    /// The client closed it, or it ended after draining.
    Done,
    /// The server closed it: shutdown, or a test cutting connections.
    ByServer,
    /// A newer connection took its place at the cap, before it finished
    /// its handshake.
    Evicted,
    /// No HTTP/2 handshake (TLS, preface and SETTINGS) in time.
    HandshakeTimeout,
    /// The client did not speak HTTP/2.
    NotHttp2,
    /// The TLS handshake failed.
    Tls(String),
    /// The client did not answer a keepalive ping in time.
    KeepaliveTimeout,
    /// HTTP/2 ended it with an error: a protocol error, or a GOAWAY for
    /// abuse such as too many reset streams.
    Protocol(String),
    /// The socket failed (a reset, say): clients do that.
    Io,
}

impl Closed {
    /// What an HTTP/2 error says about how the connection ended.
    pub(super) fn from_h2(err: &h2::Error, reads: &Reads) -> Self {
        if let Some(io) = err.get_io() {
            return match io.kind() {
                std::io::ErrorKind::TimedOut if !reads.established() => Self::HandshakeTimeout,
                std::io::ErrorKind::InvalidData if !reads.established() => Self::NotHttp2,
                _ => Self::Io,
            };
        }
        Self::Protocol(err.to_string())
    }

    /// Why the server closed the connection, if the client gave it cause,
    /// as the metrics label it (one of [`CLOSE_REASONS`]).
    pub(super) fn reason(&self) -> Option<&'static str> {
        Some(match self {
            Self::Done | Self::ByServer | Self::Io => return None,
            Self::Evicted => "max_connections",
            Self::HandshakeTimeout => "handshake_timeout",
            Self::NotHttp2 => "not_http2",
            Self::Tls(_) => "tls_handshake",
            Self::KeepaliveTimeout => "keepalive_timeout",
            Self::Protocol(_) => "http2_error",
        })
    }

    /// Why the server closed the connection, if the client gave it cause:
    /// the one line the server logs for it.
    pub(super) fn abuse(&self, max_connections: usize) -> Option<String> {
        Some(match self {
            Self::Done | Self::ByServer | Self::Io => return None,
            Self::Evicted => format!(
                "its handshake was not finished when the server reached its limit of \
                 {max_connections} connections"
            ),
            Self::HandshakeTimeout => "no HTTP/2 handshake within --handshake-timeout".into(),
            Self::NotHttp2 => "it did not speak HTTP/2".into(),
            Self::Tls(err) => format!("the TLS handshake failed: {err}"),
            Self::KeepaliveTimeout => "it did not answer a keepalive ping".into(),
            Self::Protocol(err) => format!("HTTP/2 error: {err}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_cap_the_oldest_handshaking_connection_makes_room() {
        let registry = Registry::new(2);
        let first = registry.admit().unwrap();
        let second = registry.admit().unwrap();
        second.reads.mark_established();
        let third = registry
            .admit()
            .expect("the first, handshaking, makes room");
        assert!(first.evict.is_cancelled());
        assert!(!second.evict.is_cancelled(), "established connections stay");
        registry.closed(&first, &Closed::Evicted);
        third.reads.mark_established();
        assert!(
            registry.admit().is_none(),
            "every connection established: refused"
        );
        registry.closed(&second, &Closed::Done);
        assert!(registry.admit().is_some());
        assert_eq!(registry.open(), 2);
    }
}
