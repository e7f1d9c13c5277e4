//! The line the tutorial's server logs for each chunk of a story it reads,
//! `Read 1024 bytes: [Alice's A ...`, formatted once per story rather than
//! once per call.
//!
//! A story call logs one of these for every chunk, and every call of a
//! story logs the same ones. Formatted for each call (the count, then the
//! preview escaped byte by byte), they were about a sixth of a logging
//! server's CPU; copied from a story's [`ReadLines`], they cost a copy.

use std::{fmt, ops::Range};

use assistant_proto::text::Escaped;

/// How many bytes of each chunk the line shows.
const PREVIEW_BYTES: usize = 10;

/// The smallest chunk whose lines are kept: a line is at most about 100
/// bytes (a count, and ten bytes escaped), so a story's lines take at
/// most about a third of its size, and for prose under a twentieth. A
/// server told to read smaller chunks formats each line as it logs it.
pub(super) const MIN_KEPT_CHUNK: usize = 256;

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
    chunk_size: usize,
    text_len: usize,
    /// Every line, one after another.
    lines: String,
    /// Where each line ends in `lines`.
    ends: Vec<usize>,
}

impl ReadLines {
    /// The lines for `text` read `chunk_size` bytes at a time.
    pub(super) fn new(text: &[u8], chunk_size: usize) -> Self {
        use fmt::Write as _;
        let chunk_size = chunk_size.max(1);
        let mut lines = String::new();
        let mut ends = Vec::with_capacity(text.len().div_ceil(chunk_size));
        for chunk in text.chunks(chunk_size) {
            // Writing to a String cannot fail.
            let _ = write!(lines, "{}", ReadLine(chunk));
            ends.push(lines.len());
        }
        lines.shrink_to_fit();
        Self {
            chunk_size,
            text_len: text.len(),
            lines,
            ends,
        }
    }

    /// The line for the bytes at `range` of the text, if they are one of
    /// its chunks in this size.
    pub(super) fn get(&self, range: &Range<usize>, chunk_size: usize) -> Option<&str> {
        if chunk_size.max(1) != self.chunk_size || !range.start.is_multiple_of(self.chunk_size) {
            return None;
        }
        let whole = range.end == (range.start + self.chunk_size).min(self.text_len);
        let k = range.start / self.chunk_size;
        let end = *self.ends.get(k)?;
        let start = if k == 0 { 0 } else { self.ends[k - 1] };
        whole.then(|| &self.lines[start..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn formatted(chunk: &[u8]) -> String {
        ReadLine(chunk).to_string()
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
        let text: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
        for size in [1, 7, 256, 1024, 2999, 3000, 5000] {
            let lines = ReadLines::new(&text, size);
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
        let lines = ReadLines::new(&text, 1024);
        // Part of a chunk, as a resumed call's first read is.
        assert_eq!(lines.get(&(1030..2048), 1024), None);
        assert_eq!(lines.get(&(1024..2000), 1024), None);
        // Another size, or past the end.
        assert_eq!(lines.get(&(0..512), 512), None);
        assert_eq!(lines.get(&(3072..4096), 1024), None);
        assert_eq!(lines.get(&(2048..2048), 1024), None);
        assert_eq!(lines.get(&(2048..2100), 1024), None);
        // The last chunk is short and whole.
        assert_eq!(
            lines.get(&(2048..2500), 1024),
            Some("Read 452 bytes: aaaaaaaaaa ...")
        );
    }
}
