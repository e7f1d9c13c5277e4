//! Checking the names callers send before acting on them.
//!
//! Names end up in greetings and log lines, so they must be short, present,
//! and unable to forge a log line or drive a terminal.

use tonic::Status;

/// The longest name accepted, in characters.
pub(crate) const MAX_NAME_CHARS: usize = 128;

/// Checks a name field (`user_name`, `institution`, `name`): not blank, at
/// most [`MAX_NAME_CHARS`] characters, and free of control characters and
/// invisible formatting characters. The error names the field.
pub(crate) fn name(field: &str, value: &str) -> Result<(), Status> {
    if value.trim().is_empty() {
        return Err(Status::invalid_argument(format!(
            "{field} must not be empty"
        )));
    }
    let chars = value.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(Status::invalid_argument(format!(
            "{field} is {chars} characters long; the limit is {MAX_NAME_CHARS}"
        )));
    }
    if let Some(bad) = value.chars().find(|&c| is_unsafe(c)) {
        return Err(Status::invalid_argument(format!(
            "{field} must not contain control characters (found {})",
            bad.escape_unicode()
        )));
    }
    Ok(())
}

/// Control characters (C0, DEL, C1), and the invisible characters that can
/// reorder or hide text on a terminal: zero-width marks, bidirectional
/// overrides and isolates, and the byte-order mark.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn accepts_ordinary_names() {
        for ok in [
            "Peter S",
            "SUSTech",
            "Hyeonghwan",
            "\u{d64d}\u{d615}\u{d658}",
            "O'Brien-Smith",
            &"x".repeat(128),
        ] {
            assert!(name("user_name", ok).is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn rejects_blank_long_and_unsafe_names_naming_the_field() {
        let long = "x".repeat(129);
        for bad in [
            "",
            "   ",
            "\t",
            long.as_str(),
            "a\nINFO forged",
            "\u{1b}[31mred",
            "nul\0",
            "del\u{7f}",
            "rtl\u{202e}gnp.exe",
        ] {
            let status = name("institution", bad).unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}");
            assert!(
                status.message().starts_with("institution "),
                "{}",
                status.message()
            );
        }
    }
}
