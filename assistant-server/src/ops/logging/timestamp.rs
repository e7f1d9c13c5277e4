//! The log line's timestamp, as tracing's `SystemTime` writes it
//! (`2026-11-21T09:24:02.538967Z`), with the date and time of day formatted
//! only when the second changes, and the microseconds appended as two runs
//! of three digits from a table: at a line per story chunk, formatting the
//! calendar, or even the fraction through `write!`, for every line was a
//! measurable share of logging's cost. So was reading the clock through
//! `SystemTime`, whose way to seconds and microseconds costs more than the
//! clock itself.

use std::{
    cell::RefCell,
    fmt::{self, Write as _},
};

use time::{OffsetDateTime, format_description::BorrowedFormatItem, macros::format_description};
use tracing_subscriber::fmt::{
    format::Writer,
    time::{FormatTime, SystemTime},
};

/// The date and time of day, to the second.
const TO_THE_SECOND: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");

/// Writes the time as tracing's `SystemTime` does, formatting the date and
/// time of day only when the second changes.
pub(super) fn timestamp(writer: &mut Writer<'_>) -> fmt::Result {
    thread_local! {
        /// The second last formatted on this thread, and the line's
        /// timestamp as last written: only its fraction changes within the
        /// second.
        static STAMP: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let Some((secs, micros)) = now() else {
        return SystemTime.format_time(writer);
    };
    let written = STAMP.try_with(|stamp| {
        let mut stamp = stamp.try_borrow_mut().ok()?;
        let (second, text) = &mut *stamp;
        if *second != secs {
            *second = u64::MAX;
            text.clear();
            civil_time(text, secs).ok()?;
            text.push('.');
            // A year past 9999 is written by tracing's own formatting.
            if text.len() != FRACTION_AT {
                return None;
            }
            *second = secs;
        }
        text.truncate(FRACTION_AT);
        push_fraction(text, micros);
        Some(writer.write_str(text))
    });
    match written {
        Ok(Some(written)) => written,
        _ => SystemTime.format_time(writer),
    }
}

/// The time since the Unix epoch, in seconds and the microseconds past
/// them, as `SystemTime::now` reads it; `None` before 1970.
///
/// Read from the clock directly: `SystemTime`'s own way to the same two
/// numbers, `duration_since(UNIX_EPOCH)`, took a fifth of the clock's
/// share of a line's cost.
#[cfg(unix)]
fn now() -> Option<(u64, u32)> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable `timespec`, and the clock is one
    // every Unix has.
    let read = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) };
    if read != 0 {
        return None;
    }
    let secs = u64::try_from(now.tv_sec).ok()?;
    let micros = u32::try_from(now.tv_nsec / 1000).ok()?;
    Some((secs, micros))
}

/// The time since the Unix epoch, in seconds and the microseconds past
/// them; `None` before 1970.
#[cfg(not(unix))]
fn now() -> Option<(u64, u32)> {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    Some((since_epoch.as_secs(), since_epoch.subsec_micros()))
}

/// Where the fraction starts in `2026-11-21T09:24:02.538967Z`.
const FRACTION_AT: usize = 20;

/// `000` to `999`, three bytes each, made when the server is built.
const THREE_DIGITS: &str = {
    const BYTES: [u8; 3000] = {
        let mut bytes = [0; 3000];
        let mut n = 0;
        while n < 1000 {
            bytes[n * 3] = b'0' + (n / 100) as u8;
            bytes[n * 3 + 1] = b'0' + (n / 10 % 10) as u8;
            bytes[n * 3 + 2] = b'0' + (n % 10) as u8;
            n += 1;
        }
        bytes
    };
    match std::str::from_utf8(&BYTES) {
        Ok(digits) => digits,
        Err(_) => panic!("digits are ASCII"),
    }
};

/// Appends `micros` (below a million) as six decimal digits, and the `Z`.
fn push_fraction(text: &mut String, micros: u32) {
    text.push_str(three_digits(micros / 1000));
    text.push_str(three_digits(micros % 1000));
    text.push('Z');
}

/// `n` (below 1,000) as three decimal digits.
fn three_digits(n: u32) -> &'static str {
    let at = (n as usize % 1000) * 3;
    &THREE_DIGITS[at..at + 3]
}

/// `secs` since the Unix epoch as `YYYY-MM-DDTHH:MM:SS`, in UTC.
fn civil_time(out: &mut String, secs: u64) -> fmt::Result {
    let at = i64::try_from(secs)
        .ok()
        .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok())
        .ok_or(fmt::Error)?;
    let text = at.format(TO_THE_SECOND).map_err(|_| fmt::Error)?;
    out.write_str(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_time_matches_the_calendar() {
        for (secs, expected) in [
            (0, "1970-01-01T00:00:00"),
            (951_782_400, "2000-02-29T00:00:00"),
            (1_709_210_096, "2024-02-29T12:34:56"),
            (1_795_000_000, "2026-11-18T11:06:40"),
            (4_102_444_799, "2099-12-31T23:59:59"),
            (253_402_300_799, "9999-12-31T23:59:59"),
        ] {
            let mut out = String::new();
            civil_time(&mut out, secs).unwrap();
            assert_eq!(out, expected, "{secs}");
        }
    }

    #[test]
    fn the_fraction_is_six_digits_with_leading_zeros() {
        for (micros, expected) in [
            (0, "000000Z"),
            (7, "000007Z"),
            (42_000, "042000Z"),
            (538_967, "538967Z"),
            (999_999, "999999Z"),
        ] {
            let mut text = String::new();
            push_fraction(&mut text, micros);
            assert_eq!(text, expected);
        }
    }

    #[test]
    fn timestamps_read_as_tracing_writes_them() {
        // Ours before and after tracing's, the second of them from the
        // second's cached text: as the texts have one width, they sort
        // as the times do. Try again if a second ends between.
        let ours = || {
            let mut text = String::new();
            timestamp(&mut Writer::new(&mut text)).unwrap();
            text
        };
        for _ in 0..3 {
            let before = ours();
            let mut theirs = String::new();
            SystemTime
                .format_time(&mut Writer::new(&mut theirs))
                .unwrap();
            let after = ours();
            for ours in [&before, &after] {
                assert_eq!(ours.len(), theirs.len(), "{ours} against {theirs}");
                assert!(ours.ends_with('Z') && ours.as_bytes()[19] == b'.', "{ours}");
            }
            if before[..19] == theirs[..19] && after[..19] == theirs[..19] {
                assert!(
                    before <= theirs && theirs <= after,
                    "{before} {theirs} {after}"
                );
                return;
            }
        }
        panic!("the timestamps never agreed on the second");
    }
}
