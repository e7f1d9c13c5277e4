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
mod tests {
    use super::*;

    fn decode_pieces(pieces: &[&[u8]]) -> String {
        let mut decoder = Utf8Decoder::default();
        let mut out = String::new();
        for piece in pieces {
            decoder.decode(piece, &mut out);
        }
        decoder.finish(&mut out);
        out
    }

    #[test]
    fn a_character_split_across_chunks_decodes_whole() {
        let euro = "\u{20ac}".as_bytes(); // three bytes
        assert_eq!(
            decode_pieces(&[b"a", &euro[..1], &euro[1..], b"b"]),
            "a\u{20ac}b"
        );
        assert_eq!(decode_pieces(&[&euro[..2], &euro[2..]]), "\u{20ac}");
        let crab = "\u{1f980}".as_bytes(); // four bytes, one per chunk
        assert_eq!(
            decode_pieces(&[&crab[..1], &crab[1..2], &crab[2..3], &crab[3..]]),
            "\u{1f980}"
        );
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        assert_eq!(decode_pieces(&[b"a\xffb"]), "a\u{fffd}b");
        assert_eq!(decode_pieces(&[b"\xc3", b"x"]), "\u{fffd}x");
        assert_eq!(decode_pieces(&[b"\x80\x80"]), "\u{fffd}\u{fffd}");
        // Cut short by the end of the stream.
        assert_eq!(decode_pieces(&[b"ok\xe2\x82"]), "ok\u{fffd}");
        // The same as the standard library's lossy decoding.
        let mixed = b"Hi \xf0\x9f\xa6 there \xed\xa0\x80!";
        assert_eq!(decode_pieces(&[mixed]), String::from_utf8_lossy(mixed));
    }

    #[test]
    fn groups_count_characters_not_bytes() {
        let groups: Vec<&str> = char_groups("h\u{e9}llo w\u{f6}rld", 5).collect();
        assert_eq!(groups, ["h\u{e9}llo", " w\u{f6}rl", "d"]);
        assert_eq!(char_groups("", 5).count(), 0);
    }

    /// A writer that records each flushed group with the (paused) clock's
    /// time since it was made. Each flush takes `flush_cost`, standing in
    /// for a slow terminal.
    struct Recorder {
        start: Instant,
        flush_cost: Duration,
        /// Every `n`th flush costs this instead.
        hiccup: Option<(usize, Duration)>,
        flushes: usize,
        flushing: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
        unflushed: Vec<u8>,
        flushed: Vec<(Duration, String)>,
    }

    impl Recorder {
        fn new(flush_cost: Duration) -> Self {
            Self {
                start: Instant::now(),
                flush_cost,
                hiccup: None,
                flushes: 0,
                flushing: None,
                unflushed: Vec::new(),
                flushed: Vec::new(),
            }
        }

        fn texts(&self) -> Vec<&str> {
            self.flushed.iter().map(|(_, text)| text.as_str()).collect()
        }

        fn times(&self) -> Vec<Duration> {
            self.flushed.iter().map(|(at, _)| *at).collect()
        }
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            self.unflushed.extend_from_slice(buf);
            std::task::Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            let cost = match self.hiccup {
                Some((every, cost)) if self.flushes % every == every - 1 => cost,
                _ => self.flush_cost,
            };
            if !cost.is_zero() {
                let sleep = self
                    .flushing
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(cost)));
                std::task::ready!(sleep.as_mut().poll(cx));
                self.flushing = None;
            }
            self.flushes += 1;
            let text = String::from_utf8(std::mem::take(&mut self.unflushed)).unwrap();
            let at = self.start.elapsed();
            self.flushed.push((at, text));
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn types_groups_of_buffer_size_one_step_apart() {
        let mut typist = Typist::new(Recorder::new(Duration::ZERO), 5, Duration::from_millis(100));
        typist.type_bytes(b"Hello, world").await.unwrap();
        assert_eq!(typist.get_ref().texts(), ["Hello", ", wor", "ld"]);
        assert_eq!(
            typist.get_ref().times(),
            [
                Duration::ZERO,
                Duration::from_millis(100),
                Duration::from_millis(200)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn groups_restart_with_each_chunk_and_split_characters_print_whole() {
        let mut typist = Typist::new(Recorder::new(Duration::ZERO), 3, Duration::from_millis(10));
        let text = "ab\u{e9}cd".as_bytes(); // the é is bytes 2..4
        typist.type_bytes(&text[..3]).await.unwrap();
        typist.type_bytes(&text[3..]).await.unwrap();
        typist.finish().await.unwrap();
        assert_eq!(typist.get_ref().texts(), ["ab", "\u{e9}cd"]);
    }

    #[tokio::test(start_paused = true)]
    async fn pacing_holds_over_a_long_run_despite_slow_writes() {
        // 10,000 characters in groups of 10, 10 ms apart: 1,000 groups, the
        // last due 9.99 s after the first. Each flush costs 4 ms; sleeping a
        // full step after each write would drift to about 14 s.
        let mut typist = Typist::new(
            Recorder::new(Duration::from_millis(4)),
            10,
            Duration::from_millis(10),
        );
        let text = "0123456789".repeat(100);
        for _ in 0..10 {
            typist.type_bytes(text.as_bytes()).await.unwrap();
        }
        let times = typist.get_ref().times();
        assert_eq!(times.len(), 1000);
        let last = *times.last().unwrap();
        assert!(
            last >= Duration::from_millis(9990) && last <= Duration::from_millis(10_000),
            "last group flushed at {last:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_occasional_late_group_does_not_delay_the_rest() {
        // 1,000 groups 2 ms apart: the last is due at 1,998 ms. Every tenth
        // write takes 3 ms, longer than a step; restarting the schedule
        // after each would lose 1 ms a time, 100 ms in all.
        let mut recorder = Recorder::new(Duration::ZERO);
        recorder.hiccup = Some((10, Duration::from_millis(3)));
        let mut typist = Typist::new(recorder, 10, Duration::from_millis(2));
        let text = "0123456789".repeat(100);
        for _ in 0..10 {
            typist.type_bytes(text.as_bytes()).await.unwrap();
        }
        let last = *typist.get_ref().times().last().unwrap();
        assert!(
            last >= Duration::from_millis(1998) && last <= Duration::from_millis(2003),
            "last group flushed at {last:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_chunk_restarts_the_schedule_instead_of_bursting() {
        let mut typist = Typist::new(Recorder::new(Duration::ZERO), 2, Duration::from_millis(100));
        typist.type_bytes(b"abcd").await.unwrap(); // at 0 and 100 ms
        tokio::time::sleep(Duration::from_secs(3)).await; // a slow server
        typist.type_bytes(b"efgh").await.unwrap();
        let times = typist.get_ref().times();
        assert_eq!(times[2], Duration::from_millis(3100));
        assert_eq!(times[3], Duration::from_millis(3200));
    }

    #[tokio::test]
    async fn without_a_step_each_chunk_is_one_write() {
        let mut typist = Typist::new(Recorder::new(Duration::ZERO), 5, Duration::ZERO);
        typist.type_bytes(b"Hello, world").await.unwrap();
        assert_eq!(typist.get_ref().texts(), ["Hello, world"]);
    }
}
