//! A story's chunk messages, and the ending's, framed once, and shared by
//! every call that sends them ([`Framing`]), kept within a byte budget
//! ([`Framings`]).
//!
//! A call's chunk messages, and its ending, differ from another's only by
//! their offsets, which follow the greeting's length. Calls whose
//! greetings are as long, told in chunks of one size, send the same
//! bytes: framed once, a run of them goes to HTTP/2 as one slice of one
//! buffer, as a file server sends a file, instead of three slices a
//! message. A server that tells one story to users with names of a few
//! lengths keeps a few framings.

use std::{
    ops::Range,
    sync::{Arc, Mutex},
};

use bytes::{Buf, Bytes};

use assistant_proto::sequence::ENDING;

use super::{StoryMessage, shared::Registered, story::MAX_FRAMING};

/// The bytes a [`Framings`] cache keeps by default: 14 framings of
/// `alice.txt` (a framing counts its text too).
pub(crate) const DEFAULT_BUDGET: usize = 4 * 1024 * 1024;

/// A story's chunk messages, one after another, as one buffer: chunk `k`
/// of the text, at offset `story_start + k * chunk_size`, framed as a
/// [`StoryMessage`] with no version; then the ending's message, so that
/// a story's last run and its ending go out in one frame.
pub(crate) struct Framing {
    /// The text framed, which the framing keeps alive: its address is
    /// what tells two texts apart.
    text: Bytes,
    story_start: u64,
    chunk_size: usize,
    /// Registered, so that write batching sends runs of it by reference.
    bytes: Registered,
    /// Where each message starts in `bytes` (the ending's last), and,
    /// last, the end.
    starts: Vec<usize>,
}

impl std::fmt::Debug for Framing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Framing")
            .field("text_len", &self.text.len())
            .field("story_start", &self.story_start)
            .field("chunk_size", &self.chunk_size)
            .field("len", &self.bytes().len())
            .finish()
    }
}

impl Framing {
    fn new(text: Bytes, story_start: u64, chunk_size: usize) -> Self {
        let chunk_size = chunk_size.max(1);
        let chunks = text.len().div_ceil(chunk_size);
        let mut bytes = Vec::with_capacity(text.len() + ENDING.len() + (chunks + 1) * MAX_FRAMING);
        let mut starts = Vec::with_capacity(chunks + 2);
        starts.push(0);
        let mut at = 0;
        let mut frame = |text: Bytes, offset: usize| {
            let mut message = StoryMessage::new(text, story_start + offset as u64, "");
            while message.has_remaining() {
                let chunk = message.chunk();
                bytes.extend_from_slice(chunk);
                let taken = chunk.len();
                message.advance(taken);
            }
            starts.push(bytes.len());
        };
        while at < text.len() {
            let end = (at + chunk_size).min(text.len());
            frame(text.slice(at..end), at);
            at = end;
        }
        frame(Bytes::from_static(ENDING.as_bytes()), text.len());
        // Held as long as the framing is, and counted by its length: the
        // room reserved for the longest framing of each message goes back.
        bytes.shrink_to_fit();
        Self {
            text,
            story_start,
            chunk_size,
            bytes: Registered::new(Bytes::from(bytes)),
            starts,
        }
    }

    fn is_for(&self, text: &Bytes, story_start: u64, chunk_size: usize) -> bool {
        // The framing holds its text, so no other text can be at its
        // address with its length: the same address is the same text.
        self.text.as_ptr() == text.as_ptr()
            && self.text.len() == text.len()
            && self.story_start == story_start
            && self.chunk_size == chunk_size.max(1)
    }

    /// Where chunk `k`'s message lies in [`Framing::bytes`].
    pub(crate) fn message(&self, k: usize) -> Option<Range<usize>> {
        if k + 2 >= self.starts.len() {
            return None;
        }
        Some(self.starts[k]..self.starts[k + 1])
    }

    /// Where the ending's message lies in [`Framing::bytes`].
    pub(crate) fn ending(&self) -> Range<usize> {
        let n = self.starts.len();
        self.starts[n - 2]..self.starts[n - 1]
    }

    /// All the messages, framed.
    pub(crate) fn bytes(&self) -> &Bytes {
        self.bytes.bytes()
    }

    /// The memory it holds, text included.
    fn held(&self) -> usize {
        self.text.len() + self.bytes().len() + self.starts.len() * size_of::<usize>()
    }
}

