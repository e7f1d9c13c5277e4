//! Keeping the user's terminal safe from the text a server sends.
//!
//! The story, chat replies and story titles come from whichever server the
//! user points the client at, and a terminal acts on control characters:
//! `ESC[2J` clears the screen, OSC 52 writes the user's clipboard, OSC 8
//! makes links, DCS strings and C1 controls do worse. When stdout is a
//! terminal, [`TerminalSafe`] shows every control character other than
//! newline and tab as a visible escape (`\u{1b}`, `\r`, `\u{9b}`), and
//! bytes that are not UTF-8 as U+FFFD. When stdout is a file or a pipe the
//! client writes the exact bytes instead, so `> story.txt` stays byte-exact.

use std::{
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, ready},
};

use tokio::io::AsyncWrite;

/// A writer that makes text harmless to show on a terminal; see the
/// [module docs](self).
#[derive(Debug)]
pub struct TerminalSafe<W> {
    inner: W,
    /// Output made harmless but not yet written.
    pending: Vec<u8>,
    written: usize,
    /// The start of a character whose remaining bytes have not been
    /// written to us yet (at most three bytes).
    partial: Vec<u8>,
    /// Whether the last line shown is unfinished: shutting down ends it,
    /// so what the terminal shows next starts on a line of its own.
    mid_line: bool,
    /// Set when Ctrl-C was pressed: the terminal echoed `^C` after the
    /// text, so the line is unfinished whatever the text was.
    interrupted: Option<Arc<AtomicBool>>,
}

impl<W> TerminalSafe<W> {
    /// Wraps `inner`, the terminal.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            pending: Vec::new(),
            written: 0,
            partial: Vec::new(),
            mid_line: false,
            interrupted: None,
        }
    }

    /// Ends the line on shutdown once `interrupted` is set, as it is when
    /// Ctrl-C makes the terminal echo `^C`.
    pub fn interrupted_by(mut self, interrupted: Arc<AtomicBool>) -> Self {
        self.interrupted = Some(interrupted);
        self
    }

    /// Appends `bytes`, made harmless, to the pending output.
    fn escape(&mut self, bytes: &[u8]) {
        let joined;
        let input = if self.partial.is_empty() {
            bytes
        } else {
            let mut buf = std::mem::take(&mut self.partial);
            buf.extend_from_slice(bytes);
            joined = buf;
            &joined[..]
        };
        let mut chunks = input.utf8_chunks().peekable();
        while let Some(chunk) = chunks.next() {
            push_harmless(&mut self.pending, chunk.valid());
            let invalid = chunk.invalid();
            if invalid.is_empty() {
                continue;
            }
            // `error_len() == None`: valid so far, but cut short.
            let cut_short = std::str::from_utf8(invalid).is_err_and(|e| e.error_len().is_none());
            if chunks.peek().is_none() && cut_short {
                self.partial.extend_from_slice(invalid);
            } else {
                push_harmless(&mut self.pending, "\u{fffd}");
            }
        }
        if let Some(&last) = self.pending.last() {
            self.mid_line = last != b'\n';
        }
    }
}

/// Appends `text` to `out`, with each control character other than
/// newline and tab as a visible escape.
fn push_harmless(out: &mut Vec<u8>, text: &str) {
    let mut rest = text;
    while let Some((at, c)) = rest
        .char_indices()
        .find(|&(_, c)| c.is_control() && c != '\n' && c != '\t')
    {
        out.extend_from_slice(&rest.as_bytes()[..at]);
        out.extend(c.escape_default().to_string().bytes());
        rest = &rest[at + c.len_utf8()..];
    }
    out.extend_from_slice(rest.as_bytes());
}

