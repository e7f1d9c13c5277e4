//! `assistant-server`: parses flags, sets up logging, and runs the server.

use std::{process::ExitCode, time::Duration};

use assistant_server::Config;
use clap::Parser;

/// jemalloc, with its background threads: measured against the system
/// allocator and mimalloc (docs/BENCHMARKS.md), it served more calls a
/// second, and it gives memory back after a burst of stalled calls, where
/// glibc's malloc kept hundreds of megabytes resident.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// How long, once the server has stopped, the process waits for work left
/// on the runtime's blocking threads (a read stuck on a hung disk, say)
/// before it exits anyway.
const RUNTIME_SHUTDOWN: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    let config = Config::parse();
    // Flushes what is left of the logs at exit, after the runtime.
    let _logs = match assistant_server::init_logging(config.log_format) {
        Ok(logs) => logs,
        Err(err) => {
            eprintln!("Error: cannot start the log writer thread: {err}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!("cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(assistant_server::run(config));
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}
