//! How response bytes reach HTTP/2: as tonic encoded them, or, for the
//! story, as messages framed around the story's own bytes.
//!
//! tonic encodes each response message into a buffer of its own and hands
//! HTTP/2 up to 32 KiB of them at a time: the story is copied once there,
//! before the copy into the socket, and a stream holds that buffer while it
//! waits. A [`StoryMessage`] is the message's few bytes of framing (the
//! 5-byte gRPC prefix and the protobuf tags, lengths, offset and version),
//! around a slice of the story held in memory: nothing of the story is
//! copied until the socket write (only a call's first message, which
//! carries the version, is a copy), and a stream whose client is not
//! reading holds a reference, not a copy.

use std::io::IoSlice;

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use std::{
    pin::Pin,
    task::{Context, Poll},
};
use tonic::Status;

/// Bytes of a response, ready for HTTP/2.
#[derive(Debug)]
pub(crate) enum Chunk {
    /// As tonic encoded them.
    Encoded(Bytes),
    /// Story messages, whole, in order: as many as were ready at once.
    Story(StoryMessages),
}

impl Chunk {
    /// How many whole gRPC messages this is, if it is whole messages.
    pub(crate) fn messages(&self) -> Option<usize> {
        match self {
            Self::Encoded(_) => None,
            Self::Story(messages) => Some(messages.messages.len()),
        }
    }
}

impl Chunk {
    /// Takes the first `n` bytes off as a chunk of their own, sharing the
    /// bytes rather than copying them.
    pub(crate) fn split_to(&mut self, n: usize) -> Self {
        match self {
            Self::Encoded(bytes) => Self::Encoded(bytes.split_to(n)),
            Self::Story(messages) => Self::Story(messages.split_to(n)),
        }
    }

    /// The bytes left of the gRPC message being taken: 0 between messages.
    /// `original` is the chunk's bytes before any were taken, for tonic's
    /// chunks, which do not keep count themselves.
    pub(crate) fn rest_of_message(&self, original: Option<&Bytes>) -> usize {
        match self {
            Self::Story(messages) => messages
                .messages
                .get(messages.next)
                .filter(|message| message.taken > 0)
                .map_or(0, Buf::remaining),
            Self::Encoded(rest) => {
                let Some(original) = original else { return 0 };
                let taken = original.len().saturating_sub(rest.len());
                // Message after message by their length prefixes, to the
                // first that ends at or past what was taken.
                let mut end = 0;
                while end < taken {
                    let Some(prefix) = original.get(end + 1..end + 5) else {
                        return rest.len();
                    };
                    let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
                    end += 5 + len as usize;
                }
                (end - taken).min(rest.len())
            }
        }
    }
}

impl Buf for Chunk {
    fn remaining(&self) -> usize {
        match self {
            Self::Encoded(bytes) => bytes.remaining(),
            Self::Story(messages) => messages.remaining(),
        }
    }

    fn chunk(&self) -> &[u8] {
        match self {
            Self::Encoded(bytes) => bytes.chunk(),
            Self::Story(messages) => messages.chunk(),
        }
    }

    fn advance(&mut self, cnt: usize) {
        match self {
            Self::Encoded(bytes) => bytes.advance(cnt),
            Self::Story(messages) => messages.advance(cnt),
        }
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        match self {
            Self::Encoded(bytes) => bytes.chunks_vectored(dst),
            Self::Story(messages) => messages.chunks_vectored(dst),
        }
    }
}

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

    /// Takes the first `n` bytes off, as messages of their own (the last
    /// perhaps the front of one) that share the story's text: nothing is
    /// copied.
    fn split_to(&mut self, n: usize) -> Self {
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

/// A response body, as a handler made it.
pub(crate) enum ResponseBody {
    /// tonic's encoded messages.
    Tonic(tonic::body::Body),
    /// The story's own messages.
    Story(Pin<Box<dyn Body<Data = Chunk, Error = Status> + Send>>),
}

impl Default for ResponseBody {
    fn default() -> Self {
        Self::Tonic(tonic::body::Body::empty())
    }
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tonic(_) => f.write_str("ResponseBody::Tonic"),
            Self::Story(_) => f.write_str("ResponseBody::Story"),
        }
    }
}

