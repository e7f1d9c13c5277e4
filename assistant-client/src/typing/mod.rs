//! "Typing" text to a terminal a few characters at a time, as the tutorial's
//! client does.
//!
//! Two concerns live here:
//! - [`Utf8Decoder`] turns a stream of byte chunks into text. A chunk
//!   boundary may fall inside a multi-byte character, so it carries the
//!   unfinished bytes over to the next chunk; bytes that can never be valid
//!   UTF-8 become U+FFFD instead of an error.
//! - [`Typist`] writes text in groups of `buffer_size` characters, flushing
//!   each group and pacing the groups `step` apart against a clock, so the
//!   time spent writing does not add up over a long story.

use std::time::Duration;

use tokio::{
    io::{AsyncWrite, AsyncWriteExt},
    time::{Instant, sleep_until},
};

use crate::flow::Flow;

/// How far behind schedule typing may fall and still catch up; further
/// behind, the schedule restarts from now.
pub(crate) const CATCH_UP_LIMIT: Duration = Duration::from_millis(50);

/// Decodes UTF-8 arriving in arbitrary pieces.
#[derive(Debug, Default)]
pub(crate) struct Utf8Decoder {
    /// The start of a character whose remaining bytes have not arrived yet
    /// (at most three bytes).
    pending: Vec<u8>,
}

impl Utf8Decoder {
    /// Appends the text in `bytes` to `out`. Invalid sequences become
    /// U+FFFD, one per maximal invalid run, as `String::from_utf8_lossy`
    /// does; an unfinished character at the end waits for the next call.
    pub(crate) fn decode(&mut self, bytes: &[u8], out: &mut String) {
        let joined;
        let input = if self.pending.is_empty() {
            bytes
        } else {
            let mut buf = std::mem::take(&mut self.pending);
            buf.extend_from_slice(bytes);
            joined = buf;
            &joined[..]
        };

        let mut chunks = input.utf8_chunks().peekable();
        while let Some(chunk) = chunks.next() {
            out.push_str(chunk.valid());
            let invalid = chunk.invalid();
            if invalid.is_empty() {
                continue;
            }
            let is_last = chunks.peek().is_none();
            // `error_len() == None` means "valid so far, but cut short".
            let unfinished = std::str::from_utf8(invalid).is_err_and(|e| e.error_len().is_none());
            if is_last && unfinished {
                self.pending.extend_from_slice(invalid);
            } else {
                out.push(char::REPLACEMENT_CHARACTER);
            }
        }
    }

    /// Ends the input: an unfinished character left over becomes U+FFFD.
    pub(crate) fn finish(&mut self, out: &mut String) {
        if !self.pending.is_empty() {
            self.pending.clear();
            out.push(char::REPLACEMENT_CHARACTER);
        }
    }
}

/// Splits `text` into pieces of `size` characters (the last may be shorter).
pub(crate) fn char_groups(text: &str, size: usize) -> impl Iterator<Item = &str> {
    let size = size.max(1);
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest
            .char_indices()
            .nth(size)
            .map_or(rest.len(), |(index, _)| index);
        let (group, tail) = rest.split_at(end);
        rest = tail;
        Some(group)
    })
}

/// Writes text a few characters at a time, at a steady pace.
#[derive(Debug)]
pub(crate) struct Typist<W> {
    out: W,
    buffer_size: usize,
    step: Duration,
    decoder: Utf8Decoder,
    /// Decoded text waiting to be typed; kept to reuse its allocation.
    text: String,
    /// The earliest moment the next group may be written.
    next: Option<Instant>,
    /// Bytes of the stream typed so far.
    typed: u64,
    /// Where typed bytes are reported as they go, if anywhere.
    flow: Option<Flow>,
}

impl<W: AsyncWrite + Unpin> Typist<W> {
    /// Types to `out`, `buffer_size` characters (at least one) every `step`.
    pub(crate) fn new(out: W, buffer_size: usize, step: Duration) -> Self {
        Self {
            out,
            buffer_size: buffer_size.max(1),
            step,
            decoder: Utf8Decoder::default(),
            text: String::new(),
            next: None,
            typed: 0,
            flow: None,
        }
    }

    /// Reports each group typed to `flow`, if given.
    pub(crate) fn watched_by(mut self, flow: Option<Flow>) -> Self {
        self.flow = flow;
        self
    }

    /// Bytes of the stream typed so far.
    pub(crate) fn typed(&self) -> u64 {
        self.typed
    }

    fn count(&mut self, bytes: u64) {
        self.typed += bytes;
        if let Some(flow) = &self.flow {
            flow.typed(bytes);
        }
    }

    /// Types one chunk of the byte stream.
    ///
    /// Returns once the chunk's last group is written and flushed; the pause
    /// after it is taken before the next group, so a chunk that arrives
    /// late is not followed by a burst of catching up.
    pub(crate) async fn type_bytes(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let mut text = std::mem::take(&mut self.text);
        text.clear();
        self.decoder.decode(bytes, &mut text);
        let before = self.typed;
        let result = self.type_text(&text).await;
        self.text = text;
        // Groups are counted as decoded text; the chunk's own length is
        // what it was on the wire (a character split across chunks, a
        // replacement character).
        if result.is_ok() {
            let counted = self.typed - before;
            let chunk = bytes.len() as u64;
            if chunk > counted {
                self.count(chunk - counted);
            } else {
                self.typed -= counted - chunk;
                if let Some(flow) = &self.flow {
                    flow.untyped(counted - chunk);
                }
            }
        }
        result
    }

    /// Ends the byte stream, typing whatever it left unfinished.
    pub(crate) async fn finish(&mut self) -> std::io::Result<()> {
        let mut text = String::new();
        self.decoder.finish(&mut text);
        // Its bytes were counted with the chunk they came in.
        let (typed, flow) = (self.typed, self.flow.take());
        let result = self.type_text(&text).await;
        (self.typed, self.flow) = (typed, flow);
        result
    }

    /// Leaves the output for good: a terminal gets its cursor at the start
    /// of a line (see [`crate::terminal::TerminalSafe`]).
    pub(crate) async fn leave(&mut self) -> std::io::Result<()> {
        self.out.shutdown().await?;
        // Some writers (tokio's stdout) do not flush on shutdown.
        self.out.flush().await
    }

    /// The writer, for tests to inspect.
    #[cfg(test)]
    fn get_ref(&self) -> &W {
        &self.out
    }

    async fn type_text(&mut self, text: &str) -> std::io::Result<()> {
        if text.is_empty() {
            return Ok(());
        }
        if self.step.is_zero() {
            // Without pauses, groups are invisible: one write is far faster.
            self.out.write_all(text.as_bytes()).await?;
            self.out.flush().await?;
            self.count(text.len() as u64);
            return Ok(());
        }
        for group in char_groups(text, self.buffer_size) {
            // The schedule advances by `step` from when the previous group
            // was due, not from when it finished writing or woke up, so
            // write time and timer lateness do not accumulate: a group that
            // is a little late is written at once, and the next is due on
            // the original schedule. Only when far behind (the story waited
            // for the network) does the schedule restart from now, rather
            // than rush out a burst of catching up.
            let now = Instant::now();
            let due = match self.next {
                Some(next) if now.saturating_duration_since(next) > CATCH_UP_LIMIT => now,
                Some(next) => next,
                None => now,
            };
            if due > now {
                sleep_until(due).await;
            }
            self.out.write_all(group.as_bytes()).await?;
            self.out.flush().await?;
            self.count(group.len() as u64);
            self.next = Some(due + self.step);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
