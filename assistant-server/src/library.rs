//! The stories a server can tell: the built-in `alice.txt`, one file, or
//! every `*.txt` file in a directory.
//!
//! A directory is read afresh on each call (a story's text is cached until
//! the file changes), so stories added later are served without a restart.
//! A name from a caller is only ever a plain file name in the directory:
//! anything else is refused before any file is opened.

use std::{
    collections::HashMap,
    fs, io,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::SystemTime,
};

use bytes::Bytes;
use tonic::Status;

use crate::story::Story;

/// The story an empty name asks for.
pub const DEFAULT_STORY: &str = "alice.txt";

/// The largest story file served, in bytes.
pub const MAX_STORY_BYTES: u64 = 64 * 1024 * 1024;

/// How many characters of a story's first line its title keeps.
const MAX_TITLE_CHARS: usize = 200;

/// What [`Library::list`] says of one story.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The file name.
    pub name: String,
    /// The size in bytes.
    pub size: u64,
    /// The first line.
    pub title: String,
}

/// The stories a server can tell. Cheap to clone.
#[derive(Debug, Clone)]
pub enum Library {
    /// Exactly one story, held in memory.
    One(Story),
    /// Every `*.txt` file in a directory.
    Dir(Arc<StoriesDir>),
}

impl Library {
    /// A library of the `*.txt` files in `dir`.
    pub fn dir(dir: &Path) -> anyhow::Result<Self> {
        Ok(Self::Dir(Arc::new(StoriesDir::open(dir)?)))
    }

    /// The story called `name`. An empty name is the library's default: its
    /// one story, or `alice.txt` in a directory.
    ///
    /// INVALID_ARGUMENT if `name` is not a plain file name in the library;
    /// NOT_FOUND, listing what exists, if there is no such story.
    pub async fn get(&self, name: &str) -> Result<Story, Status> {
        match self {
            Self::One(story) if name.is_empty() || story.name() == name => Ok(story.clone()),
            Self::One(story) => {
                check_name(name)?;
                Err(not_found(name, &[story.name().to_owned()]))
            }
            Self::Dir(dir) => {
                let name = if name.is_empty() { DEFAULT_STORY } else { name };
                check_name(name)?;
                let (dir, name) = (Arc::clone(dir), name.to_owned());
                blocking(move || dir.get(&name)).await
            }
        }
    }

