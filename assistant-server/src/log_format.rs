//! The server's text log format: a call's context once, then its number.
//!
//! tracing's default text format repeats every span's fields on every
//! line. A story call logs a line per chunk, so that is about 80 bytes of
//! `call{id=.. method=.. peer=.. user=..}` on each of 146 lines, and the
//! bytes a busy server must format and write are what limit its throughput
//! with logging on. This format prints a call's fields on its first line
//! and then only `call#ID` on the rest, so every line can still be tied to
//! its call:
//!
//! ```text
//! 2026-11-21T09:24:02.538967Z  INFO call{id=17 method=/assistant.AssistantService/TellStory peer=127.0.0.1:53608 user=Peter S}: Received story-telling request from Peter S, SUSTech.
//! 2026-11-21T09:24:02.538985Z  INFO call#17: Start streaming alice.txt
//! 2026-11-21T09:24:02.539002Z  INFO call#17: Read 1024 bytes: [Alice's A ...
//! ```
//!
//! Lines outside a call look as in the default format. JSON logs keep all
//! of a call's fields on every line.
//!
//! With every chunk logged, formatting is most of what logging costs, so
//! two pieces of the default format are redone here to the same output
//! with less work: the timestamp ([`CallLines`] formats the date and time
//! once a second per thread, then only the microseconds), and the message
//! ([`LogFields`] escapes terminal control characters as tracing does, but
//! checks whole strings at once instead of writing character by character).

use std::{
    cell::RefCell,
    fmt::{self, Write as _},
    time::{SystemTime as Clock, UNIX_EPOCH},
};

use tracing::{
    Event, Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{
    field::{RecordFields, VisitOutput},
    fmt::{
        FmtContext, FormatEvent, FormatFields, FormattedFields,
        format::{DefaultFields, DefaultVisitor, Writer},
        time::{FormatTime, SystemTime},
    },
    registry::LookupSpan,
};

/// The format; see the [module docs](self).
#[derive(Debug, Clone, Copy, Default)]
pub struct CallLines;

/// Marks a call whose fields have been printed once.
struct Introduced;

impl<S, N> FormatEvent<S, N> for CallLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        timestamp(&mut writer)?;
        write!(writer, " {:>5} ", event.metadata().level())?;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let introduced = {
                    let extensions = span.extensions();
                    let fields = extensions
                        .get::<FormattedFields<N>>()
                        .map_or("", |f| f.fields.as_str());
                    if extensions.get::<Introduced>().is_some() {
                        match call_number(fields) {
                            Some(id) => write!(writer, "{}#{id}: ", span.name())?,
                            None => write!(writer, "{}{{{fields}}}: ", span.name())?,
                        }
                        true
                    } else {
                        write!(writer, "{}{{{fields}}}: ", span.name())?;
                        false
                    }
                };
                if !introduced {
                    span.extensions_mut().insert(Introduced);
                }
            }
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Writes the time as tracing's `SystemTime` does
/// (`2026-11-21T09:24:02.538967Z`), formatting the date and time of day
/// only when the second changes.
fn timestamp(writer: &mut Writer<'_>) -> fmt::Result {
    thread_local! {
        /// The second last formatted on this thread, and its text up to
        /// the fraction.
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let Ok(since_epoch) = Clock::now().duration_since(UNIX_EPOCH) else {
        return SystemTime.format_time(writer);
    };
    let secs = since_epoch.as_secs();
    SECOND.with_borrow_mut(|(second, text)| {
        if *second != secs {
            text.clear();
            civil_time(text, secs)?;
            *second = secs;
        }
        write!(writer, "{text}.{:06}Z", since_epoch.subsec_micros())
    })
}

/// `secs` since the Unix epoch as `YYYY-MM-DDTHH:MM:SS`, in UTC.
fn civil_time(out: &mut String, secs: u64) -> fmt::Result {
    // Howard Hinnant's days-to-civil algorithm, for days since 1970-01-01.
    let days = (secs / 86_400) as i64;
    let time_of_day = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        time_of_day / 3_600,
        time_of_day / 60 % 60,
        time_of_day % 60
    )
}

/// Formats an event's or a span's fields as tracing's default does, with
/// a faster path for the message; see the [module docs](self).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogFields;

impl<'writer> FormatFields<'writer> for LogFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        if writer.has_ansi_escapes() {
            // Colours: tracing's own, exactly.
            return DefaultFields::new().format_fields(writer, fields);
        }
        let mut visitor = FieldsVisitor {
            writer,
            is_empty: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

/// Writes the message itself, and hands every other field to tracing's
/// default visitor, one field at a time.
struct FieldsVisitor<'writer> {
    writer: Writer<'writer>,
    is_empty: bool,
    result: fmt::Result,
}

impl FieldsVisitor<'_> {
    fn default_visitor(&mut self, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        if self.result.is_err() {
            return;
        }
        let mut visitor = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
        record(&mut visitor);
        self.result = visitor.finish();
    }

    /// Whether tracing's visitor writes this field at all.
    fn note_written(&mut self, field: &Field) {
        if !field.name().starts_with("log.") {
            self.is_empty = false;
        }
    }
}

