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
//! ([`super::fields`]).

use std::fmt;

use tracing::{Event, Subscriber};
use tracing_subscriber::{
    fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, format::Writer},
    registry::LookupSpan,
};

use super::timestamp::timestamp;

/// The format; see the [module docs](self).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CallLines;

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

/// The `id` a span's formatted fields start with (`id=17 method=..`).
fn call_number(fields: &str) -> Option<&str> {
    let rest = fields.strip_prefix("id=")?;
    Some(rest.split(' ').next().unwrap_or(rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_call_number() {
        assert_eq!(call_number("id=17 method=/a/B peer=1.2.3.4:5"), Some("17"));
        assert_eq!(call_number("id=3"), Some("3"));
        assert_eq!(call_number("method=/a/B"), None);
    }
}