    /// Every story, sorted by name.
    pub async fn list(&self) -> Result<Vec<Entry>, Status> {
        match self {
            Self::One(story) => Ok(vec![Entry {
                name: story.name().to_owned(),
                size: story.text().len() as u64,
                title: title(story.text()),
            }]),
            Self::Dir(dir) => {
                let dir = Arc::clone(dir);
                blocking(move || dir.list()).await
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
pub fn check_name(name: &str) -> Result<(), Status> {
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

fn not_found(name: &str, names: &[String]) -> Status {
    Status::not_found(format!(
        "no story called `{name}`; the stories are: {}",
        if names.is_empty() {
            "(none)".to_owned()
        } else {
            names.join(", ")
        }
    ))
}

/// A story's title: its first line, trimmed, at most 200 characters.
fn title(text: &[u8]) -> String {
    let line = text.split(|&b| b == b'\n').next().unwrap_or_default();
    String::from_utf8_lossy(line)
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_TITLE_CHARS)
        .collect()
}

/// A directory of stories.
#[derive(Debug)]
pub struct StoriesDir {
    /// The directory, with every symlink resolved.
    root: PathBuf,
    /// Texts read so far, each with the modification time and size it was
    /// read at, so a changed file is read again.
    cache: RwLock<HashMap<String, (SystemTime, u64, Bytes)>>,
}

impl StoriesDir {
    fn open(dir: &Path) -> anyhow::Result<Self> {
        let root = fs::canonicalize(dir).map_err(|err| {
            anyhow::anyhow!("cannot open stories directory {}: {err}", dir.display())
        })?;
        if !root.is_dir() {
            anyhow::bail!("{} is not a directory", dir.display());
        }
        Ok(Self {
            root,
            cache: RwLock::default(),
        })
    }

    /// Resolves `name` to a regular file inside the directory. A symlink
    /// is followed only if it leads to a file that is in the directory.
    fn resolve(&self, name: &str) -> Result<(PathBuf, fs::Metadata), Status> {
        let missing = || Ok::<_, Status>(not_found(name, &self.names()?));
        if !name.ends_with(".txt") {
            return Err(missing()?);
        }
        let path = match fs::canonicalize(self.root.join(name)) {
            Ok(path) => path,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Err(missing()?),
            Err(err) => return Err(io_error(name, &err)),
        };
        if path.parent() != Some(self.root.as_path()) {
            return Err(Status::invalid_argument(format!(
                "story `{name}` leads outside the stories directory"
            )));
        }
        let metadata = fs::metadata(&path).map_err(|err| io_error(name, &err))?;
        if !metadata.is_file() {
            return Err(missing()?);
        }
        Ok((path, metadata))
    }

    fn get(&self, name: &str) -> Result<Story, Status> {
        let (path, metadata) = self.resolve(name)?;
        let modified = metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let size = metadata.len();
        if size > MAX_STORY_BYTES {
            return Err(Status::failed_precondition(format!(
                "story `{name}` is {size} bytes; the server serves at most {MAX_STORY_BYTES}"
            )));
        }
        let cached = self
            .cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned();
        if let Some((at, len, text)) = cached
            && at == modified
            && len == size
        {
            return Ok(Story::new(name, text));
        }
        let text = Bytes::from(read_no_follow(&path).map_err(|err| io_error(name, &err))?);
        self.cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned(), (modified, size, text.clone()));
        Ok(Story::new(name, text))
    }

    /// The names of the stories, sorted.
    fn names(&self) -> Result<Vec<String>, Status> {
        let mut names = Vec::new();
        let entries = fs::read_dir(&self.root).map_err(|err| io_error("the library", &err))?;
        for entry in entries.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.ends_with(".txt") && check_name(&name).is_ok() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    fn list(&self) -> Result<Vec<Entry>, Status> {
        let mut entries = Vec::new();
        for name in self.names()? {
            // A story that is not a file in the directory is not listed.
            let Ok((path, metadata)) = self.resolve(&name) else {
                continue;
            };
            let title = first_bytes(&path)
                .map(|head| title(&head))
                .unwrap_or_default();
            entries.push(Entry {
                name,
                size: metadata.len(),
                title,
            });
        }
        Ok(entries)
    }
}

fn io_error(name: &str, err: &io::Error) -> Status {
    Status::internal(format!("cannot read story `{name}`: {err}"))
}

/// Opens `path` for reading, refusing to follow a symlink at the last step:
/// the path was resolved already, so a symlink there now was swapped in
/// since.
fn open_no_follow(path: &Path) -> io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW);
    }
    options.open(path)
}

fn read_no_follow(path: &Path) -> io::Result<Vec<u8>> {
    use io::Read;
    let mut text = Vec::new();
    open_no_follow(path)?
        .take(MAX_STORY_BYTES)
        .read_to_end(&mut text)?;
    Ok(text)
}

/// The start of a file, enough for its title.
fn first_bytes(path: &Path) -> io::Result<Vec<u8>> {
    use io::Read;
    let mut head = Vec::new();
    open_no_follow(path)?.take(4096).read_to_end(&mut head)?;
    Ok(head)
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
    fn a_title_is_the_first_line() {
        assert_eq!(
            title(b"[Alice's Adventures]\r\n\nCHAPTER I"),
            "[Alice's Adventures]"
        );
        assert_eq!(title(b""), "");
        assert_eq!(title(&b"x".repeat(500)).len(), 200);
    }
}
