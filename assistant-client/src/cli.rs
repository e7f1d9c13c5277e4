//! The client's command line: the flags every call takes, and one
//! subcommand per call. Each module owns its flags (`ConnectArgs`,
//! `CallArgs`, `StoryArgs`, `BenchArgs`); this one gathers them.

use std::{ffi::OsString, time::Duration};

use clap::{
    ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, error::ErrorKind,
    parser::ValueSource,
};

use crate::{
    call::CallArgs,
    commands::{bench::BenchArgs, story::StoryArgs},
    connect::ConnectArgs,
};

/// Calls an assistant server: tells a story (the default), or makes one of
/// the four gRPC call shapes.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "assistant-client",
    version,
    after_help = "With no subcommand, it tells the story, as `assistant-client story` does.\n\
                  Program output goes to stdout and nothing else does; logs go to stderr.\n\
                  Durations are seconds, written as decimal numbers: 0.1, or 0 for no wait.\n\
                  Exit codes: 0 when the call ends well, 1 on an error, 2 for bad flags, 130 on Ctrl-C."
)]
pub struct Cli {
    /// Where the server is, and how to trust it.
    #[command(flatten)]
    pub connect: ConnectArgs,

    /// How every call is made.
    #[command(flatten)]
    pub options: CallArgs,

    /// The call to make; the story if none is given.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// The story's flags, when no subcommand is given.
    #[command(flatten)]
    pub story: StoryArgs,
}

/// One subcommand per call.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Server streaming: ask for the story and type it out (the default).
    Story(StoryArgs),
    /// Unary: list the stories the server can tell (name, bytes, title).
    List,
    /// Unary: ask the standard health service whether the server (or one
    /// service) is SERVING; exits 0 only if it is.
    Health {
        /// The service to ask about; the whole server if not given.
        #[arg(long, default_value = "", hide_default_value = true)]
        service: String,
    },
    /// Load: many concurrent story calls; reports throughput and latency.
    Bench(BenchArgs),
    /// Unary: send a name, get one greeting back.
    Hello {
        /// The name to greet.
        #[arg(long, default_value = "Hyeonghwan")]
        name: String,
    },
    /// Server streaming: one request, and the server's three messages back.
    ChatStream {
        /// The request's text.
        #[arg(long, default_value = "start")]
        text: String,
    },
    /// Client streaming: send many texts, get one answer joining them.
    Collect {
        /// The texts to send.
        #[arg(default_values = ["msg1", "msg2", "msg3"], value_name = "TEXT")]
        texts: Vec<String>,

        /// The ChatService method to call. The tutorial's client-streaming
        /// server names it ChatStream: `--method ChatStream` calls it.
        #[arg(long, default_value = crate::commands::chat::COLLECT_METHOD,
              value_name = "NAME", value_parser = method_name)]
        method: String,
    },
    /// Bidirectional streaming: send texts while the server answers each.
    Chat {
        /// The texts to send.
        #[arg(
            default_values = ["Hello grpc!", "This is Bidirectional Streaming RPC!", "Is it working good?"],
            value_name = "TEXT"
        )]
        texts: Vec<String>,

        /// Pause between sends.
        #[arg(long, allow_negative_numbers = true, default_value = "2", value_name = "SECONDS", value_parser = assistant_proto::seconds::parse)]
        send_delay: Duration,
    },
}

impl Cli {
    /// Parses the process's arguments, or prints why not and exits.
    pub fn parse_args() -> Self {
        Self::try_parse_args(std::env::args_os()).unwrap_or_else(|err| err.exit())
    }

    /// Parses `args` (the program name first).
    ///
    /// Besides what clap checks, the story's flags given before a
    /// subcommand other than `story` are an error, not silently ignored.
    pub fn try_parse_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let mut command = <Self as CommandFactory>::command();
        let matches = command.try_get_matches_from_mut(args)?;
        if let Some((name, _)) = matches.subcommand()
            && let Some(flag) = story_flag_given(&matches)
        {
            let message = format!(
                "--{flag} belongs to the story; write it after `story`, not before `{name}`"
            );
            return Err(command.error(ErrorKind::ArgumentConflict, message));
        }
        let cli = Self::from_arg_matches(&matches).map_err(|err| err.format(&mut command))?;
        // A --server that cannot be an address is a bad flag, found before
        // anything is tried.
        if let Err(err) = cli.connect.target() {
            return Err(command.error(ErrorKind::ValueValidation, err.to_string()));
        }
        Ok(cli)
    }

    /// The call to make: the subcommand, or the story with the top-level
    /// story flags when none was given.
    pub fn call(&self) -> Command {
        self.command
            .clone()
            .unwrap_or_else(|| Command::Story(self.story.clone()))
    }
}