impl<W: AsyncWrite + Unpin> TerminalSafe<W> {
    /// Writes out everything pending.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for TerminalSafe<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_drain(cx))?;
        this.escape(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.partial.is_empty() {
            this.partial.clear();
            push_harmless(&mut this.pending, "\u{fffd}");
            this.mid_line = true;
        }
        let echoed = (this.interrupted.as_ref()).is_some_and(|flag| flag.load(Ordering::Relaxed));
        if this.mid_line || echoed {
            this.pending.push(b'\n');
            this.mid_line = false;
        }
        ready!(this.poll_drain(cx))?;
        // tokio's stdout does not flush on shutdown: without this, what
        // is logged next could show before the line's end.
        ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    async fn shown(pieces: &[&[u8]]) -> String {
        let mut terminal = TerminalSafe::new(Vec::new());
        for piece in pieces {
            terminal.write_all(piece).await.unwrap();
        }
        terminal.flush().await.unwrap();
        String::from_utf8(terminal.inner).unwrap()
    }

    /// What the terminal shows once the writer is done with it.
    async fn left(pieces: &[&[u8]]) -> String {
        let mut terminal = TerminalSafe::new(Vec::new());
        for piece in pieces {
            terminal.write_all(piece).await.unwrap();
        }
        terminal.shutdown().await.unwrap();
        String::from_utf8(terminal.inner).unwrap()
    }

    #[tokio::test]
    async fn text_newlines_and_tabs_pass_unchanged() {
        let text = "CHAPTER I.\tDown the Rabbit-Hole\n\n\u{2018}caf\u{e9}\u{2019} \u{1f980}\n";
        assert_eq!(shown(&[text.as_bytes()]).await, text);
    }

    #[tokio::test]
    async fn escape_sequences_cannot_reach_the_terminal() {
        for (attack, harmless) in [
            // Clear the screen, and move the cursor home.
            (&b"\x1b[2J\x1b[H"[..], r"\u{1b}[2J\u{1b}[H"),
            // OSC 52: write "evil" to the clipboard.
            (b"\x1b]52;c;ZXZpbA==\x07", r"\u{1b}]52;c;ZXZpbA==\u{7}"),
            // OSC 8: a hyperlink.
            (
                b"\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\",
                r"\u{1b}]8;;http://x\u{1b}\link\u{1b}]8;;\u{1b}\",
            ),
            // DCS, ended by ST.
            (b"\x1bPq#0;2;0;0;0\x1b\\", r"\u{1b}Pq#0;2;0;0;0\u{1b}\"),
            // C1 controls in UTF-8: CSI, OSC, DCS.
            (
                "\u{9b}2J\u{9d}0;title\u{7}\u{90}x".as_bytes(),
                r"\u{9b}2J\u{9d}0;title\u{7}\u{90}x",
            ),
            // A carriage return that would overwrite the line, backspace,
            // delete and NUL.
            (b"safe\rEVIL\x08\x7f\0", r"safe\rEVIL\u{8}\u{7f}\u{0}"),
        ] {
            let out = shown(&[attack]).await;
            assert_eq!(out, harmless);
            assert!(!out.chars().any(|c| c.is_control()), "{out:?}");
        }
    }

    #[tokio::test]
    async fn characters_split_across_writes_show_whole() {
        let csi = "\u{9b}".as_bytes();
        let crab = "\u{1f980}".as_bytes();
        assert_eq!(
            shown(&[&csi[..1], &csi[1..], b"m", &crab[..2], &crab[2..]]).await,
            "\\u{9b}m\u{1f980}"
        );
    }

    #[tokio::test]
    async fn bytes_that_are_not_utf8_show_as_replacement_characters() {
        // A lone 0x9b is CSI on a terminal that reads bytes as Latin-1.
        assert_eq!(shown(&[b"a\x9b2Jb\xff\n"]).await, "a\u{fffd}2Jb\u{fffd}\n");
        assert_eq!(left(&[b"cut \xe2\x82"]).await, "cut \u{fffd}\n");
    }

    #[tokio::test]
    async fn after_ctrl_c_the_line_ends_even_after_a_newline() {
        let interrupted = Arc::new(AtomicBool::new(false));
        let mut terminal = TerminalSafe::new(Vec::new()).interrupted_by(interrupted.clone());
        terminal.write_all(b"a whole line\n").await.unwrap();
        interrupted.store(true, Ordering::Relaxed);
        terminal.shutdown().await.unwrap();
        assert_eq!(terminal.inner, b"a whole line\n\n");
    }

    #[tokio::test]
    async fn text_cut_short_mid_line_ends_its_line() {
        assert_eq!(left(&[b"Alice was begin"]).await, "Alice was begin\n");
        assert_eq!(left(&[b"a whole line\n"]).await, "a whole line\n");
        assert_eq!(left(&[]).await, "");
    }
}