impl Visit for FieldsVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            self.default_visitor(|visitor| visitor.record_str(field, value));
            self.note_written(field);
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.default_visitor(|visitor| visitor.record_error(field, value));
        self.note_written(field);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() != "message" {
            self.default_visitor(|visitor| visitor.record_debug(field, value));
            self.note_written(field);
            return;
        }
        if self.result.is_err() {
            return;
        }
        if !self.is_empty {
            self.result = self.writer.write_char(' ');
        }
        self.is_empty = false;
        if self.result.is_ok() {
            self.result = write!(Sanitizing(&mut self.writer), "{value:?}");
        }
    }
}

/// Escapes what tracing's formatter escapes in a message, so that it
/// cannot drive a terminal: ESC, BEL, BS, FF and DEL as `\x1b` and the
/// like, and C1 control characters as `\u{9b}`.
struct Sanitizing<'a, W>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Sanitizing<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let bytes = s.as_bytes();
        let mut clean = 0;
        let mut i = 0;
        while i < bytes.len() {
            let escape_len = match bytes[i] {
                0x1b | 0x07 | 0x08 | 0x0c | 0x7f => 1,
                // U+0080..=U+009F, the C1 controls, in UTF-8.
                0xc2 if matches!(bytes.get(i + 1), Some(0x80..=0x9f)) => 2,
                _ => 0,
            };
            if escape_len == 0 {
                i += 1;
                continue;
            }
            self.0.write_str(&s[clean..i])?;
            match bytes[i] {
                0xc2 => write!(self.0, "\\u{{{:x}}}", bytes[i + 1])?,
                byte => write!(self.0, "\\x{byte:02x}")?,
            }
            i += escape_len;
            clean = i;
        }
        self.0.write_str(&s[clean..])
    }
}

/// The `id` a span's formatted fields start with (`id=17 method=..`).
fn call_number(fields: &str) -> Option<&str> {
    let rest = fields.strip_prefix("id=")?;
    Some(rest.split(' ').next().unwrap_or(rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use assistant_proto::text::Escaped;

    use std::{
        io,
        sync::{Arc, Mutex},
    };

    use tracing::{info, info_span};
    use tracing_subscriber::fmt::MakeWriter;

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

    /// Collects what a subscriber writes.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Capture {
        type Writer = Self;

        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    fn emit_everything() {
        let error = io::Error::other("the disk is \x1b[31mred");
        info!("plain");
        info!(
            "control: \x1b[31m bell \x07 bs \x08 ff \x0c del \x7f csi \u{9b} nl \n \u{e9}\u{2014}"
        );
        info!(count = 3, name = "str", list = ?vec![1, 2], shown = %"disp", "message {}", 5);
        info!(
            error = &error as &(dyn std::error::Error + 'static),
            "with an error"
        );
        info!(a = 1, b = true);
        info!(first = 1.5, "the message after a field");
        info!(message = "a message field \x1b", extra = -4);
        let span = info_span!("call", id = 3, user = %"Peter \x1b S");
        let _entered = span.enter();
        info!("inside a span: {}", Escaped(b"\xff\x1b"));
    }

    fn format_with<N>(fields: N) -> String
    where
        N: for<'w> FormatFields<'w> + Send + Sync + 'static,
    {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .without_time()
            .with_writer(capture.clone())
            .fmt_fields(fields)
            .finish();
        tracing::subscriber::with_default(subscriber, emit_everything);
        let bytes = capture.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn fields_are_formatted_exactly_as_tracing_formats_them() {
        let ours = format_with(LogFields);
        let theirs = format_with(DefaultFields::new());
        assert_eq!(ours, theirs);
        // Messages escaped (the comparison alone would pass if neither
        // escaped); other fields are written as they are, as tracing does.
        let control = ours.lines().find(|line| line.contains("control:")).unwrap();
        assert!(
            control.contains(r"control: \x1b[31m bell \x07 bs \x08 ff \x0c del \x7f csi \u{9b}"),
            "{control}"
        );
        assert!(!control.contains('\x1b'), "{control}");
    }

    #[test]
    fn sanitizing_leaves_clean_text_alone() {
        let mut out = String::new();
        write!(Sanitizing(&mut out), "caf\u{e9} \u{2014} [Alice's A").unwrap();
        assert_eq!(out, "caf\u{e9} \u{2014} [Alice's A");
        out.clear();
        write!(Sanitizing(&mut out), "\u{9b}\u{9f}\u{a0}\u{80}").unwrap();
        assert_eq!(out, "\\u{9b}\\u{9f}\u{a0}\\u{80}");
    }

    #[test]
    fn finds_the_call_number() {
        assert_eq!(call_number("id=17 method=/a/B peer=1.2.3.4:5"), Some("17"));
        assert_eq!(call_number("id=3"), Some("3"));
        assert_eq!(call_number("method=/a/B"), None);
    }
}