/// The framings in use, kept within a byte budget. Cheap to clone: clones
/// share the cache.
///
/// A framing that a call still holds is never let go to make room, and
/// one let go still counts while a frame queued or batched holds a slice
/// of it, so what framings hold in all never passes the budget: when
/// there is no room for another, a call frames its messages one by one
/// instead.
#[derive(Debug, Clone)]
pub(crate) struct Framings {
    inner: Arc<Mutex<Kept>>,
}

#[derive(Debug)]
struct Kept {
    budget: usize,
    held: usize,
    /// Least recently asked for first.
    framings: Vec<Arc<Framing>>,
    /// Let go, but with slices still held somewhere: counted in `held`.
    retired: Vec<Arc<Framing>>,
}

impl Framings {
    /// A cache that keeps framings of at most `budget` bytes in all.
    pub(crate) fn new(budget: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Kept {
                budget,
                held: 0,
                framings: Vec::new(),
                retired: Vec::new(),
            })),
        }
    }

    /// The framing of `text` in chunks of `chunk_size` whose first starts
    /// at `story_start` in the call's sequence: made now if there is room
    /// for it, `None` if there is not.
    pub(crate) fn get(
        &self,
        text: &Bytes,
        story_start: u64,
        chunk_size: usize,
    ) -> Option<Arc<Framing>> {
        // A poisoned lock only means a panic elsewhere while it was held:
        // the list itself is always whole.
        let mut kept = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = kept
            .framings
            .iter()
            .position(|f| f.is_for(text, story_start, chunk_size))
        {
            let framing = kept.framings.remove(i);
            kept.framings.push(Arc::clone(&framing));
            return Some(framing);
        }
        // An empty story has no chunks to share.
        if text.is_empty() || !kept.make_room(most_held(text.len(), chunk_size)) {
            return None;
        }
        let framing = Arc::new(Framing::new(text.clone(), story_start, chunk_size));
        kept.held += framing.held();
        kept.framings.push(Arc::clone(&framing));
        Some(framing)
    }
}

/// The most a framing of `len` bytes of text in chunks of `chunk_size`
/// can hold, known before it is made.
fn most_held(len: usize, chunk_size: usize) -> usize {
    let messages = len.div_ceil(chunk_size.max(1)) + 1;
    2 * len + ENDING.len() + messages * (MAX_FRAMING + size_of::<usize>()) + size_of::<usize>()
}

