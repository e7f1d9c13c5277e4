//! Stories read from a directory, kept while they fit in a byte budget.
//!
//! A story is kept with the modification time and size it was read at, so
//! a changed file is read again. When the texts kept pass the budget, the
//! story used longest ago goes first. A story being told stays in memory
//! while its calls run, kept or not: they hold the text itself.

use std::{collections::HashMap, time::SystemTime};

use super::Story;

/// When and how big a file was, as the cache knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Stamp {
    pub(super) modified: SystemTime,
    pub(super) size: u64,
}

#[derive(Debug)]
struct Kept {
    stamp: Stamp,
    story: Story,
    last_used: u64,
}

/// The cache; see the [module docs](self).
#[derive(Debug)]
pub(super) struct Cache {
    budget: u64,
    kept: HashMap<String, Kept>,
    bytes: u64,
    clock: u64,
}

impl Cache {
    /// A cache of at most `budget` bytes of text.
    pub(super) fn new(budget: u64) -> Self {
        Self {
            budget,
            kept: HashMap::new(),
            bytes: 0,
            clock: 0,
        }
    }

    /// The story called `name`, if it is kept as of `stamp`.
    pub(super) fn get(&mut self, name: &str, stamp: Stamp) -> Option<Story> {
        self.clock += 1;
        let kept = self.kept.get_mut(name)?;
        if kept.stamp != stamp {
            return None;
        }
        kept.last_used = self.clock;
        Some(kept.story.clone())
    }

    /// Keeps `story`, read as of `stamp`, making room by letting the
    /// stories used longest ago go. A story bigger than the whole budget
    /// is not kept.
    pub(super) fn insert(&mut self, name: &str, stamp: Stamp, story: Story) {
        let len = story.text().len() as u64;
        if let Some(old) = self.kept.remove(name) {
            self.bytes -= old.story.text().len() as u64;
        }
        if len > self.budget {
            return;
        }
        while self.bytes + len > self.budget {
            let Some(oldest) = self
                .kept
                .iter()
                .min_by_key(|(_, kept)| kept.last_used)
                .map(|(name, _)| name.clone())
            else {
                break;
            };
            if let Some(gone) = self.kept.remove(&oldest) {
                self.bytes -= gone.story.text().len() as u64;
            }
        }
        self.clock += 1;
        self.bytes += len;
        self.kept.insert(
            name.to_owned(),
            Kept {
                stamp,
                story,
                last_used: self.clock,
            },
        );
    }

    /// Bytes of text kept.
    #[cfg(test)]
    fn bytes(&self) -> u64 {
        self.bytes
    }

    /// How many stories are kept, and their bytes.
    pub(super) fn held(&self) -> (usize, u64) {
        (self.kept.len(), self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(size: u64) -> Stamp {
        Stamp {
            modified: SystemTime::UNIX_EPOCH,
            size,
        }
    }

    fn story(name: &str, len: usize) -> Story {
        Story::new(name, vec![b'x'; len])
    }

    #[test]
    fn keeps_stories_within_the_budget_letting_the_least_recently_used_go() {
        let mut cache = Cache::new(250);
        cache.insert("a.txt", stamp(100), story("a.txt", 100));
        cache.insert("b.txt", stamp(100), story("b.txt", 100));
        assert!(cache.get("a.txt", stamp(100)).is_some()); // b is now the oldest
        cache.insert("c.txt", stamp(100), story("c.txt", 100));
        assert!(cache.get("b.txt", stamp(100)).is_none());
        assert!(cache.get("a.txt", stamp(100)).is_some());
        assert!(cache.get("c.txt", stamp(100)).is_some());
        assert_eq!(cache.bytes(), 200);

        cache.insert("huge.txt", stamp(1000), story("huge.txt", 1000));
        assert!(
            cache.get("huge.txt", stamp(1000)).is_none(),
            "over the budget"
        );
        assert_eq!(cache.bytes(), 200);
    }

    #[test]
    fn a_changed_file_is_not_served_from_the_cache() {
        let mut cache = Cache::new(1000);
        cache.insert("a.txt", stamp(100), story("a.txt", 100));
        assert!(cache.get("a.txt", stamp(101)).is_none());
        cache.insert("a.txt", stamp(101), story("a.txt", 101));
        assert_eq!(cache.bytes(), 101, "the old text is let go");
    }
}
