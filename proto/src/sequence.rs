//! The byte sequence a `TellStory` call carries: a greeting, the story, and
//! an ending.
//!
//! `TellStoryResponse.offset` and `TellStoryRequest.resume_from` count bytes
//! in this sequence, so the server, clients that check what they received,
//! and benchmarks share one definition of it.

/// The greeting that opens every story call.
pub fn greeting(user_name: &str, institution: &str) -> String {
    format!("Hi {user_name} from {institution}! Here's your story:\n\n")
}

/// The line that closes every story call.
pub const ENDING: &str = "\nThat's it! Hope you like the story~\n";

/// The length of a whole call's sequence for a story of `story_len` bytes.
pub fn total_len(user_name: &str, institution: &str, story_len: u64) -> u64 {
    greeting(user_name, institution).len() as u64 + story_len + ENDING.len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tutorials_greeting_and_ending() {
        assert_eq!(
            greeting("Peter S", "SUSTech"),
            "Hi Peter S from SUSTech! Here's your story:\n\n"
        );
        assert_eq!(total_len("Peter S", "SUSTech", 144_396), 45 + 144_396 + 37);
    }
}
