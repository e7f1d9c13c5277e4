//! Putting a story call's bytes back together, or saying why they cannot
//! be: the check behind "exit 0 only if every byte arrived, in order".
//!
//! A server that sets `story_version` on its first message numbers every
//! message with `offset` and can resume a call from any byte. Then each
//! message must start exactly where the last one ended, a resumed call
//! must carry the same version, and bytes it sends again must be the bytes
//! already printed. A server that leaves `story_version` empty, as the
//! tutorial's own does, numbers nothing: its chunks are taken in order, as
//! they come, and a call it loses cannot be resumed.
//!
//! Anything else is DATA_LOSS, and the client never reports success after
//! one.

use std::collections::VecDeque;

use assistant_proto::assistant::TellStoryResponse;
use tonic::Status;

/// How many of the last bytes received are kept, to check bytes a resumed
/// call sends again. Our server resends none; a server that restarts from
/// an earlier chunk boundary resends less than a chunk.
const TAIL: usize = 64 * 1024;

/// What the server's first message said about it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Numbering {
    /// No message yet.
    Unknown,
    /// Messages carry offsets into the version of the story named here.
    Offsets(String),
    /// Messages carry no offsets (or ones that mean nothing): they are the
    /// story, in order.
    Plain,
}

/// One story's bytes, across every attempt to receive them.
#[derive(Debug)]
pub(crate) struct Reassembly {
    numbering: Numbering,
    /// Bytes accepted so far.
    received: u64,
    /// Whether the next message is the first of an attempt.
    first_of_attempt: bool,
    /// The last bytes accepted, at most [`TAIL`] of them.
    tail: VecDeque<u8>,
}

impl Default for Reassembly {
    fn default() -> Self {
        Self {
            numbering: Numbering::Unknown,
            received: 0,
            first_of_attempt: true,
            tail: VecDeque::new(),
        }
    }
}

impl Reassembly {
    /// Bytes accepted so far.
    pub(crate) fn received(&self) -> u64 {
        self.received
    }

    /// Where a new attempt should start: `resume_from` and the
    /// `story_version` to hold the server to.
    pub(crate) fn resume_point(&self) -> (u64, String) {
        match &self.numbering {
            Numbering::Offsets(version) => (self.received, version.clone()),
            Numbering::Unknown | Numbering::Plain => (0, String::new()),
        }
    }

    /// Whether a lost call can be asked for again without printing a byte
    /// twice: the server resumes, or nothing has been received yet.
    pub(crate) fn can_resume(&self) -> bool {
        self.received == 0 || matches!(self.numbering, Numbering::Offsets(_))
    }

    /// Marks the start of a new attempt, after a lost connection.
    pub(crate) fn begin_attempt(&mut self) {
        self.first_of_attempt = true;
        if self.received == 0 {
            // Nothing was kept from the last attempt: this one is a fresh
            // start, whatever server answers it.
            self.numbering = Numbering::Unknown;
        }
    }

