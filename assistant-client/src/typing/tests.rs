//! Tests of the typing: characters split across pieces, escapes, and
//! the pacing on a paused clock.

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
