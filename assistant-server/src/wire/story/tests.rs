//! Tests of a story's own framing: the bytes tonic's encoder would send.

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
    let front = crate::wire::Chunk::Story(rest.split_to(30));
    let mut slices = [IoSlice::new(&[]); 8];
    let n = front.chunks_vectored(&mut slices);
    let story_text = three_messages().messages[1].text.as_ptr();
    assert!(
        slices[..n].iter().any(|s| s.as_ptr() == story_text),
        "no copy"
    );
}

#[test]
fn the_rest_of_a_message_begun_is_known() {
    let mut story = three_messages();
    assert_eq!(story.rest_of_message(), 0);
    let first = three_messages().messages[0].remaining();
    story.advance(3);
    assert_eq!(story.rest_of_message(), first - 3);
    story.advance(first - 3);
    assert_eq!(story.rest_of_message(), 0);
}