    /// Checks `message` and returns the bytes in it not received before;
    /// DATA_LOSS if it cannot be part of the story.
    pub(crate) fn accept<'m>(
        &mut self,
        message: &'m TellStoryResponse,
    ) -> Result<&'m [u8], Status> {
        let first = std::mem::take(&mut self.first_of_attempt);
        if first {
            self.check_version(message)?;
        }
        let text = &message.text_chunk[..];
        let new = match &self.numbering {
            Numbering::Offsets(_) => self.new_part(message.offset, text, first)?,
            // `Unknown` cannot last past a first message.
            Numbering::Plain | Numbering::Unknown => text,
        };
        self.received += new.len() as u64;
        self.tail.extend(new);
        let excess = self.tail.len().saturating_sub(TAIL);
        self.tail.drain(..excess);
        Ok(new)
    }

    /// On an attempt's first message: learns how the server numbers its
    /// messages, or checks that it still numbers them the same way.
    fn check_version(&mut self, message: &TellStoryResponse) -> Result<(), Status> {
        let version = &message.story_version;
        match &self.numbering {
            Numbering::Unknown if version.is_empty() => self.numbering = Numbering::Plain,
            Numbering::Unknown => self.numbering = Numbering::Offsets(version.clone()),
            Numbering::Offsets(expected) if expected == version => {}
            Numbering::Offsets(expected) => {
                return Err(Status::data_loss(format!(
                    "the story changed between attempts: {} bytes came from version `{expected}`, \
                     and the server now sends `{version}`",
                    self.received
                )));
            }
            // A server without offsets is never asked to resume.
            Numbering::Plain => {}
        }
        Ok(())
    }

    /// The part of `text`, which the server says starts at byte `offset`,
    /// that was not received yet.
    fn new_part<'t>(&self, offset: u64, text: &'t [u8], first: bool) -> Result<&'t [u8], Status> {
        let received = self.received;
        if offset > received {
            return Err(Status::data_loss(format!(
                "the server skipped from byte {received} to byte {offset}"
            )));
        }
        if offset == received {
            return Ok(text);
        }
        if !first {
            return Err(Status::data_loss(format!(
                "the server went back from byte {received} to byte {offset}"
            )));
        }
        // A resumed call may start before the bytes it was asked for; what
        // it sends again must be what was printed.
        let again = usize::try_from(received - offset)
            .unwrap_or(usize::MAX)
            .min(text.len());
        if again > self.tail.len() {
            return Err(Status::data_loss(format!(
                "the server resent {again} bytes from byte {offset}, more than can be checked"
            )));
        }
        let start = self.tail.len() - usize::try_from(received - offset).unwrap_or(usize::MAX);
        let printed = self.tail.range(start..start + again);
        if !printed.eq(&text[..again]) {
            return Err(Status::data_loss(format!(
                "the server resent bytes from byte {offset} that differ from those printed"
            )));
        }
        Ok(&text[again..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    fn message(offset: u64, text: &'static str, version: &str) -> TellStoryResponse {
        TellStoryResponse {
            text_chunk: text.into(),
            offset,
            story_version: version.into(),
        }
    }

    fn loss(result: Result<&[u8], Status>) -> String {
        let status = result.expect_err("DATA_LOSS expected");
        assert_eq!(status.code(), Code::DataLoss, "{status:?}");
        status.message().to_owned()
    }

    #[test]
    fn a_server_without_versions_is_read_in_order_whatever_its_offsets() {
        // The tutorial's server: no version, so every offset reads as 0.
        let mut story = Reassembly::default();
        assert_eq!(story.accept(&message(0, "Hi ", "")).unwrap(), b"Hi ");
        assert_eq!(story.accept(&message(0, "there", "")).unwrap(), b"there");
        assert_eq!(story.received(), 8);
        assert!(!story.can_resume(), "nothing says where to resume from");
        assert_eq!(story.resume_point(), (0, String::new()));
    }

    #[test]
    fn numbered_messages_must_follow_on_exactly() {
        let mut story = Reassembly::default();
        assert_eq!(story.accept(&message(0, "hello", "v1")).unwrap(), b"hello");
        assert_eq!(story.accept(&message(5, " world", "")).unwrap(), b" world");
        assert!(story.can_resume());
        assert_eq!(story.resume_point(), (11, "v1".to_owned()));

        let mut skipped = Reassembly::default();
        skipped.accept(&message(0, "hello", "v1")).unwrap();
        assert!(
            loss(skipped.accept(&message(7, "rld", ""))).contains("skipped from byte 5 to byte 7")
        );

        let mut back = Reassembly::default();
        back.accept(&message(0, "hello", "v1")).unwrap();
        assert!(loss(back.accept(&message(3, "lo world", ""))).contains("went back"));

        let mut late_start = Reassembly::default();
        assert!(loss(late_start.accept(&message(4, "o", "v1"))).contains("skipped from byte 0"));
    }

    #[test]
    fn a_resumed_call_may_resend_what_was_printed_but_nothing_else() {
        let mut story = Reassembly::default();
        story.accept(&message(0, "hello wor", "v1")).unwrap();
        story.begin_attempt();
        assert_eq!(story.accept(&message(6, "world!", "v1")).unwrap(), b"ld!");
        assert_eq!(story.received(), 12);

        let mut changed = Reassembly::default();
        changed.accept(&message(0, "hello wor", "v1")).unwrap();
        changed.begin_attempt();
        assert!(loss(changed.accept(&message(6, "WORLD!", "v1"))).contains("differ"));
    }

    #[test]
    fn a_story_that_changed_between_attempts_is_data_loss() {
        let mut story = Reassembly::default();
        story.accept(&message(0, "old text", "v1")).unwrap();
        story.begin_attempt();
        let why = loss(story.accept(&message(8, " more", "v2")));
        assert!(why.contains("`v1`") && why.contains("`v2`"), "{why}");

        // A resumed call from a server that no longer numbers its messages.
        let mut story = Reassembly::default();
        story.accept(&message(0, "old text", "v1")).unwrap();
        story.begin_attempt();
        loss(story.accept(&message(0, "old text", "")));
    }

    #[test]
    fn an_attempt_that_received_nothing_starts_afresh() {
        let mut story = Reassembly::default();
        story.begin_attempt();
        assert!(story.can_resume());
        assert_eq!(story.accept(&message(0, "Hi", "")).unwrap(), b"Hi");
    }

    #[test]
    fn resent_bytes_beyond_what_is_kept_are_refused() {
        let mut story = Reassembly::default();
        let long: &'static str = Box::leak("x".repeat(TAIL + 10).into_boxed_str());
        story.accept(&message(0, long, "v1")).unwrap();
        story.begin_attempt();
        loss(story.accept(&message(0, long, "v1")));
    }
}
