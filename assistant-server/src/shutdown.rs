//! Waiting for the signals that ask a server to stop.

/// Completes on Ctrl-C (SIGINT) or, on Unix, SIGTERM.
///
/// If a signal handler cannot be installed, that signal is ignored rather
/// than stopping the server at once.
pub async fn signal() {
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

/// The status message of calls cut short by shutdown.
pub const SHUTTING_DOWN: &str = "server shutting down";

/// Waits `delay`, unless shutdown begins first; then fails with UNAVAILABLE
/// `server shutting down`, for the caller to end its call with.
///
/// tonic's graceful shutdown waits for every open stream with no limit of
/// its own, so every stream that pauses must watch `shutdown` itself.
pub async fn pause(
    delay: std::time::Duration,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Result<(), tonic::Status> {
    if !delay.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => {}
        }
    }
    if shutdown.is_cancelled() {
        return Err(tonic::Status::unavailable(SHUTTING_DOWN));
    }
    Ok(())
}
