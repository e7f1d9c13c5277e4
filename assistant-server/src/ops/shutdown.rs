//! Stopping: the signals that ask for it, and the sequence that follows.
//!
//! Every step is bounded, so no client can keep the server alive past its
//! grace period (tonic's own graceful shutdown waits for every open stream
//! with no limit):
//!
//! 1. health turns NOT_SERVING, the listening socket closes, every
//!    connection is told to start no new calls (HTTP/2 GOAWAY), and health
//!    watches and reflection streams end;
//! 2. calls in flight get the grace period to finish;
//! 3. calls still running are ended with UNAVAILABLE `server shutting
//!    down`, after the bytes they already sent;
//! 4. connections still open, such as those whose client stopped reading,
//!    are closed;
//! 5. it logs how many calls it served, and how many of them it ended.

use std::time::Duration;

use tracing::{info, warn};

use crate::{
    call::{Calls, Endings},
    services::health::Health,
    transport::Connections,
};

/// How long shutdown waits for ended calls to flush their last bytes and
/// for connections to close by themselves, before closing them.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(1);

/// Completes on Ctrl-C (SIGINT) or, on Unix, SIGTERM.
///
/// If a signal handler cannot be installed, that signal is ignored rather
/// than stopping the server at once.
pub(crate) async fn signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };

    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// What the shutdown sequence acts on.
#[derive(Debug)]
pub(crate) struct Serving<'a> {
    pub(crate) health: &'a Health,
    pub(crate) connections: &'a Connections,
    pub(crate) calls: &'a Calls,
    pub(crate) endings: &'a Endings,
    pub(crate) grace: Duration,
}

/// Runs the sequence of the [module docs](self), from step 1: the caller
/// has just stopped accepting connections.
pub(crate) async fn run(serving: Serving<'_>) {
    let Serving {
        health,
        connections,
        calls,
        endings,
        grace,
    } = serving;

    // 1. Refuse new work, and let health watches and reflection go.
    let in_flight = calls.active();
    info!(
        calls_in_flight = in_flight,
        grace_s = grace.as_secs_f64(),
        "Shutting down: accepting no new calls"
    );
    health.not_serving();
    connections.drain();
    endings.infrastructure.cancel();

    // 2. and 3. The grace period, then end what is left.
    if tokio::time::timeout(grace, calls.idle()).await.is_err() {
        info!(
            calls_in_flight = calls.active(),
            "Grace period over: ending the calls still running"
        );
        endings.application.cancel();
        let _ = tokio::time::timeout(SHUTDOWN_FLUSH, calls.idle()).await;
    }

    // 4. Close what is still open, such as connections stuck on a client
    // that stopped reading.
    if tokio::time::timeout(SHUTDOWN_FLUSH, connections.closed())
        .await
        .is_err()
    {
        warn!("Closing connections that are still open");
        endings.application.cancel();
        connections.close();
        let _ = tokio::time::timeout(SHUTDOWN_FLUSH, connections.closed()).await;
    }

    // Calls whose connection closed go with their threads, and say how
    // they ended before the count below.
    if !connections.stop_threads().await {
        warn!("A connection thread did not stop in time");
    }

    // 5. Account for every call the server took.
    let served = calls.ended();
    let ended = calls.ended_by_shutdown();
    let plural = if served == 1 { "" } else { "s" };
    info!("Server stopped: {served} call{plural} served, {ended} ended by shutdown");
}