/// A gRPC method name: letters, digits and underscores, not starting with
/// a digit.
fn method_name(name: &str) -> Result<String, String> {
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(name.to_owned())
    } else {
        Err(format!(
            "`{name}` is not a method name: letters, digits and `_`, such as ChatStream"
        ))
    }
}

/// The long name of a story flag given on the command line at the top
/// level, if any.
fn story_flag_given(matches: &ArgMatches) -> Option<String> {
    StoryArgs::augment_args(clap::Command::new("story"))
        .get_arguments()
        .find(|arg| matches.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine))
        .and_then(|arg| arg.get_long().map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_args(std::iter::once("assistant-client").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_match_the_tutorial() {
        let cli = parse(&[]).unwrap();
        assert_eq!(cli.connect.server, "http://127.0.0.1:50051");
        assert_eq!(cli.options.timeout, None);
        let Command::Story(story) = cli.call() else {
            panic!("no subcommand should mean the story");
        };
        assert_eq!(story.user_name, "Peter S");
        assert_eq!(story.institution, "SUSTech");
        assert_eq!(story.buffer_size, 5);
        assert_eq!(story.step_sec, Duration::from_millis(100));
        assert_eq!(story.story, "");
        assert_eq!(story.retries, 5);
        assert_eq!(story.retry_backoff, Duration::from_secs(1));
    }

    #[test]
    fn story_flags_work_with_and_without_the_subcommand() {
        for args in [
            &["--buffer-size", "9"][..],
            &["story", "--buffer-size", "9"],
        ] {
            let Command::Story(story) = parse(args).unwrap().call() else {
                panic!("{args:?} should tell the story");
            };
            assert_eq!(story.buffer_size, 9);
        }
    }

    #[test]
    fn global_flags_go_before_or_after_the_subcommand() {
        for args in [
            &["--server", "h:1", "--timeout", "2", "hello"][..],
            &["hello", "--server", "h:1", "--timeout", "2"],
        ] {
            let cli = parse(args).unwrap();
            assert_eq!(cli.connect.server, "h:1");
            assert_eq!(cli.options.timeout, Some(Duration::from_secs(2)));
            assert!(matches!(cli.call(), Command::Hello { name } if name == "Hyeonghwan"));
        }
    }

    #[test]
    fn subcommands_have_the_tutorials_defaults() {
        let Command::Collect { texts, method } = parse(&["collect"]).unwrap().call() else {
            panic!()
        };
        assert_eq!(texts, ["msg1", "msg2", "msg3"]);
        assert_eq!(method, "CollectStream");
        let Command::Chat { texts, send_delay } = parse(&["chat"]).unwrap().call() else {
            panic!()
        };
        assert_eq!(
            texts,
            [
                "Hello grpc!",
                "This is Bidirectional Streaming RPC!",
                "Is it working good?"
            ]
        );
        assert_eq!(send_delay, Duration::from_secs(2));
        let Command::Collect { texts, method } =
            parse(&["collect", "--method", "ChatStream", "a", "b c"])
                .unwrap()
                .call()
        else {
            panic!()
        };
        assert_eq!(texts, ["a", "b c"]);
        assert_eq!(method, "ChatStream");
    }

    #[test]
    fn bad_flags_are_rejected() {
        for args in [
            &["--buffer-size", "0"][..],
            &["--step-sec", "-0.1"],
            &["--step-sec", "-1"],
            &["--buffer-size", "-5"],
            &["--server", "http://exa mple:1"],
            &["--server", "ftp://127.0.0.1:1"],
            &["--server", "h:1", "--ca-cert", "ca.pem"],
            &["--step-sec", "x"],
            &["--timeout", "never"],
            &["--buffer-size", "3", "hello"],
            &["--user-name", "x", "story"],
            &["collect", "--method", "Chat/Stream"],
            &["collect", "--method", ""],
            &["frobnicate"],
        ] {
            assert!(parse(args).is_err(), "{args:?} should be rejected");
        }
    }
}