impl Kept {
    /// Lets framings no call holds go, least recently asked for first,
    /// until `needed` more bytes fit; `false` if they cannot.
    fn make_room(&mut self, needed: usize) -> bool {
        if needed > self.budget {
            return false;
        }
        let before = self.retired.len();
        self.retired.retain(|f| !f.bytes().is_unique());
        if self.retired.len() < before {
            self.held = self
                .framings
                .iter()
                .chain(&self.retired)
                .map(|f| f.held())
                .sum();
        }
        while self.held + needed > self.budget {
            let Some(i) = self.framings.iter().position(|f| Arc::strong_count(f) == 1) else {
                return false;
            };
            let gone = self.framings.remove(i);
            // No new slice of it is taken by reference now; it goes once
            // the slices taken before are gone.
            gone.bytes.deregister();
            if gone.bytes().is_unique() {
                self.held -= gone.held();
            } else {
                self.retired.push(gone);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(len: usize) -> Bytes {
        (0..len).map(|i| b'a' + (i % 26) as u8).collect()
    }

    fn framed_one_by_one(text: &Bytes, story_start: u64, chunk_size: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, chunk) in text.chunks(chunk_size).enumerate() {
            let offset = story_start + (k * chunk_size) as u64;
            let mut message = StoryMessage::new(Bytes::copy_from_slice(chunk), offset, "");
            while message.has_remaining() {
                let n = message.chunk().len();
                out.extend_from_slice(message.chunk());
                message.advance(n);
            }
        }
        let ending = Bytes::from_static(ENDING.as_bytes());
        let mut message = StoryMessage::new(ending, story_start + text.len() as u64, "");
        out.extend_from_slice(&message.copy_to_bytes(message.remaining()));
        out
    }

    #[test]
    fn a_framing_is_the_messages_framed_one_by_one() {
        let framings = Framings::new(DEFAULT_BUDGET);
        // Offsets that take one, two and three bytes, and a short last chunk.
        for (len, story_start, chunk_size) in [(1000, 3, 100), (20_000, 40, 1024), (7, 0, 3)] {
            let text = text(len);
            let framing = framings.get(&text, story_start, chunk_size).unwrap();
            assert_eq!(
                framing.bytes()[..],
                framed_one_by_one(&text, story_start, chunk_size)[..]
            );
            let chunks = len.div_ceil(chunk_size);
            let mut end = 0;
            for k in 0..chunks {
                let range = framing.message(k).unwrap();
                assert_eq!(range.start, end);
                let offset = story_start + (k * chunk_size) as u64;
                let chunk = text.slice(k * chunk_size..((k + 1) * chunk_size).min(len));
                let mut one = StoryMessage::new(chunk, offset, "");
                assert_eq!(range.len(), one.remaining());
                assert_eq!(
                    &framing.bytes()[range.clone()],
                    &one.copy_to_bytes(range.len())[..]
                );
                end = range.end;
            }
            assert_eq!(framing.message(chunks), None);
            let ending = framing.ending();
            assert_eq!(ending.start, end);
            assert_eq!(ending.end, framing.bytes().len());
        }
    }

    #[test]
    fn calls_alike_share_a_framing_and_others_get_their_own() {
        let framings = Framings::new(DEFAULT_BUDGET);
        let story = text(5000);
        let a = framings.get(&story, 40, 1024).unwrap();
        assert!(Arc::ptr_eq(&a, &framings.get(&story, 40, 1024).unwrap()));
        for other in [
            framings.get(&story, 41, 1024).unwrap(),
            framings.get(&story, 40, 512).unwrap(),
            // The same words in another buffer are another text.
            framings
                .get(&Bytes::copy_from_slice(&story), 40, 1024)
                .unwrap(),
        ] {
            assert!(!Arc::ptr_eq(&a, &other));
        }
    }

    #[test]
    fn framings_in_use_are_kept_and_the_budget_is_never_passed() {
        let story = text(10_000);
        let one = most_held(story.len(), 1000);
        assert!(Framing::new(story.clone(), 0, 1000).held() <= one);
        let framings = Framings::new(3 * one);
        let held = || framings.inner.lock().unwrap().held;
        let in_use: Vec<_> = (0..3)
            .map(|start| framings.get(&story, start, 1000).unwrap())
            .collect();
        assert!(held() <= 3 * one);
        // Every framing is held by a call: no room for a fourth.
        assert!(framings.get(&story, 3, 1000).is_none());
        assert!(held() <= 3 * one);
        // The ones in use are still shared.
        assert!(Arc::ptr_eq(
            &in_use[1],
            &framings.get(&story, 1, 1000).unwrap()
        ));
        // Once a call lets one go, the least recently asked for goes.
        drop(in_use);
        let fourth = framings.get(&story, 3, 1000).unwrap();
        assert!(held() <= 3 * one);
        assert_eq!(framings.inner.lock().unwrap().framings.len(), 3);
        assert!(Arc::ptr_eq(
            &fourth,
            &framings.get(&story, 3, 1000).unwrap()
        ));
        // A text too big for the whole budget is never framed.
        assert!(framings.get(&text(3 * one), 0, 1000).is_none());
        assert!(held() <= 3 * one);
    }

    #[test]
    fn a_framing_let_go_counts_while_a_slice_of_it_is_held() {
        let story = text(10_000);
        let one = most_held(story.len(), 1000);
        let framings = Framings::new(2 * one);
        let held = || framings.inner.lock().unwrap().held;
        // A slice outlives the call that took it (a frame queued, say).
        let slice = framings.get(&story, 0, 1000).unwrap().bytes().slice(10..20);
        drop(framings.get(&story, 1, 1000).unwrap());
        // Making room lets the first framing go, but its slice still
        // holds it: it counts, and there is room for one more only.
        let second = framings.get(&story, 2, 1000).unwrap();
        assert!(held() <= 2 * one);
        assert!(framings.get(&story, 3, 1000).is_none(), "no room");
        assert!(held() <= 2 * one);
        drop(slice);
        let third = framings.get(&story, 3, 1000).unwrap();
        assert!(held() <= 2 * one);
        assert!(!Arc::ptr_eq(&second, &third));
        assert!(
            framings.get(&Bytes::new(), 0, 1000).is_none(),
            "nothing to share"
        );
    }
}
