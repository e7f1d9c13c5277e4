//! The process's limit on open files, which bounds connections.

use tracing::warn;

/// Descriptors kept back from connections: the listener, logs, story
/// files, and whatever the runtime opens.
const RESERVED_FDS: u64 = 64;

/// The most connections the server takes by default, however many file
/// descriptors it may open: each costs memory too.
const DEFAULT_MAX_CONNECTIONS: u64 = 10_000;

/// Raises the soft limit on open files to the hard limit, and returns it
/// and the default cap on connections: below it, so that accepting never
/// fails for lack of descriptors.
pub(crate) fn raise_fd_limit() -> (u64, usize) {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(err) => {
            let (soft, _) = rlimit::Resource::NOFILE.get().unwrap_or((1024, 1024));
            warn!(error = %err, soft, "Cannot raise the limit on open files");
            soft
        }
    };
    let reserved = RESERVED_FDS.max(limit / 10);
    let max = limit
        .saturating_sub(reserved)
        .clamp(1, DEFAULT_MAX_CONNECTIONS);
    (limit, usize::try_from(max).unwrap_or(usize::MAX))
}
