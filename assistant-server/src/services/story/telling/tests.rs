//! Tests of a telling's pieces: offsets, pauses on a paused clock, resumes and endings.

use std::time::Duration;

use assistant_proto::sequence;
use bytes::{Buf, Bytes};
use tokio::time::Instant;
use tokio_stream::StreamExt;

use super::*;

/// Peter S from SUSTech's telling of `story`: 3 s of think-time and
/// 50 ms between chunks.
fn telling(story: Story, chunk_size: usize, resume_from: u64, finish: Finish) -> Telling {
    Telling {
        story,
        pacing: Pacing {
            think_time: Duration::from_secs(3),
            chunk_size,
            chunk_delay: Duration::from_millis(50),
            finish,
        },
        call: CallContext::default(),
        greeting: Bytes::from(sequence::greeting("Peter S", "SUSTech")),
        resume_from,
        user_name: "Peter S".into(),
        institution: "SUSTech".into(),
        framing: None,
    }
}

/// Every piece, and the status the stream ends with, with the paused
/// clock's time before each piece.
async fn all(telling: Telling) -> (Vec<(Duration, Piece)>, Option<Status>) {
    let start = Instant::now();
    let mut pieces = telling.into_pieces();
    let mut got = Vec::new();
    while let Some(piece) = pieces.next().await {
        match piece {
            Ok(piece) => got.push((start.elapsed(), piece)),
            Err(status) => {
                assert!(pieces.next().await.is_none(), "a piece after the status");
                return (got, Some(status));
            }
        }
    }
    assert!(pieces.next().await.is_none(), "a piece after the end");
    (got, None)
}

/// The whole sequence, as one buffer.
fn sequence_of(story: &Story) -> Vec<u8> {
    let greeting = sequence::greeting("Peter S", "SUSTech");
    [
        greeting.as_bytes(),
        story.text(),
        sequence::ENDING.as_bytes(),
    ]
    .concat()
}

#[tokio::test(start_paused = true)]
async fn alice_is_a_greeting_142_chunks_the_last_of_12_bytes_and_an_ending() {
    let story = Story::alice();
    let (pieces, status) = all(telling(story.clone(), 1024, 0, Finish::Cancel)).await;
    assert_eq!(pieces.len(), 1 + 142 + 1);
    assert_eq!(pieces[142].1.text.len(), 12);
    let mut offset = 0;
    let mut joined = Vec::new();
    for (i, (_, piece)) in pieces.iter().enumerate() {
        assert_eq!(piece.offset, offset, "piece {i}");
        assert_eq!(piece.version.is_some(), i == 0, "piece {i}");
        offset += piece.text.len() as u64;
        joined.extend_from_slice(&piece.text);
    }
    assert_eq!(joined, sequence_of(&story));
    assert_eq!(pieces[0].1.version.as_deref(), Some(story.version()));
    // The chunks are the story's own memory, not copies.
    assert_eq!(pieces[1].1.text.as_ptr(), story.text().as_ptr());
    let status = status.expect("--finish cancel ends with a status");
    assert_eq!(status.code(), tonic::Code::Cancelled);
    assert_eq!(status.message(), STORY_FINISHED);
}

#[tokio::test(start_paused = true)]
async fn the_think_time_follows_the_greeting_and_a_pause_each_chunk() {
    let story = Story::new("abc.txt", "abcdefg");
    let (pieces, status) = all(telling(story, 3, 0, Finish::Ok)).await;
    let at: Vec<Duration> = pieces.iter().map(|(at, _)| *at).collect();
    let ms = Duration::from_millis;
    // The greeting at once, the think-time, then chunks 50 ms apart;
    // the ending after the last chunk's pause.
    assert_eq!(at, [ms(0), ms(3000), ms(3050), ms(3100), ms(3150)]);
    assert!(status.is_none(), "--finish ok ends with the stream");
}

