//! The spans entered on each thread, each with the text its lines start
//! with (`call#17: `) once a line has said it: so that a line in a call's
//! span, nearly every line a busy server logs, starts without looking its
//! span up.
//!
//! tracing's registry keeps the entered spans too, but to read a span's
//! line prefix from it a line took two lookups of the span and a lock on
//! its extensions: about a fifth of what a story's line cost. A call's span
//! is entered once each time its task runs, and the story logs many lines
//! in one run, so keeping the prefix with the entry costs little more than
//! the entry.
//!
//! Entries mirror the registry's stack of entered spans exactly: the
//! [`EnteredSpans`] layer sees every enter and exit the registry sees, and
//! an entry lives only while its span is entered, so a span cannot close,
//! and its id cannot be reused, while its entry is there. An entry is
//! marked with its layer's [`Owner`], as one thread may enter spans of two
//! subscribers (a test's own inside the process's): a line whose
//! subscriber's span is not the last one entered on its thread is
//! formatted the slow way. So is every line on a thread whose entries once
//! missed an enter or an exit (they were in use at that moment, which
//! nothing here allows): a prefix is never read from an entry that might
//! not be its span's. And a prefix is learnt only from a line whose span
//! the registry named current, into the last entry, when that entry is the
//! same span's: a span entered again inside another (which the registry
//! does not count as current) stays without one.

use std::{
    cell::{Cell, RefCell},
    sync::atomic::{AtomicU64, Ordering},
};

use tracing::{Subscriber, span};
use tracing_subscriber::{Layer, layer::Context};

/// Tells one [`EnteredSpans`] layer's entries from another's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Owner(u64);

/// A layer that keeps the spans entered on each thread; see the
/// [module docs](self).
#[derive(Debug)]
pub(super) struct EnteredSpans(Owner);

impl EnteredSpans {
    /// A layer of its own, and the owner of its entries.
    pub(super) fn new() -> (Self, Owner) {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let owner = Owner(NEXT.fetch_add(1, Ordering::Relaxed));
        (Self(owner), owner)
    }
}

/// One entered span.
#[derive(Debug)]
struct Entry {
    owner: Owner,
    span: span::Id,
    /// What its lines start with, once a line has said it; empty until
    /// then, or if its lines name it some other way.
    prefix: String,
}

/// The spans entered on a thread, in order, and past them entries kept
/// for their buffers: entering a span allocates nothing once a thread has
/// been as deep before.
#[derive(Debug, Default)]
struct Stack {
    entries: Vec<Entry>,
    depth: usize,
}

/// A thread's entered spans.
struct Entered {
    stack: RefCell<Stack>,
    /// Set if an enter or exit could not be kept (the stack was in use):
    /// from then on this thread's lines look their spans up.
    out_of_step: Cell<bool>,
}

thread_local! {
    static ENTERED: Entered = const {
        Entered {
            stack: RefCell::new(Stack {
                entries: Vec::new(),
                depth: 0,
            }),
            out_of_step: Cell::new(false),
        }
    };
}

/// Changes this thread's stack, or notes that it no longer mirrors the
/// registry's.
fn change_stack(change: impl FnOnce(&mut Stack)) {
    let _ = ENTERED.try_with(|entered| match entered.stack.try_borrow_mut() {
        Ok(mut stack) => change(&mut stack),
        Err(_) => entered.out_of_step.set(true),
    });
}

impl<S: Subscriber> Layer<S> for EnteredSpans {
    fn on_enter(&self, id: &span::Id, _: Context<'_, S>) {
        change_stack(|Stack { entries, depth }| {
            match entries.get_mut(*depth) {
                Some(entry) => {
                    entry.owner = self.0;
                    entry.span = id.clone();
                    entry.prefix.clear();
                }
                None => entries.push(Entry {
                    owner: self.0,
                    span: id.clone(),
                    prefix: String::new(),
                }),
            }
            *depth += 1;
        });
    }

    fn on_exit(&self, id: &span::Id, _: Context<'_, S>) {
        change_stack(|Stack { entries, depth }| {
            // The last entry of this span, as the registry pops: spans may
            // be exited out of order.
            let Some(at) = entries[..*depth]
                .iter()
                .rposition(|entry| entry.owner == self.0 && entry.span == *id)
            else {
                return;
            };
            // Moved past the entered ones, its buffer kept.
            entries[at..*depth].rotate_left(1);
            *depth -= 1;
        });
    }
}

