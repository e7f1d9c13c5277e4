//! `assistant-server`: parses flags, sets up logging, and runs the server.

use std::process::ExitCode;

use assistant_server::Config;
use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    // Flushes what is left of the logs at exit.
    let _logs = assistant_server::init_logging(config.log_format);
    match assistant_server::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}
