//! The number of calls in flight, and who hears when it changes.
//!
//! Every call changes the count twice, on whichever thread serves its
//! connection. Waking a task that waits on another thread costs system
//! calls (an eventfd write and a futex wake; measured at about two of each
//! a call when every change was announced), so a change is announced only
//! to those who asked:
//!
//! - [`Count::wait_for`], while it waits (shutdown, and tests);
//! - the fullness watch ([`Count::fullness`]), only when the server turns
//!   full or has room again.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use tokio::sync::watch;

/// The top bit of [`Count::state`]: the server is full.
const FULL: usize = 1 << (usize::BITS - 1);

/// The count; see the [module docs](self).
#[derive(Debug)]
pub(super) struct Count {
    /// The calls in flight and, in the top bit, whether the server is full.
    /// One word, so that the count and the flag change together.
    state: AtomicUsize,
    /// Tasks in [`Count::wait_for`] now.
    waiting: AtomicUsize,
    /// Announces changes to them.
    changed: watch::Sender<()>,
    /// Full from this many calls (never, until [`Count::fullness`] says)…
    full_at: AtomicUsize,
    /// …with room again below this many.
    again_below: AtomicUsize,
    full: watch::Sender<bool>,
}

impl Default for Count {
    fn default() -> Self {
        Self {
            state: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            changed: watch::channel(()).0,
            full_at: AtomicUsize::new(usize::MAX),
            again_below: AtomicUsize::new(0),
            full: watch::channel(false).0,
        }
    }
}

impl Count {
    /// The calls in flight now.
    pub(super) fn get(&self) -> usize {
        self.state.load(SeqCst) & !FULL
    }

    /// Counts one more call, unless `max` are in flight already.
    pub(super) fn add_below(&self, max: usize) -> bool {
        self.update(|n| (n < max).then_some(n + 1))
    }

    /// Counts one more call, whatever the count.
    pub(super) fn add(&self) {
        self.update(|n| Some(n + 1));
    }

    /// Counts one call fewer.
    pub(super) fn sub(&self) {
        let counted = self.update(|n| n.checked_sub(1));
        debug_assert!(counted, "a call left that was not counted");
    }

    /// Applies `change` to the count, and announces it; false if `change`
    /// declined.
    fn update(&self, change: impl Fn(usize) -> Option<usize>) -> bool {
        let full_at = self.full_at.load(SeqCst);
        let again_below = self.again_below.load(SeqCst);
        let mut old = self.state.load(SeqCst);
        let new = loop {
            let Some(n) = change(old & !FULL) else {
                return false;
            };
            let full = if n >= full_at {
                true
            } else if n < again_below {
                false
            } else {
                old & FULL != 0
            };
            let new = n | if full { FULL } else { 0 };
            match self.state.compare_exchange_weak(old, new, SeqCst, SeqCst) {
                Ok(_) => break new,
                Err(now) => old = now,
            }
        };
        if (old ^ new) & FULL != 0 {
            // Read again under the watch's lock: of two flips announced in
            // a race, the later announcement carries the latest state.
            self.full.send_if_modified(|full| {
                let now = self.state.load(SeqCst) & FULL != 0;
                std::mem::replace(full, now) != now
            });
        }
        // Either a waiter sees the new count when it first looks, or it
        // counted itself before this load and hears the change.
        if self.waiting.load(SeqCst) > 0 {
            self.changed.send_modify(|()| ());
        }
        true
    }

    /// Waits until the count satisfies `ready`.
    pub(super) async fn wait_for(&self, mut ready: impl FnMut(usize) -> bool) {
        self.waiting.fetch_add(1, SeqCst);
        let _waiting = Waiting(&self.waiting);
        let mut changes = self.changed.subscribe();
        while !ready(self.get()) {
            // The sender lives in `self`: it cannot close while we wait.
            if changes.changed().await.is_err() {
                return;
            }
        }
    }

    /// Follows whether the server is full: from `full_at` calls in flight
    /// until fewer than `again_below` are, so that health does not flap
    /// with every call at the limit.
    pub(super) fn fullness(&self, full_at: usize, again_below: usize) -> watch::Receiver<bool> {
        self.full_at.store(full_at, SeqCst);
        self.again_below.store(again_below, SeqCst);
        let watch = self.full.subscribe();
        // Takes the marks to the count as it is now.
        self.update(Some);
        watch
    }
}

/// Counts a task in [`Count::wait_for`] until dropped.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_at_the_mark_until_below_the_lower_one() {
        let count = Count::default();
        let full = count.fullness(3, 2);
        let seen = || *full.borrow();
        count.add();
        count.add();
        assert!(!seen());
        count.add();
        assert!(seen(), "full at 3");
        count.sub();
        assert!(seen(), "still full at 2: room again only below 2");
        count.sub();
        assert!(!seen(), "room again at 1");
        assert_eq!(count.get(), 1);
    }

    #[test]
    fn takes_a_count_past_its_mark_as_it_is() {
        let count = Count::default();
        for _ in 0..3 {
            count.add();
        }
        assert!(*count.fullness(2, 1).borrow());
    }

    #[test]
    fn adds_below_a_cap_only() {
        let count = Count::default();
        assert!(count.add_below(1));
        assert!(!count.add_below(1));
        assert_eq!(count.get(), 1);
    }

    #[tokio::test]
    async fn a_waiter_hears_changes_made_on_other_threads() {
        use std::sync::Arc;
        let count = Arc::new(Count::default());
        let waiter = tokio::spawn({
            let count = Arc::clone(&count);
            async move { count.wait_for(|n| n == 1000).await }
        });
        // The waiter is waiting before any change: it can only hear them.
        while count.waiting.load(SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let adder = std::thread::spawn({
            let count = Arc::clone(&count);
            move || {
                for _ in 0..1000 {
                    count.add();
                }
            }
        });
        adder.join().expect("adder");
        tokio::time::timeout(std::time::Duration::from_secs(10), waiter)
            .await
            .expect("the waiter heard the count reach 1000")
            .expect("waiter");
        assert_eq!(
            count.waiting.load(SeqCst),
            0,
            "the waiter counted itself out"
        );
    }
}
