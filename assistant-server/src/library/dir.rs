//! A directory of stories, read afresh on each call.

use std::{
    collections::HashMap,
    fs, io,
    path::{Path, PathBuf},
    sync::RwLock,
    time::SystemTime,
};

use bytes::Bytes;
use tonic::Status;

use super::{Entry, MAX_STORY_BYTES, Story, check_name, not_found, title};

/// A directory of stories.
#[derive(Debug)]
pub(crate) struct StoriesDir {
    /// The directory, with every symlink resolved.
    root: PathBuf,
    /// Stories read so far, each with the modification time and size it
    /// was read at, so a changed file is read again.
    cache: RwLock<HashMap<String, (SystemTime, u64, Story)>>,
}

impl StoriesDir {
    pub(super) fn open(dir: &Path) -> anyhow::Result<Self> {
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

    pub(super) fn get(&self, name: &str) -> Result<Story, Status> {
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
        if let Some((at, len, story)) = cached
            && at == modified
            && len == size
        {
            return Ok(story);
        }
        let text = Bytes::from(read_no_follow(&path).map_err(|err| io_error(name, &err))?);
        let story = Story::new(name, text);
        self.cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned(), (modified, size, story.clone()));
        Ok(story)
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

    pub(super) fn list(&self) -> Result<Vec<Entry>, Status> {
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
