//! The tutorial's expected bytes and the settings tests run with.

use std::time::Duration;

use assistant_proto::assistant::TellStoryRequest;
use assistant_server::Config;

/// The story the server tells by default, read from the repository rather
/// than from the server.
pub const ALICE: &[u8] = include_bytes!("../../stories/alice.txt");

/// The greeting the tests' usual caller, Peter S from SUSTech, expects,
/// written out rather than computed by the code under test.
pub const GREETING: &str = "Hi Peter S from SUSTech! Here's your story:\n\n";

/// The ending every story call is expected to close with.
pub const ENDING: &str = "\nThat's it! Hope you like the story~\n";

/// Everything a whole `alice.txt` call is expected to carry for Peter S
/// from SUSTech: greeting, story and ending, byte for byte.
pub fn whole_story() -> Vec<u8> {
    [GREETING.as_bytes(), ALICE, ENDING.as_bytes()].concat()
}

/// The tutorial's request: Peter S from SUSTech.
pub fn peter() -> TellStoryRequest {
    TellStoryRequest {
        user_name: "Peter S".into(),
        institution: "SUSTech".into(),
        ..Default::default()
    }
}

/// The tutorials' settings without their pauses: no think-time and no
/// delays between messages, so a whole story takes milliseconds.
pub fn fast_config() -> Config {
    Config {
        think_time: Duration::ZERO,
        chunk_delay: Duration::ZERO,
        chat_stream_delay: Duration::ZERO,
        chat_reply_delay: Duration::ZERO,
        ..Config::default()
    }
}

/// An hour between story chunks and chat messages: calls that only end
/// when something else ends them.
pub fn slow_config() -> Config {
    Config {
        chunk_delay: Duration::from_secs(3600),
        chat_stream_delay: Duration::from_secs(3600),
        chat_reply_delay: Duration::from_secs(3600),
        ..fast_config()
    }
}