#[tokio::test(start_paused = true)]
async fn a_resumed_telling_starts_mid_chunk_with_the_version_and_no_think_time() {
    let story = Story::alice();
    let whole = sequence_of(&story);
    let greeting = sequence::greeting("Peter S", "SUSTech").len() as u64;
    for resume_from in [1, greeting, greeting + 1500, whole.len() as u64 - 3] {
        let (pieces, _) = all(telling(story.clone(), 1024, resume_from, Finish::Ok)).await;
        let joined: Vec<u8> = pieces.iter().flat_map(|(_, p)| p.text.to_vec()).collect();
        assert_eq!(joined, whole[resume_from as usize..], "from {resume_from}");
        assert_eq!(pieces[0].1.offset, resume_from);
        assert!(pieces[0].1.version.is_some(), "from {resume_from}");
        // Mid-greeting, the think-time follows the greeting's rest;
        // past it, none.
        let second = pieces.get(1).map_or(Duration::ZERO, |(at, _)| *at);
        if resume_from < greeting {
            assert_eq!(second, Duration::from_secs(3), "from {resume_from}");
        } else {
            assert!(second < Duration::from_secs(1), "from {resume_from}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_telling_resumed_at_its_end_is_only_its_status() {
    let story = Story::alice();
    let end = sequence_of(&story).len() as u64;
    let (pieces, status) = all(telling(story, 1024, end, Finish::Cancel)).await;
    assert!(pieces.is_empty());
    assert_eq!(
        status.map(|status| status.code()),
        Some(tonic::Code::Cancelled)
    );
}

#[tokio::test(start_paused = true)]
async fn a_zero_chunk_size_tells_a_byte_a_piece() {
    // The command line refuses it; a library user's config may not.
    let story = Story::new("ab.txt", "ab");
    let (pieces, _) = all(telling(story, 0, 0, Finish::Ok)).await;
    let texts: Vec<&[u8]> = pieces.iter().map(|(_, p)| p.text.as_ref()).collect();
    let greeting = sequence::greeting("Peter S", "SUSTech");
    let ending = sequence::ENDING.as_bytes();
    assert_eq!(texts, [greeting.as_bytes(), b"a", b"b", ending]);
}

#[tokio::test(start_paused = true)]
async fn an_empty_story_is_the_greeting_and_the_ending() {
    let story = Story::new("empty.txt", Bytes::new());
    let (pieces, _) = all(telling(story, 1024, 0, Finish::Ok)).await;
    let texts: Vec<&[u8]> = pieces.iter().map(|(_, p)| p.text.as_ref()).collect();
    let greeting = sequence::greeting("Peter S", "SUSTech");
    assert_eq!(texts, [greeting.as_bytes(), sequence::ENDING.as_bytes()]);
}

#[tokio::test(start_paused = true)]
async fn whole_chunks_after_the_first_message_are_the_shared_framings_bytes() {
    let story = Story::alice();
    let greeting = sequence::greeting("Peter S", "SUSTech").len() as u64;
    let framings = Framings::new(crate::wire::FRAMINGS_BUDGET);
    // From the start every chunk and the ending are framed already;
    // resumed mid-chunk, the first message (a chunk's rest, with the
    // version) is not; resumed at the ending, the ending is the first
    // message, with the version, and is not framed either.
    let ending = greeting + story.text().len() as u64;
    for (resume_from, expected) in [
        (0, 143),
        (greeting + 1500, 141),
        (ending, 0),
        (ending + 1, 0),
    ] {
        let mut telling = telling(story.clone(), 1024, resume_from, Finish::Ok);
        telling.share_framing(&framings);
        let mut pieces = telling.into_pieces();
        let mut framed = 0;
        while let Some(piece) = pieces.next().await {
            let piece = piece.expect("a piece");
            let Some(range) = piece.framed else { continue };
            assert!(piece.version.is_none(), "from {resume_from}");
            let mut one = crate::wire::StoryMessage::new(piece.text, piece.offset, "");
            let one = one.copy_to_bytes(one.remaining());
            let framing = pieces.framing().expect("a framing");
            assert_eq!(framing[range], one[..], "from {resume_from}");
            framed += 1;
        }
        assert_eq!(framed, expected, "from {resume_from}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_storys_lines_are_made_only_by_a_server_that_logs_them() {
    // No subscriber: nothing is logged, and the story keeps no lines.
    let story = Story::new("alice.txt", Story::alice().text().clone());
    all(telling(story.clone(), 1024, 0, Finish::Cancel)).await;
    assert!(!story.keeps_read_lines(), "made for a line not logged");
    // At INFO, the first call's lines are kept for the next.
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::sink)
        .finish();
    let _logging = tracing::subscriber::set_default(logs);
    all(telling(story.clone(), 1024, 0, Finish::Cancel)).await;
    assert!(story.keeps_read_lines());
}
