//! The line the tutorial's server logs for each chunk of a story it reads,
//! `Read 1024 bytes: [Alice's A ...`, made once per story rather than
//! once per call.
//!
//! A story call logs one of these for every chunk, and every call of a
//! story logs the same ones. Formatted for each call (the count, then the
//! preview escaped byte by byte), they were about 15% of a logging
//! server's CPU; copied from a story's [`ReadLines`], they cost a copy.
//!
//! The lines kept, for every story in the process, are held within
//! [`BUDGET`]: a story whose lines do not fit has each formatted as it is
//! logged, as before.

use std::{
    fmt,
    ops::Range,
    sync::atomic::{AtomicUsize, Ordering},
};

use assistant_proto::text::Escaped;

/// How many bytes of each chunk the line shows.
const PREVIEW_BYTES: usize = 10;

/// The smallest chunk whose lines are kept: a server told to read smaller
/// chunks formats each line as it logs it.
pub(super) const MIN_KEPT_CHUNK: usize = 256;

/// The most bytes the lines kept for all stories take, together: `alice.txt`'s
/// take 5.6 KB (4.4 of text, 142 ends), so hundreds of stories' lines fit.
const BUDGET: usize = 4 * 1024 * 1024;

/// The most a line takes, with its place in the index: `Read `, a count of
/// up to 20 digits, ` bytes: `, a preview of 10 bytes each escaped to at
/// most 6 characters (`\u{1b}`), ` ...`; and 8 bytes for where it ends.
const MAX_LINE: usize = 5 + 20 + 8 + PREVIEW_BYTES * 6 + 4 + 8;

/// The bytes taken from [`BUDGET`] by the lines kept now.
static KEPT: AtomicUsize = AtomicUsize::new(0);

/// The line logged for reading `chunk`, formatted as it is written.
#[derive(Debug, Clone, Copy)]
pub(super) struct ReadLine<'a>(pub(super) &'a [u8]);

impl fmt::Display for ReadLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let chunk = self.0;
        write!(
            f,
            "Read {} bytes: {} ...",
            chunk.len(),
            Escaped(&chunk[..chunk.len().min(PREVIEW_BYTES)])
        )
    }
}

/// The lines for every chunk of one text, in chunks of one size.
#[derive(Debug)]
pub(super) struct ReadLines {
    /// The size of the chunks, at least [`MIN_KEPT_CHUNK`].
    chunk_size: usize,
    /// The length of the text, whose last chunk may be short.
    text_len: usize,
    /// Every line, one after another.
    lines: String,
    /// Where each line ends in `lines`.
    ends: Vec<usize>,
    /// What the lines take from [`BUDGET`], given back to `kept` when
    /// dropped.
    taken: usize,
    kept: &'static AtomicUsize,
}

impl Drop for ReadLines {
    fn drop(&mut self) {
        self.kept.fetch_sub(self.taken, Ordering::Relaxed);
    }
}

impl ReadLines {
    /// The lines for `text` read `chunk_size` bytes at a time, if the
    /// chunks are big enough to keep lines for, and there is room for
    /// them in the budget.
    pub(super) fn new(text: &[u8], chunk_size: usize) -> Option<Self> {
        Self::within(text, chunk_size, &KEPT, BUDGET)
    }

