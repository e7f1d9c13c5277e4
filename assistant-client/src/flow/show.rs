//! `--show-flow`: the flow of a story as it types, on stderr.
//!
//! On a terminal it is one status line, kept on the terminal's last row and
//! redrawn in place. The rows above it become a scrolling region (the
//! `DECSTBM` escape that `apt` and `tmux` use), so the story typing on
//! stdout and the log lines scroll above the status line and never run
//! over it. Each redraw is one `write` to the terminal, which the kernel
//! does not interleave with the story's writes. Anywhere else (a file, a
//! pipe) it is a plain log line every second.

use std::{io::Write, time::Duration};

use super::{Snapshot, Waiting};

/// How often a terminal's status line may be redrawn.
const REDRAW_EVERY: Duration = Duration::from_millis(100);

/// How often a plain line is written when stderr is not a terminal.
const LINE_EVERY: Duration = Duration::from_secs(1);

/// The status line, or the lines, while the story types.
pub(crate) struct Status {
    out: Box<dyn Write + Send>,
    mode: Mode,
    /// When the status was last drawn or written.
    last_at: Option<Duration>,
    last_text: String,
}

enum Mode {
    /// A terminal of this size (rows, columns), if known; the status line
    /// is on its last row once `reserved`.
    Terminal {
        size: fn() -> Option<(u16, u16)>,
        reserved: Option<(u16, u16)>,
    },
    /// A line every second.
    Plain,
}

impl Status {
    /// The status for this process's stderr: a status line if it is a
    /// terminal, lines otherwise.
    pub(crate) fn for_stderr() -> Self {
        use std::io::IsTerminal;
        let out: Box<dyn Write + Send> = Box::new(std::io::stderr());
        if std::io::stderr().is_terminal() {
            Self::terminal(out, || console::Term::stderr().size_checked())
        } else {
            Self::plain(out)
        }
    }

    /// A status line on a terminal whose size `size` tells.
    pub(crate) fn terminal(out: Box<dyn Write + Send>, size: fn() -> Option<(u16, u16)>) -> Self {
        Self::with_mode(
            out,
            Mode::Terminal {
                size,
                reserved: None,
            },
        )
    }

    /// Plain lines, one a second.
    pub(crate) fn plain(out: Box<dyn Write + Send>) -> Self {
        Self::with_mode(out, Mode::Plain)
    }

    fn with_mode(out: Box<dyn Write + Send>, mode: Mode) -> Self {
        Self {
            out,
            mode,
            last_at: None,
            last_text: String::new(),
        }
    }

    /// Shows `snapshot`, taken `at` after the story began; `last` when the
    /// call has ended. Errors writing to stderr are ignored: the status is
    /// not worth failing the story for.
    pub(crate) fn update(&mut self, at: Duration, snapshot: Snapshot, last: bool) {
        let text = describe(snapshot);
        let since = self.last_at.map(|last_at| at.saturating_sub(last_at));
        let mut bytes = Vec::new();
        match &mut self.mode {
            Mode::Terminal { size, reserved } => {
                let due = since.is_none_or(|since| since >= REDRAW_EVERY);
                if last {
                    if let Some(reserved) = reserved.take() {
                        release(&mut bytes, reserved);
                    }
                    // The last word stays, as an ordinary line.
                    bytes.extend_from_slice(format!("Flow: {}\n", summary(snapshot)).as_bytes());
                } else if due && (text != self.last_text || reserved.is_none()) {
                    let Some(now) = size().filter(|&(rows, cols)| rows >= 3 && cols >= 10) else {
                        return;
                    };
                    if *reserved != Some(now) {
                        reserve(&mut bytes, *reserved, now);
                        *reserved = Some(now);
                    }
                    draw(&mut bytes, now, &text);
                } else {
                    return;
                }
            }
            Mode::Plain => {
                let due = since.is_none_or(|since| since >= LINE_EVERY);
                if !(due || last) {
                    return;
                }
                let text = if last {
                    summary(snapshot)
                } else {
                    text.clone()
                };
                bytes.extend_from_slice(
                    format!("Flow at {:.1} s: {text}\n", at.as_secs_f64()).as_bytes(),
                );
            }
        }
        let _ = self.out.write_all(&bytes);
        let _ = self.out.flush();
        self.last_at = Some(at);
        self.last_text = text;
    }
}

impl Drop for Status {
    /// Gives the terminal its last row back, however the story ended.
    fn drop(&mut self) {
        if let Mode::Terminal {
            reserved: Some(reserved),
            ..
        } = self.mode
        {
            let mut bytes = Vec::new();
            release(&mut bytes, reserved);
            let _ = self.out.write_all(&bytes);
            let _ = self.out.flush();
        }
    }
}

/// Saves the cursor.
const SAVE: &str = "\x1b7";
/// Restores the cursor saved.
const RESTORE: &str = "\x1b8";

/// Makes the rows above the last a scrolling region, leaving the last row
/// for the status line; `before` is the size reserved before, if any.
fn reserve(bytes: &mut Vec<u8>, before: Option<(u16, u16)>, (rows, _): (u16, u16)) {
    if before.is_none() {
        // If the cursor is on the last row, scroll everything up a row
        // first, so that the status line covers nothing.
        bytes.extend_from_slice(b"\n\x1b[1A");
    }
    // Setting the region moves the cursor home: save it around that.
    bytes.extend_from_slice(format!("{SAVE}\x1b[1;{}r{RESTORE}", rows - 1).as_bytes());
}

/// Writes `text` on the last row, and puts the cursor back.
fn draw(bytes: &mut Vec<u8>, (rows, cols): (u16, u16), text: &str) {
    let fits: String = text.chars().take(usize::from(cols) - 1).collect();
    bytes.extend_from_slice(format!("{SAVE}\x1b[{rows};1H\x1b[2K{fits}{RESTORE}").as_bytes());
}

