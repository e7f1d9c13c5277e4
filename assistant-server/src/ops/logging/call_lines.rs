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
//! two pieces of the default format are redone to the same output with
//! less work: the timestamp ([`super::timestamp`]) and the fields
//! ([`super::fields`]). And a line in the span last entered on its thread
//! takes its `call#17: ` from that span's entry ([`super::entered`]),
//! without looking the span up: install the format with its layer
//! ([`CallLines::with_entered_spans`]).

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::{
    fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, format::Writer},
    registry::{LookupSpan, SpanRef},
};

use super::{
    entered::{EnteredSpans, Owner, learn, with_prefix},
    timestamp::timestamp,
};

/// The format; see the [module docs](self).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CallLines {
    /// The layer keeping entered spans' prefixes, if it is installed.
    entered: Option<Owner>,
}

impl CallLines {
    /// The format, and the layer it reads a line's prefix from: install
    /// both.
    pub(crate) fn with_entered_spans() -> (Self, EnteredSpans) {
        let (layer, owner) = EnteredSpans::new();
        let lines = Self {
            entered: Some(owner),
        };
        (lines, layer)
    }

    /// The format, reading prefixes from `owner`'s entries: only with
    /// that layer installed beside it.
    #[cfg(test)]
    pub(super) fn reading(owner: Owner) -> Self {
        Self {
            entered: Some(owner),
        }
    }
}

/// Marks a call whose fields have been printed once, with what its later
/// lines name it by (`call#17: `), if its fields have a number.
struct Introduced(Option<String>);

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
        writer.write_str(level(event.metadata().level()))?;
        // A line in the span last entered (the call's, mostly), once its
        // prefix is known: no lookups.
        let entered = self.entered.filter(|_| event.is_contextual());
        let known = entered.and_then(|owner| with_prefix(owner, |prefix| writer.write_str(prefix)));
        if let Some(written) = known {
            written?;
        } else if let Some(span) = ctx.parent_span() {
            // Most lines are in a call's span alone: no need to gather a
            // scope of one.
            if span.parent().is_none() {
                write_span::<S, N>(&mut writer, &span)?;
                if let Some(owner) = entered
                    && let Some(Introduced(Some(prefix))) = span.extensions().get::<Introduced>()
                {
                    learn(owner, &span.id(), prefix);
                }
            } else {
                for span in span.scope().from_root() {
                    write_span::<S, N>(&mut writer, &span)?;
                }
            }
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// ` {level:>5} `, without formatting it.
fn level(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => " TRACE ",
        Level::DEBUG => " DEBUG ",
        Level::INFO => "  INFO ",
        Level::WARN => "  WARN ",
        Level::ERROR => " ERROR ",
    }
}

/// Writes a span's part of a line: its fields the first time, its number
/// after that if it has one.
fn write_span<S, N>(writer: &mut Writer<'_>, span: &SpanRef<'_, S>) -> fmt::Result
where
    S: for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    let number = {
        let extensions = span.extensions();
        let introduced = extensions.get::<Introduced>();
        if let Some(Introduced(Some(prefix))) = introduced {
            return writer.write_str(prefix);
        }
        let fields = extensions
            .get::<FormattedFields<N>>()
            .map_or("", |f| f.fields.as_str());
        write!(writer, "{}{{{fields}}}: ", span.name())?;
        // Marked the first time: a span without a number keeps its fields.
        introduced
            .is_none()
            .then(|| call_number(fields).map(|id| format!("{}#{id}: ", span.name())))
    };
    if let Some(number) = number {
        span.extensions_mut().insert(Introduced(number));
    }
    Ok(())
}

/// The `id` a span's formatted fields start with (`id=17 method=..`),
/// whether or not they are coloured (with colours on, tracing writes the
/// field's name in italics, then a dimmed `=`).
fn call_number(fields: &str) -> Option<String> {
    let plain = without_colours(fields);
    let rest = plain.strip_prefix("id=")?;
    Some(rest.split(' ').next().unwrap_or(rest).to_owned())
}

