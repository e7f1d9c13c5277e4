//! Showing untrusted bytes in logs and on terminals safely.

use std::fmt;

/// Displays bytes as text: invalid UTF-8 as U+FFFD, and control characters
/// (newline, ESC, NUL and the like) as escapes such as `\n` and `\u{1b}`.
///
/// Whatever a peer sends, the output stays on one line and cannot drive a
/// terminal. It formats straight into the writer, without allocating.
#[derive(Clone, Copy)]
pub struct Escaped<'a>(pub &'a [u8]);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        // Printable ASCII, which most text is, is written as it is. The
        // check looks at every byte without stopping early, so that the
        // compiler can make it a few wide compares.
        let printable = self
            .0
            .iter()
            .fold(true, |all, &b| all & (b' '..=b'~').contains(&b));
        if printable && let Ok(text) = std::str::from_utf8(self.0) {
            return f.write_str(text);
        }
        for chunk in self.0.utf8_chunks() {
            // Runs without control characters are written whole.
            let mut rest = chunk.valid();
            while let Some((at, c)) = rest.char_indices().find(|(_, c)| c.is_control()) {
                f.write_str(&rest[..at])?;
                write!(f, "{}", c.escape_default())?;
                rest = &rest[at + c.len_utf8()..];
            }
            f.write_str(rest)?;
            if !chunk.invalid().is_empty() {
                f.write_char(char::REPLACEMENT_CHARACTER)?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_unchanged() {
        assert_eq!(Escaped(b"[Alice's A").to_string(), "[Alice's A");
        assert_eq!(
            Escaped("caf\u{e9} \u{2014}".as_bytes()).to_string(),
            "caf\u{e9} \u{2014}"
        );
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            Escaped(b"a\nb\r\x1b[31m\0").to_string(),
            "a\\nb\\r\\u{1b}[31m\\u{0}"
        );
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters() {
        assert_eq!(Escaped(b"ok\xff\xfe!").to_string(), "ok\u{fffd}\u{fffd}!");
        // A character cut short at the end shows as one replacement.
        assert_eq!(Escaped(&"\u{e9}".as_bytes()[..1]).to_string(), "\u{fffd}");
    }
}
