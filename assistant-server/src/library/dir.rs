//! A directory of stories, looked at afresh on each call.
//!
//! - A name from a caller is only ever a plain file name in the directory,
//!   and a symlink is followed only to a file inside it.
//! - A file is opened without following a symlink at the last step and
//!   without waiting (`O_NONBLOCK`), and only then checked for being a
//!   regular file, on the open descriptor: a FIFO or a device swapped in
//!   by rename is refused, never read.
//! - Stories are read at most `--max-story-size` bytes, once however many
//!   calls ask for one at the same moment, and kept in a cache bounded by
//!   bytes ([`super::cache`]).
//! - The listing (ListStories, and the names a NOT_FOUND offers) is kept
//!   until the directory changes: until a file is added, removed or
//!   renamed in it.

use std::{
    collections::HashMap,
    fs,
    io::{self, Read},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::SystemTime,
};

use bytes::Bytes;
use tokio::sync::OnceCell;
use tonic::Status;

use super::{
    Entry, Story,
    cache::{Cache, Stamp},
    check_name, not_found, title,
};

/// A directory of stories; see the [module docs](self).
#[derive(Debug)]
pub(crate) struct StoriesDir {
    /// The directory, with every symlink resolved.
    root: PathBuf,
    max_story: u64,
    cache: Mutex<Cache>,
    /// Stories being read, so that calls asking for one at once share the
    /// read.
    loading: Mutex<HashMap<(String, Stamp), Reading>>,
    /// The listing, and the directory's modification time when it was made.
    listing: Mutex<Option<(SystemTime, Arc<Vec<Entry>>)>>,
}

