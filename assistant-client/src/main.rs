//! `assistant-client`: parses flags, sets up logging, and runs the client.
//!
//! The story goes to stdout (made harmless when it is a terminal);
//! everything else goes to stderr.

use std::{
    io::IsTerminal,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use assistant_client::{Cli, terminal::TerminalSafe};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse_args();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .without_time()
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();

    let on_terminal = std::io::stdout().is_terminal();
    let interrupted = Arc::new(AtomicBool::new(false));
    let interrupt = async {
        // If the handler cannot be installed, Ctrl-C keeps its default
        // effect of ending the process at once.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        interrupted.store(true, Ordering::Relaxed);
        // The terminal echoed `^C`: what is logged next starts on a line
        // of its own. (With the story on the terminal, its writer ends the
        // line when the call stops.)
        if !on_terminal && std::io::stderr().is_terminal() {
            eprintln!();
        }
    };
    // A terminal acts on control characters; a file or a pipe gets the
    // exact bytes.
    let stdout = tokio::io::stdout();
    let result = if on_terminal {
        let terminal = TerminalSafe::new(stdout).interrupted_by(interrupted.clone());
        assistant_client::run(cli, terminal, interrupt).await
    } else {
        assistant_client::run(cli, stdout, interrupt).await
    };
    match result {
        Ok(ending) => ExitCode::from(ending.exit_code()),
        Err(err) => {
            tracing::error!("{err}");
            ExitCode::FAILURE
        }
    }
}