/// Clears the status line and gives the whole screen back to scrolling.
fn release(bytes: &mut Vec<u8>, (rows, _): (u16, u16)) {
    bytes.extend_from_slice(format!("{SAVE}\x1b[r\x1b[{rows};1H\x1b[2K{RESTORE}").as_bytes());
}

/// The counts in words: `received 65,536 B, typed 1,230 B, waiting
/// 64,306 B; server waits: window full`.
pub(crate) fn describe(snapshot: Snapshot) -> String {
    let who = match snapshot.waiting {
        Waiting::ForServer => "client waits for server",
        Waiting::ForClient => "server waits: window full",
        Waiting::Nobody => "nobody waits",
    };
    format!(
        "received {} B, typed {} B, waiting {} B; {who}",
        thousands(snapshot.received),
        thousands(snapshot.typed),
        thousands(snapshot.between()),
    )
}

/// The counts once the call is over: what was received and never typed
/// is what the call left behind.
pub(crate) fn summary(snapshot: Snapshot) -> String {
    format!(
        "received {} B, typed {} B, never typed {} B; the call is over",
        thousands(snapshot.received),
        thousands(snapshot.typed),
        thousands(snapshot.between()),
    )
}

/// `65536` as `65,536`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer tests can read back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn take(&self) -> String {
            String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap()
        }
    }

    fn snapshot(received: u64, typed: u64, waiting: Waiting) -> Snapshot {
        Snapshot {
            received,
            typed,
            messages: 1,
            waiting,
        }
    }

    #[test]
    fn numbers_read_in_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(65_536), "65,536");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn the_words_say_who_waits() {
        assert_eq!(
            describe(snapshot(65_536, 1_230, Waiting::ForClient)),
            "received 65,536 B, typed 1,230 B, waiting 64,306 B; server waits: window full"
        );
        assert!(
            describe(snapshot(46, 46, Waiting::ForServer))
                .ends_with("waiting 0 B; client waits for server")
        );
    }

    #[test]
    fn a_terminal_keeps_the_line_on_its_last_row_and_gets_it_back() {
        let out = Shared::default();
        let mut status = Status::terminal(Box::new(out.clone()), || Some((24, 80)));
        let ms = Duration::from_millis;
        status.update(ms(0), snapshot(46, 0, Waiting::Nobody), false);
        let first = out.take();
        // Room made, rows 1 to 23 scroll, the line drawn on row 24.
        assert!(
            first.starts_with("\n\x1b[1A\x1b7\x1b[1;23r\x1b8"),
            "{first:?}"
        );
        assert!(
            first.ends_with(
                "\x1b7\x1b[24;1H\x1b[2Kreceived 46 B, typed 0 B, waiting 46 B; nobody waits\x1b8"
            ),
            "{first:?}"
        );

        // Too soon, then unchanged: nothing is drawn.
        status.update(ms(20), snapshot(50, 0, Waiting::Nobody), false);
        status.update(ms(200), snapshot(46, 0, Waiting::Nobody), false);
        assert_eq!(out.take(), "");
        status.update(ms(300), snapshot(46, 46, Waiting::ForServer), false);
        assert!(out.take().contains("typed 46 B"));

        // At the end: the region goes, the line is cleared, and the last
        // word stays as an ordinary line.
        status.update(ms(400), snapshot(46, 46, Waiting::Nobody), true);
        let last = out.take();
        assert!(
            last.starts_with("\x1b7\x1b[r\x1b[24;1H\x1b[2K\x1b8"),
            "{last:?}"
        );
        assert!(
            last.ends_with("Flow: received 46 B, typed 46 B, never typed 0 B; the call is over\n")
        );
        drop(status);
        assert_eq!(out.take(), "", "released once");
    }

    #[test]
    fn a_terminal_dropped_mid_story_gets_its_rows_back() {
        let out = Shared::default();
        let mut status = Status::terminal(Box::new(out.clone()), || Some((10, 40)));
        status.update(Duration::ZERO, snapshot(1, 0, Waiting::Nobody), false);
        out.take();
        drop(status);
        assert_eq!(out.take(), "\x1b7\x1b[r\x1b[10;1H\x1b[2K\x1b8");
    }

    #[test]
    fn the_line_is_cut_to_the_terminals_width() {
        let out = Shared::default();
        let mut status = Status::terminal(Box::new(out.clone()), || Some((5, 20)));
        status.update(Duration::ZERO, snapshot(1, 0, Waiting::Nobody), false);
        assert!(out.take().ends_with("\x1b[2Kreceived 1 B, typed\x1b8"));
    }

    #[test]
    fn elsewhere_it_is_a_line_a_second() {
        let out = Shared::default();
        let mut status = Status::plain(Box::new(out.clone()));
        for tenth in 0..=25 {
            let snapshot = snapshot(tenth * 100, tenth * 10, Waiting::Nobody);
            status.update(Duration::from_millis(tenth * 100), snapshot, false);
        }
        status.update(
            Duration::from_millis(2600),
            snapshot(2600, 2600, Waiting::Nobody),
            true,
        );
        let lines = out.take();
        let lines: Vec<&str> = lines.lines().collect();
        assert_eq!(
            lines,
            [
                "Flow at 0.0 s: received 0 B, typed 0 B, waiting 0 B; nobody waits",
                "Flow at 1.0 s: received 1,000 B, typed 100 B, waiting 900 B; nobody waits",
                "Flow at 2.0 s: received 2,000 B, typed 200 B, waiting 1,800 B; nobody waits",
                "Flow at 2.6 s: received 2,600 B, typed 2,600 B, never typed 0 B; the call is over",
            ]
        );
    }
}