/// One read of a story, which every call asking for it at once waits on.
type Reading = Arc<OnceCell<Story>>;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl StoriesDir {
    /// How many stories the cache holds, and their bytes.
    pub(super) fn cached(&self) -> (usize, u64) {
        lock(&self.cache).held()
    }

    /// The stories in `dir`, each at most `max_story` bytes, with at most
    /// `cache_bytes` of them kept in memory.
    pub(super) fn open(dir: &Path, max_story: u64, cache_bytes: u64) -> anyhow::Result<Self> {
        let root = fs::canonicalize(dir).map_err(|err| {
            anyhow::anyhow!("cannot open stories directory {}: {err}", dir.display())
        })?;
        if !root.is_dir() {
            anyhow::bail!("{} is not a directory", dir.display());
        }
        Ok(Self {
            root,
            max_story,
            cache: Mutex::new(Cache::new(cache_bytes)),
            loading: Mutex::default(),
            listing: Mutex::default(),
        })
    }

    /// The story called `name` (already checked to be a plain name).
    pub(super) async fn get(self: &Arc<Self>, name: &str) -> Result<Story, Status> {
        let dir = Arc::clone(self);
        let owned = name.to_owned();
        let (path, stamp) = super::blocking(move || dir.resolve(&owned)).await?;
        if let Some(story) = lock(&self.cache).get(name, stamp) {
            return Ok(story);
        }
        if stamp.size > self.max_story {
            return Err(too_big(name, stamp.size, self.max_story));
        }
        let key = (name.to_owned(), stamp);
        let reading = Arc::clone(lock(&self.loading).entry(key.clone()).or_default());
        let story = reading
            .get_or_try_init(|| async {
                let dir = Arc::clone(self);
                let owned = name.to_owned();
                let story = super::blocking(move || dir.read(&owned, &path)).await?;
                tracing::debug!(
                    bytes = story.text().len(),
                    "Read {name} from the stories directory"
                );
                Ok::<_, Status>(story)
            })
            .await
            .cloned();
        lock(&self.loading).remove(&key);
        let story = story?;
        lock(&self.cache).insert(name, stamp, story.clone());
        Ok(story)
    }

    /// Resolves `name` to a regular file inside the directory, and when
    /// and how big it is.
    fn resolve(&self, name: &str) -> Result<(PathBuf, Stamp), Status> {
        let missing = || Ok::<_, Status>(self.not_found(name));
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
        Ok((path, stamp(&metadata)))
    }

    /// Reads the story at `path`, checking on the open file that it is a
    /// regular file and not over the size limit.
    fn read(&self, name: &str, path: &Path) -> Result<Story, Status> {
        let (file, metadata) = open_regular(path)
            .map_err(|err| io_error(name, &err))?
            .ok_or_else(|| self.not_found(name))?;
        if metadata.len() > self.max_story {
            return Err(too_big(name, metadata.len(), self.max_story));
        }
        let mut text = Vec::with_capacity(metadata.len() as usize);
        file.take(self.max_story + 1)
            .read_to_end(&mut text)
            .map_err(|err| io_error(name, &err))?;
        if text.len() as u64 > self.max_story {
            return Err(too_big(name, text.len() as u64, self.max_story));
        }
        Ok(Story::new(name, Bytes::from(text)))
    }

    /// NOT_FOUND for `name`, naming stories that can be told.
    fn not_found(&self, name: &str) -> Status {
        match self.listing() {
            Ok(listing) => not_found(name, listing.iter().map(|entry| entry.name.as_str())),
            Err(status) => status,
        }
    }

    /// Every story that can be told, sorted by name; made afresh only when
    /// the directory has changed since.
    pub(super) fn listing(&self) -> Result<Arc<Vec<Entry>>, Status> {
        let changed = fs::metadata(&self.root)
            .and_then(|metadata| metadata.modified())
            .map_err(|err| io_error("the library", &err))?;
        if let Some((at, listing)) = &*lock(&self.listing)
            && *at == changed
        {
            return Ok(Arc::clone(listing));
        }
        let listing = Arc::new(self.list()?);
        *lock(&self.listing) = Some((changed, Arc::clone(&listing)));
        Ok(listing)
    }

    fn list(&self) -> Result<Vec<Entry>, Status> {
        let mut entries = Vec::new();
        let dir = fs::read_dir(&self.root).map_err(|err| io_error("the library", &err))?;
        for entry in dir.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if !name.ends_with(".txt") || check_name(&name).is_err() {
                continue;
            }
            // Only what a call could be told: a regular file in the
            // directory, or a symlink to one.
            let Ok(path) = fs::canonicalize(self.root.join(&name)) else {
                continue;
            };
            if path.parent() != Some(self.root.as_path()) {
                continue;
            }
            let Ok(Some((file, metadata))) = open_regular(&path) else {
                continue;
            };
            let mut head = Vec::new();
            let _ = file.take(4096).read_to_end(&mut head);
            entries.push(Entry {
                name,
                size: metadata.len(),
                title: title(&head),
            });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }
}

fn stamp(metadata: &fs::Metadata) -> Stamp {
    Stamp {
        modified: metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        size: metadata.len(),
    }
}

fn too_big(name: &str, size: u64, max: u64) -> Status {
    Status::failed_precondition(format!(
        "story `{name}` is {size} bytes; the server tells stories of at most {max} bytes \
         (--max-story-size)"
    ))
}

fn io_error(name: &str, err: &io::Error) -> Status {
    Status::internal(format!("cannot read story `{name}`: {err}"))
}

/// Opens `path` to read it, if it is a regular file: without following a
/// symlink at the last step (the path was resolved already, so a symlink
/// there now was swapped in since), without waiting (a FIFO would wait
/// for a writer), and checked on the open descriptor, which no rename can
/// swap. `None` if it is not a regular file.
fn open_regular(path: &Path) -> io::Result<Option<(fs::File, fs::Metadata)>> {
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    let metadata = file.metadata()?;
    Ok(metadata.is_file().then_some((file, metadata)))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_is_refused_on_the_open_descriptor_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("story.txt");
        let name = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: `name` is a valid C string, and mkfifo only reads it.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        // With no writer, a plain open would wait forever.
        assert!(open_regular(&fifo).unwrap().is_none());
    }

    #[test]
    fn a_symlink_at_the_last_step_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.txt");
        fs::write(&target, "text").unwrap();
        let link = dir.path().join("link.txt");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(open_regular(&link).is_err());
        assert!(open_regular(&target).unwrap().is_some());
    }
}