    fn within(
        text: &[u8],
        chunk_size: usize,
        kept: &'static AtomicUsize,
        budget: usize,
    ) -> Option<Self> {
        use fmt::Write as _;
        if chunk_size < MIN_KEPT_CHUNK {
            return None;
        }
        let chunks = text.len().div_ceil(chunk_size);
        // The most they could take, taken up front; the rest given back.
        let most = chunks.checked_mul(MAX_LINE)?;
        kept.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |kept| {
            kept.checked_add(most).filter(|&total| total <= budget)
        })
        .ok()?;
        let mut lines = String::new();
        let mut ends = Vec::with_capacity(chunks);
        for chunk in text.chunks(chunk_size) {
            // Writing to a String cannot fail.
            let _ = write!(lines, "{}", ReadLine(chunk));
            ends.push(lines.len());
        }
        lines.shrink_to_fit();
        let taken = lines.capacity() + ends.capacity() * size_of::<usize>();
        kept.fetch_sub(most.saturating_sub(taken), Ordering::Relaxed);
        Some(Self {
            chunk_size,
            text_len: text.len(),
            lines,
            ends,
            taken: taken.min(most),
            kept,
        })
    }

    /// Whether the bytes at `range` of a text are one of its chunks, whole,
    /// in chunks of `chunk_size`: the ones whose lines are kept.
    pub(super) fn is_whole_chunk(range: &Range<usize>, chunk_size: usize, text_len: usize) -> bool {
        chunk_size > 0
            && range.start.is_multiple_of(chunk_size)
            && range.start < text_len
            && range.end == range.start.saturating_add(chunk_size).min(text_len)
    }

    /// The line for the bytes at `range` of the text, if they are one of
    /// its chunks in this size.
    pub(super) fn get(&self, range: &Range<usize>, chunk_size: usize) -> Option<&str> {
        if chunk_size != self.chunk_size
            || !Self::is_whole_chunk(range, self.chunk_size, self.text_len)
        {
            return None;
        }
        let k = range.start / self.chunk_size;
        let end = *self.ends.get(k)?;
        let start = match k.checked_sub(1) {
            Some(before) => *self.ends.get(before)?,
            None => 0,
        };
        self.lines.get(start..end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn formatted(chunk: &[u8]) -> String {
        ReadLine(chunk).to_string()
    }

    fn kept(text: &[u8], chunk_size: usize) -> ReadLines {
        static KEPT_HERE: AtomicUsize = AtomicUsize::new(0);
        ReadLines::within(text, chunk_size, &KEPT_HERE, usize::MAX).unwrap()
    }

    #[test]
    fn the_line_reads_as_the_tutorials() {
        assert_eq!(
            formatted(b"Alice's Adventures"),
            "Read 18 bytes: Alice's Ad ..."
        );
        assert_eq!(
            formatted(b"\x1b[31m\xffok"),
            "Read 8 bytes: \\u{1b}[31m\u{fffd}ok ..."
        );
    }

    #[test]
    fn kept_lines_are_the_lines_formatted_for_each_chunk() {
        // Every byte value, so that previews escape and break UTF-8.
        let text: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
        for size in [256, 700, 1024, 2999, 3000, 5000] {
            let lines = kept(&text, size);
            let mut start = 0;
            while start < text.len() {
                let end = (start + size).min(text.len());
                assert_eq!(
                    lines.get(&(start..end), size),
                    Some(formatted(&text[start..end]).as_str()),
                    "size {size}, chunk at {start}"
                );
                start = end;
            }
        }
    }

    #[test]
    fn only_whole_chunks_of_the_same_size_have_kept_lines() {
        let text = vec![b'a'; 2500];
        let lines = kept(&text, 1024);
        // Part of a chunk, as a resumed call's first read is.
        assert_eq!(lines.get(&(1030..2048), 1024), None);
        assert_eq!(lines.get(&(1024..2000), 1024), None);
        // Another size, or past the end.
        assert_eq!(lines.get(&(0..512), 512), None);
        assert_eq!(lines.get(&(3072..4096), 1024), None);
        assert_eq!(lines.get(&(2048..2048), 1024), None);
        assert_eq!(lines.get(&(2048..2100), 1024), None);
        assert_eq!(lines.get(&(2500..2500), 1024), None);
        // The last chunk is short and whole.
        assert_eq!(
            lines.get(&(2048..2500), 1024),
            Some("Read 452 bytes: aaaaaaaaaa ...")
        );
    }

    #[test]
    fn small_chunks_keep_no_lines() {
        let text = vec![b'a'; 2500];
        static BUDGET_HERE: AtomicUsize = AtomicUsize::new(0);
        let budget = &BUDGET_HERE;
        assert!(ReadLines::within(&text, MIN_KEPT_CHUNK - 1, budget, usize::MAX).is_none());
        assert_eq!(budget.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn lines_are_kept_within_the_budget_and_give_it_back() {
        let text = vec![b'a'; 10 * 1024];
        static BUDGET_HERE: AtomicUsize = AtomicUsize::new(0);
        let budget = &BUDGET_HERE;
        let most = 10 * MAX_LINE;
        let first = ReadLines::within(&text, 1024, budget, most).unwrap();
        let taken = budget.load(Ordering::Relaxed);
        assert!(taken > 0 && taken <= most, "{taken} of {most}");
        assert_eq!(taken, first.taken);
        // A second story's lines might not fit: they are not made.
        assert!(ReadLines::within(&text, 1024, budget, most).is_none());
        assert_eq!(budget.load(Ordering::Relaxed), taken);
        drop(first);
        assert_eq!(budget.load(Ordering::Relaxed), 0);
        assert!(ReadLines::within(&text, 1024, budget, most).is_some());
    }
}