/// Calls `write` with the prefix of the span last entered on this thread,
/// if it is `owner`'s and a line has said its prefix; `None` otherwise.
pub(super) fn with_prefix<R>(owner: Owner, write: impl FnOnce(&str) -> R) -> Option<R> {
    ENTERED
        .try_with(|entered| {
            if entered.out_of_step.get() {
                return None;
            }
            let stack = entered.stack.try_borrow().ok()?;
            let entry = stack.entries[..stack.depth].last()?;
            (entry.owner == owner && !entry.prefix.is_empty()).then(|| write(&entry.prefix))
        })
        .ok()
        .flatten()
}

/// Notes that lines in `span` start with `prefix`, if it is the span last
/// entered on this thread, and `owner`'s.
pub(super) fn learn(owner: Owner, span: &span::Id, prefix: &str) {
    let _ = ENTERED.try_with(|entered| {
        let Ok(mut stack) = entered.stack.try_borrow_mut() else {
            return;
        };
        let depth = stack.depth;
        if let Some(entry) = stack.entries[..depth].last_mut()
            && entry.owner == owner
            && entry.span == *span
        {
            entry.prefix.clear();
            entry.prefix.push_str(prefix);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::{
        super::call_lines::{
            CallLines,
            tests::{logged, logged_by},
        },
        *,
    };

    #[test]
    fn calls_taking_turns_on_a_thread_each_keep_their_own_number() {
        let text = logged(false, || {
            let a = tracing::info_span!("call", id = 1);
            let b = tracing::info_span!("call", id = 2);
            for _ in 0..2 {
                for span in [&a, &b] {
                    let _entered = span.enter();
                    tracing::info!("first");
                    tracing::info!("second");
                }
            }
            // Entered twice, exited once: still in it.
            let once = a.enter();
            let twice = a.enter();
            drop(twice);
            tracing::info!("still");
            drop(once);
            // Exited out of order: the one entered last is current.
            let root = tracing::info_span!(parent: None, "call", id = 3);
            let in_a = a.enter();
            tracing::info!("in a");
            let in_root = root.enter();
            tracing::info!("in root");
            drop(in_a);
            tracing::info!("third");
            drop(in_root);
            // A call inside another names both.
            let _in_b = b.enter();
            let inner = tracing::info_span!("call", id = 4);
            let _in_inner = inner.enter();
            tracing::info!("inner");
        });
        let lines: Vec<_> = text.lines().map(|line| &line[27..]).collect();
        assert_eq!(
            lines,
            [
                "  INFO call{id=1}: first",
                "  INFO call#1: second",
                "  INFO call{id=2}: first",
                "  INFO call#2: second",
                "  INFO call#1: first",
                "  INFO call#1: second",
                "  INFO call#2: first",
                "  INFO call#2: second",
                "  INFO call#1: still",
                "  INFO call#1: in a",
                "  INFO call{id=3}: in root",
                "  INFO call#3: third",
                "  INFO call#2: call{id=4}: inner",
            ],
            "{text}"
        );
    }

    #[test]
    fn a_span_entered_is_named_by_the_prefix_kept_with_it() {
        let (entered, owner) = EnteredSpans::new();
        let text = logged_by(false, CallLines::reading(owner), Some(entered), &|| {
            let span = tracing::info_span!("call", id = 17);
            let _entered = span.enter();
            assert_eq!(with_prefix(owner, str::to_owned), None, "not yet said");
            tracing::info!("first");
            assert_eq!(
                with_prefix(owner, str::to_owned).as_deref(),
                Some("call#17: ")
            );
            tracing::info!("second");
        });
        assert!(text.ends_with("  INFO call#17: second\n"), "{text}");
    }

    #[test]
    fn a_line_under_another_subscriber_is_not_named_by_this_ones_span() {
        let (outer_lines, outer_entered) = CallLines::with_entered_spans();
        let inner = std::sync::Mutex::new(String::new());
        logged_by(false, outer_lines, Some(outer_entered), &|| {
            let span = tracing::info_span!("call", id = 5);
            let _entered = span.enter();
            tracing::info!("learnt");
            let (inner_lines, inner_entered) = CallLines::with_entered_spans();
            *inner.lock().unwrap() = logged_by(false, inner_lines, Some(inner_entered), &|| {
                tracing::info!("elsewhere");
            });
        });
        let inner = inner.into_inner().unwrap();
        assert!(inner.ends_with("  INFO elsewhere\n"), "{inner}");
    }
}
