//! Noticing a dead server: HTTP/2 pings while a call waits on it.
//!
//! A server whose packets stop with nothing closed (a proxy that stops
//! forwarding, a host that froze) leaves a waiting call waiting forever:
//! TCP has nothing to say, because the client has nothing to send. So
//! while some call waits on the server and the server has been silent for
//! `--keepalive-interval`, the client sends a PING; if no answer comes
//! within `--keepalive-timeout`, it closes the connection, and the call
//! ends UNAVAILABLE (the story then resumes, as after a reset).
//!
//! Pings are rationed the way stock servers ration them. grpcio and
//! grpc-go close a connection whose client pings more than twice in five
//! minutes without the server having sent data in between
//! (`too_many_pings`; the first ping after data is free). So in one
//! silence the client pings at most three times, `--keepalive-interval`
//! apart, then every five minutes; the ping that confirmed the connection
//! counts toward the first silence. Measured against grpcio 1.85 with a
//! server silent 20 s between chunks and a 2 s interval: its strike count
//! peaks at 2 in each silence, one short of closing. And the client never
//! pings while the server is the one waiting (on the client's flow-control
//! window, while a slow reader types): then no call is waiting on the
//! server. hyper's timer-driven keepalive, which tonic's channel uses,
//! got `too_many_pings` from grpcio within seconds of that.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use h2::{Ping, PingPong};
use tracing::debug;

use super::channel::Shared;

/// Pings in one silence before the client slows down to one per
/// [`PATIENT_INTERVAL`].
const PINGS_PER_SILENCE: u32 = 3;

/// The ping interval, once a silence has had its [`PINGS_PER_SILENCE`]:
/// stock servers' minimum time between pings without data (five minutes),
/// and a little more, so that a ping never arrives a moment early.
const PATIENT_INTERVAL: Duration = Duration::from_secs(5 * 60 + 10);

/// Pings on the connection `shared` describes, as the [module
/// docs](self) say, until it closes. `pinged` is when the last ping (the
/// one that confirmed the connection) was answered.
pub(super) async fn run(
    mut pings: PingPong,
    shared: Arc<Shared>,
    interval: Duration,
    timeout: Duration,
    pinged: Instant,
) {
    // How often to look: a fraction of the interval, so that a silence is
    // noticed close to when it reaches the interval.
    let tick = (interval / 10).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut last_ping = pinged;
    // The connect-time ping counts toward the first silence.
    let mut pings_in_silence = 1;
    loop {
        tokio::select! {
            () = shared.closed.cancelled() => return,
            () = tokio::time::sleep(tick) => {}
        }
        let Some(times) = shared.waiting() else {
            continue;
        };
        if times.heard > last_ping {
            // The server has sent something since the last ping: a new
            // silence.
            pings_in_silence = 0;
        }
        let gap = if pings_in_silence < PINGS_PER_SILENCE {
            interval
        } else {
            PATIENT_INTERVAL.max(interval)
        };
        let quiet_since = times.heard.max(times.waiting_since).max(last_ping);
        if quiet_since.elapsed() < gap {
            continue;
        }
        debug!(
            silent_s = times.heard.elapsed().as_secs_f64(),
            "The server has been silent while a call waits; pinging it"
        );
        match tokio::time::timeout(timeout, pings.ping(Ping::opaque())).await {
            Ok(Ok(_pong)) => {
                last_ping = Instant::now();
                pings_in_silence += 1;
            }
            // The connection closed; its calls have their errors already.
            Ok(Err(_)) => return,
            Err(_) => {
                shared.close_because(format!(
                    "the server stopped answering: no reply to an HTTP/2 ping within {} s \
                     after {:.0} s of silence",
                    timeout.as_secs_f64(),
                    times.heard.elapsed().as_secs_f64()
                ));
                return;
            }
        }
    }
}
