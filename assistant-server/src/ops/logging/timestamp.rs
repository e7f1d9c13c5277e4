//! The log line's timestamp, as tracing's `SystemTime` writes it
//! (`2026-11-21T09:24:02.538967Z`), with the date and time of day formatted
//! only when the second changes, and the microseconds written as six
//! digits in place: at a line per story chunk, formatting the calendar, or
//! even the fraction through `write!`, for every line was a measurable
//! share of logging's cost.

use std::{
    cell::RefCell,
    fmt::{self, Write as _},
    time::{SystemTime as Clock, UNIX_EPOCH},
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
        static SECOND: RefCell<(u64, [u8; STAMP_LEN])> =
            const { RefCell::new((u64::MAX, [0; STAMP_LEN])) };
    }
    let Ok(since_epoch) = Clock::now().duration_since(UNIX_EPOCH) else {
        return SystemTime.format_time(writer);
    };
    let secs = since_epoch.as_secs();
    let stamp = SECOND.with_borrow_mut(|(second, stamp)| {
        if *second != secs {
            let mut text = String::with_capacity(STAMP_LEN);
            civil_time(&mut text, secs).ok()?;
            text.push_str(".000000Z");
            *stamp = text.as_bytes().try_into().ok()?;
            *second = secs;
        }
        // The six digits of microseconds, before the `Z`.
        fraction(
            &mut stamp[STAMP_LEN - 7..STAMP_LEN - 1],
            since_epoch.subsec_micros(),
        );
        Some(*stamp)
    });
    match stamp.as_ref().map(|stamp| std::str::from_utf8(stamp)) {
        Some(Ok(stamp)) => writer.write_str(stamp),
        _ => SystemTime.format_time(writer),
    }
}

/// The length of `2026-11-21T09:24:02.538967Z`; a time that does not fit
/// is written by tracing's own formatting.
const STAMP_LEN: usize = 27;

/// Writes `micros` (below a million) into `digits` as six decimal digits.
fn fraction(digits: &mut [u8], mut micros: u32) {
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (micros % 10) as u8;
        micros /= 10;
    }
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
            (0, "000000"),
            (7, "000007"),
            (538_967, "538967"),
            (999_999, "999999"),
        ] {
            let mut digits = [b'x'; 6];
            fraction(&mut digits, micros);
            assert_eq!(std::str::from_utf8(&digits).unwrap(), expected);
        }
    }

    #[test]
    fn timestamps_read_as_tracing_writes_them() {
        // Both are read from the clock: try again if a second ends between.
        for _ in 0..3 {
            let (mut ours, mut theirs) = (String::new(), String::new());
            timestamp(&mut Writer::new(&mut ours)).unwrap();
            SystemTime
                .format_time(&mut Writer::new(&mut theirs))
                .unwrap();
            assert_eq!(ours.len(), theirs.len(), "{ours} against {theirs}");
            assert!(ours.ends_with('Z') && ours.as_bytes()[19] == b'.', "{ours}");
            if ours[..19] == theirs[..19] {
                return;
            }
        }
        panic!("the timestamps never agreed on the second");
    }
}