/// `text` without its ANSI escape sequences (`ESC [ ... final byte`).
fn without_colours(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains('\x1b') {
        return text.into();
    }
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            plain.push(c);
            continue;
        }
        if chars.next() == Some('[') {
            for c in chars.by_ref() {
                if ('\x40'..='\x7e').contains(&c) {
                    break;
                }
            }
        }
    }
    plain.into()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    #[test]
    fn finds_the_call_number() {
        assert_eq!(
            call_number("id=17 method=/a/B peer=1.2.3.4:5").as_deref(),
            Some("17")
        );
        assert_eq!(call_number("id=3").as_deref(), Some("3"));
        assert_eq!(call_number("method=/a/B"), None);
    }

    #[test]
    fn finds_the_call_number_in_coloured_fields_too() {
        let coloured = "\x1b[3mid\x1b[0m\x1b[2m=\x1b[0m17 \x1b[3mmethod\x1b[0m\x1b[2m=\x1b[0m/a/B";
        assert_eq!(call_number(coloured).as_deref(), Some("17"));
    }

    #[test]
    fn with_colours_on_a_calls_later_lines_name_it_by_number() {
        let text = logged(true, || {
            let span = tracing::info_span!("call", id = 17, method = "/a/B");
            let _entered = span.enter();
            tracing::info!("first");
            tracing::info!("second");
        });
        let second = text.lines().nth(1).unwrap();
        assert!(second.contains(" call#17: "), "{second:?}");
        assert!(second.len() < 80, "no context repeated: {second:?}");
    }

    #[test]
    fn levels_read_as_tracing_pads_them() {
        for at in [
            Level::TRACE,
            Level::DEBUG,
            Level::INFO,
            Level::WARN,
            Level::ERROR,
        ] {
            assert_eq!(level(&at), format!(" {at:>5} "));
        }
    }

    #[test]
    fn a_span_inside_another_names_both_from_the_root() {
        let text = logged(false, || {
            let outer = tracing::info_span!("connection", peer = "1.2.3.4:5");
            let _outer = outer.enter();
            let call = tracing::info_span!("call", id = 17);
            let _call = call.enter();
            tracing::warn!("first");
            tracing::warn!("second");
        });
        let lines: Vec<_> = text.lines().collect();
        assert!(
            lines[0].ends_with("  WARN connection{peer=\"1.2.3.4:5\"}: call{id=17}: first"),
            "{text}"
        );
        assert!(
            lines[1].ends_with("  WARN connection{peer=\"1.2.3.4:5\"}: call#17: second"),
            "{text}"
        );
    }

    #[test]
    fn explicit_parents_and_lines_outside_spans_read_as_before() {
        let text = logged(false, || {
            tracing::info!("outside");
            let call = tracing::info_span!("call", id = 3);
            let other = tracing::info_span!("other", id = 4);
            let _other = other.enter();
            tracing::info!(parent: &call, "to the call");
            tracing::info!(parent: None, "to no span");
        });
        let lines: Vec<_> = text.lines().map(|line| &line[27..]).collect();
        assert_eq!(
            lines,
            [
                "  INFO outside",
                "  INFO call{id=3}: to the call",
                "  INFO to no span"
            ],
            "{text}"
        );
    }

    #[test]
    fn a_span_without_a_number_names_its_fields_on_every_line() {
        let text = logged(false, || {
            let span = tracing::info_span!("health", service = "assistant");
            let _entered = span.enter();
            tracing::info!("first");
            tracing::info!("second");
        });
        let lines: Vec<_> = text.lines().map(|line| &line[27..]).collect();
        assert_eq!(
            lines,
            [
                "  INFO health{service=\"assistant\"}: first",
                "  INFO health{service=\"assistant\"}: second"
            ],
            "{text}"
        );
    }

    /// What `log` logs in this format, with colours or without, read both
    /// with the entered spans' prefixes kept and without: the same but for
    /// the timestamps.
    pub(in super::super) fn logged(ansi: bool, log: impl Fn()) -> String {
        let (kept, entered) = CallLines::with_entered_spans();
        let fast = logged_by(ansi, kept, Some(entered), &log);
        let slow = logged_by(ansi, CallLines::default(), None, &log);
        let untimed = |text: &str| -> Vec<String> {
            text.lines()
                .map(|line| line.get(27..).unwrap_or(line).to_owned())
                .collect()
        };
        assert_eq!(untimed(&fast), untimed(&slow), "{fast}\n{slow}");
        fast
    }

    pub(in super::super) fn logged_by(
        ansi: bool,
        lines: CallLines,
        entered: Option<EnteredSpans>,
        log: &impl Fn(),
    ) -> String {
        use std::sync::{Arc, Mutex};

        use tracing_subscriber::layer::SubscriberExt as _;

        let captured = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(ansi)
            .event_format(lines)
            .with_writer({
                let captured = Arc::clone(&captured);
                move || Capture(Arc::clone(&captured))
            })
            .finish()
            .with(entered);
        tracing::subscriber::with_default(subscriber, log);
        String::from_utf8(captured.lock().unwrap().clone()).unwrap()
    }

    struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
