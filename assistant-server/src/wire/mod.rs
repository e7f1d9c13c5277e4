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
//!
//! Calls whose chunk messages are the same bytes (the same story, chunk
//! size and greeting length) share them, framed once ([`Framing`]: a copy
//! of the story with its messages' framing, made once for many calls): a
//! run of them is one slice of one buffer.

mod framing;
mod shared;
mod story;

use std::{
    io::IoSlice,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use tonic::Status;

pub(crate) use self::framing::{DEFAULT_BUDGET as FRAMINGS_BUDGET, Framing, Framings};
#[cfg(test)]
pub(crate) use self::shared::Registered;
pub(crate) use self::shared::find as find_shared;
pub(crate) use self::story::{StoryMessage, StoryMessages};

/// Bytes of a response, ready for HTTP/2.
#[derive(Debug)]
pub(crate) enum Chunk {
    /// Whole messages, as tonic encoded them.
    Encoded(Bytes),
    /// This many whole messages: a run of a [`Framing`].
    Framed(Bytes, usize),
    /// Story messages, whole, in order: as many as were ready at once.
    Story(StoryMessages),
}

impl Chunk {
    /// How many whole gRPC messages this is, if it is whole messages.
    pub(crate) fn messages(&self) -> Option<usize> {
        match self {
            Self::Encoded(_) => None,
            Self::Framed(_, messages) => Some(*messages),
            Self::Story(messages) => Some(messages.len()),
        }
    }
}

impl Chunk {
    /// Takes the first `n` bytes off as a chunk of their own, sharing the
    /// bytes rather than copying them. Split framed messages no longer
    /// know how many they are.
    pub(crate) fn split_to(&mut self, n: usize) -> Self {
        match self {
            Self::Encoded(bytes) => Self::Encoded(bytes.split_to(n)),
            Self::Framed(bytes, _) => {
                let front = bytes.split_to(n);
                *self = Self::Encoded(std::mem::take(bytes));
                Self::Encoded(front)
            }
            Self::Story(messages) => Self::Story(messages.split_to(n)),
        }
    }

    /// The bytes left of the gRPC message being taken: 0 between messages.
    /// `original` is the chunk's bytes before any were taken, for chunks
    /// of encoded bytes, which do not keep count themselves.
    pub(crate) fn rest_of_message(&self, original: Option<&Bytes>) -> usize {
        match self {
            Self::Story(messages) => messages.rest_of_message(),
            Self::Encoded(rest) | Self::Framed(rest, _) => {
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
            Self::Encoded(bytes) | Self::Framed(bytes, _) => bytes.remaining(),
            Self::Story(messages) => messages.remaining(),
        }
    }

    fn chunk(&self) -> &[u8] {
        match self {
            Self::Encoded(bytes) | Self::Framed(bytes, _) => bytes.chunk(),
            Self::Story(messages) => messages.chunk(),
        }
    }

    fn advance(&mut self, cnt: usize) {
        match self {
            Self::Encoded(bytes) | Self::Framed(bytes, _) => bytes.advance(cnt),
            Self::Story(messages) => messages.advance(cnt),
        }
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        match self {
            Self::Encoded(bytes) | Self::Framed(bytes, _) => bytes.chunks_vectored(dst),
            Self::Story(messages) => messages.chunks_vectored(dst),
        }
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
    use super::*;

    #[test]
    fn the_rest_of_a_message_begun_is_known_from_tonics_chunks() {
        // Two messages of 2 and 3 bytes.
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

    #[test]
    fn framed_messages_know_their_count_until_split() {
        // Two messages of 2 and 3 bytes.
        let original = Bytes::from_static(b"\0\0\0\0\x02ab\0\0\0\0\x03cde");
        let mut framed = Chunk::Framed(original.clone(), 2);
        assert_eq!(framed.messages(), Some(2));
        let front = framed.split_to(4);
        assert_eq!((front.messages(), framed.messages()), (None, None));
        assert_eq!(framed.rest_of_message(Some(&original)), 3);
        assert_eq!([front.chunk(), framed.chunk()].concat(), original[..]);
    }

    #[test]
    fn the_rest_of_a_message_begun_is_known_from_story_chunks() {
        let mut messages = StoryMessages::default();
        messages.push(StoryMessage::new(Bytes::from_static(b"Alice"), 0, ""));
        messages.push(StoryMessage::new(Bytes::from_static(b" was"), 5, ""));
        let first = 5 + 2 + 5;
        let mut story = Chunk::Story(messages);
        story.advance(3);
        assert_eq!(story.rest_of_message(None), first - 3);
        story.advance(first - 3);
        assert_eq!(story.rest_of_message(None), 0);
    }
}
