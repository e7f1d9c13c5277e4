//! The client's command-line flags.

use std::time::Duration;

use clap::Parser;

use crate::StoryRequest;

/// Asks an assistant server for a story and types it to the terminal.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "assistant-client",
    version,
    after_help = "The story goes to stdout and nothing else does; logs go to stderr.\n\
                  Durations are seconds, written as decimal numbers: 0.1, or 0 for no wait.\n\
                  Exit codes: 0 when the story ends, 1 on an error, 130 on Ctrl-C."
)]
pub struct Cli {
    /// The server: a URL such as http://127.0.0.1:50051, or a bare host:port.
    #[arg(long, default_value = "http://127.0.0.1:50051", value_name = "URL")]
    pub server: String,

    /// Your name, for the greeting.
    #[arg(long, default_value = "Peter S")]
    pub user_name: String,

    /// Your institution, for the greeting.
    #[arg(long, default_value = "SUSTech")]
    pub institution: String,

    /// Characters typed at a time.
    #[arg(long, default_value_t = 5, value_name = "CHARS",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_048_576))]
    pub buffer_size: usize,

    /// Pause between groups of characters. 0 prints each message at once.
    #[arg(long, default_value = "0.1", value_name = "SECONDS", value_parser = assistant_proto::seconds::parse)]
    pub step_sec: Duration,
}

impl Cli {
    /// The story call these flags ask for.
    pub fn story_request(&self) -> StoryRequest {
        StoryRequest {
            user_name: self.user_name.clone(),
            institution: self.institution.clone(),
            buffer_size: self.buffer_size,
            step: self.step_sec,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_tutorial() {
        let cli = Cli::parse_from(["assistant-client"]);
        assert_eq!(cli.server, "http://127.0.0.1:50051");
        assert_eq!(cli.user_name, "Peter S");
        assert_eq!(cli.institution, "SUSTech");
        assert_eq!(cli.buffer_size, 5);
        assert_eq!(cli.step_sec, Duration::from_millis(100));
    }

    #[test]
    fn bad_flags_are_rejected() {
        for args in [
            &["--buffer-size", "0"][..],
            &["--step-sec", "-0.1"],
            &["--step-sec", "x"],
        ] {
            let argv = std::iter::once("assistant-client").chain(args.iter().copied());
            assert!(
                Cli::try_parse_from(argv).is_err(),
                "{args:?} should be rejected"
            );
        }
    }
}
