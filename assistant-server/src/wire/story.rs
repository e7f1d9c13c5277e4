//! A story message framed around the story's own bytes ([`StoryMessage`]),
//! and the messages a stream has ready, as one buffer ([`StoryMessages`]).

use std::io::IoSlice;

use bytes::{Buf, Bytes};

/// Story messages, one after another, as one buffer.
#[derive(Debug, Default)]
pub(crate) struct StoryMessages {
    messages: Vec<StoryMessage>,
    /// The first message not wholly taken.
    next: usize,
    remaining: usize,
}

impl StoryMessages {
    /// Adds a message at the end.
    pub(crate) fn push(&mut self, message: StoryMessage) {
        self.remaining += message.remaining();
        self.messages.push(message);
    }

    /// How many messages, taken or not.
    pub(crate) fn len(&self) -> usize {
        self.messages.len()
    }

    /// The bytes left of the message being taken: 0 between messages.
    pub(super) fn rest_of_message(&self) -> usize {
        self.messages
            .get(self.next)
            .filter(|message| message.taken > 0)
            .map_or(0, Buf::remaining)
    }

    /// Takes the first `n` bytes off, as messages of their own (the last
    /// perhaps the front of one) that share the story's text: nothing is
    /// copied.
    pub(super) fn split_to(&mut self, n: usize) -> Self {
        assert!(n <= self.remaining, "split past the end of the messages");
        let mut front = Self::default();
        let mut left = n;
        while left > 0 {
            let message = &self.messages[self.next];
            let here = message.remaining().min(left);
            let mut piece = message.clone();
            // A message is at most 1 MiB and some framing: this fits.
            piece.cut += (message.remaining() - here) as u32;
            front.push(piece);
            self.advance(here);
            left -= here;
        }
        front
    }
}

impl Buf for StoryMessages {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        self.messages
            .get(self.next)
            .map_or(&[], |message| message.chunk())
    }

    fn advance(&mut self, mut cnt: usize) {
        assert!(
            cnt <= self.remaining,
            "advanced past the end of the messages"
        );
        self.remaining -= cnt;
        while cnt > 0 {
            let message = &mut self.messages[self.next];
            let here = message.remaining().min(cnt);
            message.advance(here);
            cnt -= here;
            if !message.has_remaining() {
                self.next += 1;
            }
        }
        while self
            .messages
            .get(self.next)
            .is_some_and(|m| !m.has_remaining())
        {
            self.next += 1;
        }
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut filled = 0;
        for message in &self.messages[self.next..] {
            if filled == dst.len() {
                break;
            }
            filled += message.chunks_vectored(&mut dst[filled..]);
        }
        filled
    }
}

/// The most framing before a story message's text: the gRPC prefix (5),
/// the text's tag (1) and length (at most 5).
const HEAD: usize = 11;

/// The most framing after it: the offset's tag and value (1 + 10).
const TAIL: usize = 11;

/// The most framing around a message's text, without a version.
pub(super) const MAX_FRAMING: usize = HEAD + TAIL;

/// The longest version a message can carry.
pub(crate) const MAX_VERSION: usize = 64;

/// One `TellStoryResponse`, framed for gRPC, around a slice of the story;
/// or the front of one, split off to fit a window.
///
/// Kept small (64 bytes), as a stream holds one for each message HTTP/2
/// has queued for it: the version, which only a call's first message
/// carries, goes with a copy of that message's text instead of inline.
#[derive(Debug, Clone)]
pub(crate) struct StoryMessage {
    head: [u8; HEAD],
    head_len: u8,
    tail: [u8; TAIL],
    tail_len: u8,
    /// Bytes already taken, across head, text and tail.
    taken: u32,
    /// Bytes left off the end: split off to go later.
    cut: u32,
    text: Bytes,
}

fn put_varint(out: &mut [u8], at: &mut usize, mut value: u64) {
    while value >= 0x80 {
        out[*at] = (value as u8) | 0x80;
        *at += 1;
        value >>= 7;
    }
    out[*at] = value as u8;
    *at += 1;
}

impl StoryMessage {
    /// `TellStoryResponse { text_chunk: text, offset, story_version:
    /// version }` as a gRPC message. Fields at their default value are left
    /// out, as protobuf encoders do. A version longer than
    /// [`MAX_VERSION`] is left out too: ours are 39 bytes.
    pub(crate) fn new(text: Bytes, offset: u64, version: &str) -> Self {
        let mut tail = [0; TAIL];
        let mut tail_len = 0;
        if offset != 0 {
            tail[0] = 0x10; // field 2, varint
            tail_len = 1;
            put_varint(&mut tail, &mut tail_len, offset);
        }
        let mut head = [0; HEAD];
        let mut head_len = 5;
        if !text.is_empty() {
            head[5] = 0x0a; // field 1, length-delimited
            head_len += 1;
            put_varint(&mut head, &mut head_len, text.len() as u64);
        }
        // The version follows the offset: both go after a copy of the text.
        let text = if !version.is_empty() && version.len() <= MAX_VERSION {
            let mut owned = Vec::with_capacity(text.len() + tail_len + 2 + version.len());
            owned.extend_from_slice(&text);
            owned.extend_from_slice(&tail[..tail_len]);
            owned.push(0x1a); // field 3, length-delimited
            owned.push(version.len() as u8);
            owned.extend_from_slice(version.as_bytes());
            tail_len = 0;
            Bytes::from(owned)
        } else {
            text
        };
        let message_len = (head_len - 5) + text.len() + tail_len;
        // A story chunk is at most 1 MiB, so this always fits.
        let message_len = u32::try_from(message_len).unwrap_or(u32::MAX);
        head[1..5].copy_from_slice(&message_len.to_be_bytes());
        Self {
            head,
            head_len: head_len as u8,
            tail,
            tail_len: tail_len as u8,
            taken: 0,
            cut: 0,
            text,
        }
    }

    /// Head, text and tail, without what is cut off the end.
    fn parts(&self) -> [&[u8]; 3] {
        let mut parts = [
            &self.head[..usize::from(self.head_len)],
            &self.text[..],
            &self.tail[..usize::from(self.tail_len)],
        ];
        let mut cut = self.cut as usize;
        for part in parts.iter_mut().rev() {
            let here = cut.min(part.len());
            *part = &part[..part.len() - here];
            cut -= here;
        }
        parts
    }
}

impl Buf for StoryMessage {
    fn remaining(&self) -> usize {
        self.parts().iter().map(|part| part.len()).sum::<usize>() - self.taken as usize
    }

    fn chunk(&self) -> &[u8] {
        let mut skip = self.taken as usize;
        for part in self.parts() {
            if skip < part.len() {
                return &part[skip..];
            }
            skip -= part.len();
        }
        &[]
    }

    fn advance(&mut self, cnt: usize) {
        assert!(
            cnt <= self.remaining(),
            "advanced past the end of a message"
        );
        // No more than the message's remaining bytes, so this fits.
        self.taken += cnt as u32;
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut skip = self.taken as usize;
        let mut filled = 0;
        for part in self.parts() {
            if filled == dst.len() {
                break;
            }
            if skip >= part.len() {
                skip -= part.len();
                continue;
            }
            dst[filled] = IoSlice::new(&part[skip..]);
            skip = 0;
            filled += 1;
        }
        filled
    }
}

#[cfg(test)]
mod tests;