impl Body for ResponseBody {
    type Data = Chunk;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Chunk>, Status>>> {
        match self.get_mut() {
            Self::Tonic(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|frame| frame.map(|frame| frame.map(|frame| frame.map_data(Chunk::Encoded)))),
            Self::Story(body) => body.as_mut().poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Tonic(body) => body.is_end_stream(),
            Self::Story(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Tonic(body) => body.size_hint(),
            Self::Story(body) => body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use assistant_proto::assistant::TellStoryResponse;
    use prost::Message;

    use super::*;

    fn bytes_of(mut buf: impl Buf) -> Vec<u8> {
        let mut out = Vec::new();
        while buf.has_remaining() {
            let chunk = buf.chunk().to_vec();
            out.extend_from_slice(&chunk);
            buf.advance(chunk.len());
        }
        out
    }

    /// What tonic and prost would send for the same message.
    fn framed_by_prost(message: &TellStoryResponse) -> Vec<u8> {
        let encoded = message.encode_to_vec();
        let mut framed = vec![0];
        framed.extend_from_slice(&(encoded.len() as u32).to_be_bytes());
        framed.extend_from_slice(&encoded);
        framed
    }

    #[test]
    fn messages_are_byte_for_byte_what_prost_encodes() {
        let version = "sha256:84157c64cf991c7cd7f3fc39aa8fddef";
        for (text, offset, version) in [
            (vec![b'x'; 1024], 0, version),
            (vec![b'y'; 1024], 45, ""),
            (vec![b'z'; 12], 144_441, ""),
            (vec![b'w'; 200_000], 1 << 40, version),
            (Vec::new(), 7, ""),
            (Vec::new(), 0, ""),
        ] {
            let ours = StoryMessage::new(Bytes::from(text.clone()), offset, version);
            let theirs = framed_by_prost(&TellStoryResponse {
                text_chunk: Bytes::from(text),
                offset,
                story_version: version.into(),
            });
            assert_eq!(ours.remaining(), theirs.len());
            assert_eq!(bytes_of(ours), theirs, "offset {offset}");
        }
    }

    #[test]
    fn messages_in_one_buffer_are_each_message_in_turn() {
        let make = || {
            [
                StoryMessage::new(Bytes::from_static(b"Hi there!\n\n"), 0, "v1"),
                StoryMessage::new(Bytes::from_static(b"Once"), 12, ""),
                StoryMessage::new(Bytes::from_static(b" upon a time"), 16, ""),
            ]
        };
        let whole: Vec<u8> = make().into_iter().flat_map(bytes_of).collect();
        for step in [1, 3, 7, 100] {
            let mut messages = StoryMessages::default();
            for message in make() {
                messages.push(message);
            }
            assert_eq!(messages.remaining(), whole.len());
            let mut out = Vec::new();
            while messages.has_remaining() {
                let mut slices = [IoSlice::new(&[]); 16];
                let n = messages.chunks_vectored(&mut slices);
                let gathered: Vec<u8> = slices[..n].iter().flat_map(|s| s.to_vec()).collect();
                assert_eq!(gathered, whole[out.len()..], "all that is left, in order");
                let take = messages.chunk().len().min(step);
                out.extend_from_slice(&messages.chunk()[..take]);
                messages.advance(take);
            }
            assert_eq!(out, whole, "steps of {step}");
        }
    }

    #[test]
    fn the_text_is_the_storys_own_memory() {
        let story = Bytes::from_static(b"Alice was beginning to get very tired");
        let message = StoryMessage::new(story.slice(6..), 6, "");
        let mut slices = [IoSlice::new(&[]); 4];
        assert_eq!(message.chunks_vectored(&mut slices), 3);
        assert_eq!(slices[1].as_ptr(), story[6..].as_ptr());
    }

    #[test]
    fn a_queued_message_is_small() {
        // A stream holds one for each message HTTP/2 has queued for it.
        assert!(std::mem::size_of::<StoryMessage>() <= 64);
    }

    #[test]
    fn a_message_taken_in_pieces_yields_every_byte_once() {
        let whole = bytes_of(StoryMessage::new(Bytes::from_static(b"hello"), 300, "v1"));
        for step in 1..whole.len() {
            let mut message = StoryMessage::new(Bytes::from_static(b"hello"), 300, "v1");
            let mut out = Vec::new();
            while message.has_remaining() {
                let mut slices = [IoSlice::new(&[]); 2];
                let n = message.chunks_vectored(&mut slices);
                let first = &slices[..n][0];
                let take = first.len().min(step);
                out.extend_from_slice(&first[..take]);
                message.advance(take);
            }
            assert_eq!(out, whole, "steps of {step}");
        }
    }

    fn three_messages() -> StoryMessages {
        let story = Bytes::from_static(b"Alice was beginning to get very tired");
        let mut messages = StoryMessages::default();
        for (at, end) in [(0, 10), (10, 25), (25, 37)] {
            // As a call sends them: the version with the first message.
            let version = if at == 0 { "v1" } else { "" };
            messages.push(StoryMessage::new(story.slice(at..end), at as u64, version));
        }
        messages
    }

    #[test]
    fn split_messages_yield_every_byte_once_and_share_the_text() {
        let whole = bytes_of(three_messages());
        for first in 0..=whole.len() {
            for second in 0..=whole.len() - first {
                let mut rest = three_messages();
                let a = rest.split_to(first);
                let b = rest.split_to(second);
                assert_eq!(
                    a.remaining() + b.remaining() + rest.remaining(),
                    whole.len()
                );
                let joined = [bytes_of(a), bytes_of(b), bytes_of(rest)].concat();
                assert_eq!(joined, whole, "split at {first}, then {second}");
            }
        }
        let mut rest = three_messages();
        let front = Chunk::Story(rest.split_to(30));
        let mut slices = [IoSlice::new(&[]); 8];
        let n = front.chunks_vectored(&mut slices);
        let story_text = three_messages().messages[1].text.as_ptr();
        assert!(
            slices[..n].iter().any(|s| s.as_ptr() == story_text),
            "no copy"
        );
    }

    #[test]
    fn the_rest_of_a_message_begun_is_known_from_either_kind_of_chunk() {
        let mut story = Chunk::Story(three_messages());
        assert_eq!(story.rest_of_message(None), 0);
        let first = three_messages().messages[0].remaining();
        story.advance(3);
        assert_eq!(story.rest_of_message(None), first - 3);
        story.advance(first - 3);
        assert_eq!(story.rest_of_message(None), 0);

        // tonic's: two messages of 2 and 3 bytes.
        let original = Bytes::from_static(b"\0\0\0\0\x02ab\0\0\0\0\x03cde");
        let mut encoded = Chunk::Encoded(original.clone());
        assert_eq!(encoded.rest_of_message(Some(&original)), 0);
        encoded.advance(4);
        assert_eq!(encoded.rest_of_message(Some(&original)), 3);
        encoded.advance(3);
        assert_eq!(encoded.rest_of_message(Some(&original)), 0);
        encoded.advance(6);
        assert_eq!(encoded.rest_of_message(Some(&original)), 2);
    }
}
