//! The stories a server can tell: the built-in `alice.txt`, one file, or
//! every `*.txt` file in a directory ([`dir`]).
//!
//! A directory is looked at afresh on each call, so stories added later
//! are served without a restart. A name from a caller is only ever a plain
//! file name in the directory: anything else is refused before any file is
//! opened.

use std::{path::Path, sync::Arc};

use tonic::Status;

mod cache;
mod dir;
mod read_lines;
mod story;

use self::dir::StoriesDir;
pub(crate) use self::story::Story;

/// The story an empty name asks for.
pub(crate) const DEFAULT_STORY: &str = "alice.txt";

/// How many stories a NOT_FOUND names, at most.
const NAMES_IN_NOT_FOUND: usize = 20;

/// How many characters of a story's first line its title keeps.
const MAX_TITLE_CHARS: usize = 200;

/// What [`Library::list`] says of one story.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The file name.
    pub(crate) name: String,
    /// The size in bytes.
    pub(crate) size: u64,
    /// The first line.
    pub(crate) title: String,
}

/// The stories a server can tell. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) enum Library {
    /// Exactly one story, held in memory.
    One(Story),
    /// Every `*.txt` file in a directory.
    Dir(Arc<StoriesDir>),
}

impl Library {
    /// A library of the `*.txt` files in `dir`, each at most `max_story`
    /// bytes, with at most `cache_bytes` of them kept in memory.
    pub(crate) fn dir(dir: &Path, max_story: u64, cache_bytes: u64) -> anyhow::Result<Self> {
        Ok(Self::Dir(Arc::new(StoriesDir::open(
            dir,
            max_story,
            cache_bytes,
        )?)))
    }

    /// The story called `name`. An empty name is the library's default: its
    /// one story, or `alice.txt` in a directory.
    ///
    /// INVALID_ARGUMENT if `name` is not a plain file name in the library;
    /// NOT_FOUND, listing what exists, if there is no such story.
    pub(crate) async fn get(&self, name: &str) -> Result<Story, Status> {
        match self {
            Self::One(story) if name.is_empty() || story.name() == name => Ok(story.clone()),
            Self::One(story) => {
                check_name(name)?;
                Err(not_found(name, [story.name()].into_iter()))
            }
            Self::Dir(dir) => {
                let name = if name.is_empty() { DEFAULT_STORY } else { name };
                check_name(name)?;
                dir.get(name).await
            }
        }
    }

    /// How many stories are held in memory, and their bytes.
    pub(crate) fn cached(&self) -> (usize, u64) {
        match self {
            Self::One(story) => (1, story.text().len() as u64),
            Self::Dir(dir) => dir.cached(),
        }
    }

    /// Every story, sorted by name.
    pub(crate) async fn list(&self) -> Result<Vec<Entry>, Status> {
        match self {
            Self::One(story) => Ok(vec![Entry {
                name: story.name().to_owned(),
                size: story.text().len() as u64,
                title: title(story.text()),
            }]),
            Self::Dir(dir) => {
                let dir = Arc::clone(dir);
                let listing = blocking(move || dir.listing()).await?;
                Ok(listing.to_vec())
            }
        }
    }
}

/// Runs filesystem work off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|_| Err(Status::internal("reading the story library failed")))
}

/// Refuses anything but a plain, visible `*.txt` file name: no path
/// separators, no `..`, no NUL or control characters, no hidden files.
pub(crate) fn check_name(name: &str) -> Result<(), Status> {
    let invalid = |why: &str| {
        Err(Status::invalid_argument(format!(
            "story {why}; give a file name from ListStories"
        )))
    };
    if name.len() > 255 {
        return invalid("names are at most 255 bytes");
    }
    if name.contains(['/', '\\']) {
        return invalid("must be a plain file name, without `/` or `\\`");
    }
    if name.chars().any(char::is_control) {
        return invalid("must not contain control characters");
    }
    if name.starts_with('.') {
        return invalid("must not be a hidden file or `..`");
    }
    Ok(())
}

/// NOT_FOUND for `name`, naming at most [`NAMES_IN_NOT_FOUND`] of the
/// stories there are, and how many more: a directory of thousands must not
/// make a message too big for clients to take.
pub(super) fn not_found<'a>(name: &str, names: impl ExactSizeIterator<Item = &'a str>) -> Status {
    let count = names.len();
    let shown: Vec<&str> = names.take(NAMES_IN_NOT_FOUND).collect();
    let stories = match count {
        0 => "there are none".to_owned(),
        _ if count <= NAMES_IN_NOT_FOUND => format!("the stories are: {}", shown.join(", ")),
        _ => format!(
            "the stories include {}, and {} more (see ListStories)",
            shown.join(", "),
            count - NAMES_IN_NOT_FOUND
        ),
    };
    Status::not_found(format!("no story called `{name}`; {stories}"))
}

/// A story's title: its first line, trimmed, at most 200 characters.
pub(super) fn title(text: &[u8]) -> String {
    let line = text.split(|&b| b == b'\n').next().unwrap_or_default();
    String::from_utf8_lossy(line)
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_TITLE_CHARS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_visible_names_pass() {
        for ok in [
            "alice.txt",
            "The Hunting of the Snark.txt",
            "caf\u{e9}.txt",
            "notes.md",
        ] {
            assert!(check_name(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "..",
            "../etc/passwd",
            "/etc/passwd",
            "a/b.txt",
            "a\\b.txt",
            ".hidden.txt",
            "nul\0.txt",
            "new\nline.txt",
        ] {
            let status = check_name(bad).unwrap_err();
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{bad:?}");
        }
    }

    #[test]
    fn not_found_names_twenty_stories_at_most_and_counts_the_rest() {
        let few = ["a.txt", "b.txt"];
        let status = not_found("x.txt", few.into_iter());
        assert_eq!(status.code(), tonic::Code::NotFound);
        assert_eq!(
            status.message(),
            "no story called `x.txt`; the stories are: a.txt, b.txt"
        );
        let many: Vec<String> = (0..5001).map(|i| format!("{i:04}.txt")).collect();
        let status = not_found("x.txt", many.iter().map(String::as_str));
        assert!(
            status
                .message()
                .ends_with("0019.txt, and 4981 more (see ListStories)"),
            "{}",
            status.message()
        );
        assert!(status.message().len() < 400);
        let none: [&str; 0] = [];
        assert!(
            not_found("x.txt", none.into_iter())
                .message()
                .ends_with("there are none")
        );
    }

    #[test]
    fn a_title_is_the_first_line() {
        assert_eq!(
            title(b"[Alice's Adventures]\r\n\nCHAPTER I"),
            "[Alice's Adventures]"
        );
        assert_eq!(title(b""), "");
        assert_eq!(title(&b"x".repeat(500)).len(), 200);
    }
}
