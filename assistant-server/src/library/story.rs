//! The story a server tells, held in memory so every call can slice it
//! without copying.

use std::{
    borrow::Cow,
    fmt::{self, Write as _},
    ops::Range,
    path::Path,
    sync::{Arc, LazyLock, OnceLock},
};

use anyhow::Context;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::read_lines::{MIN_KEPT_CHUNK, ReadLine, ReadLines};

/// The tutorial's story, compiled into the binary so the server runs from
/// any directory.
const ALICE: &[u8] = include_bytes!("../../../stories/alice.txt");

/// A named text, shared by every call. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Story {
    name: Arc<str>,
    text: Bytes,
    version: Arc<str>,
    /// The lines logged for reading it, made when a whole chunk is first
    /// logged, in that chunk's size, if it is at least [`MIN_KEPT_CHUNK`]
    /// and they fit in their budget (`None` if not).
    read_lines: Arc<OnceLock<Option<ReadLines>>>,
}

impl Story {
    /// The built-in story, `alice.txt`.
    pub(crate) fn alice() -> Self {
        static ALICE_STORY: LazyLock<Story> =
            LazyLock::new(|| Story::new("alice.txt", Bytes::from_static(ALICE)));
        ALICE_STORY.clone()
    }

    /// A story with the given file name and text.
    pub(crate) fn new(name: impl Into<Arc<str>>, text: impl Into<Bytes>) -> Self {
        let text = text.into();
        Self {
            name: name.into(),
            version: version_of(&text).into(),
            text,
            read_lines: Arc::default(),
        }
    }

    /// Reads a story from a file. Its name is the file's name.
    pub(crate) fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read(path)
            .with_context(|| format!("cannot read story file {}", path.display()))?;
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        Ok(Self::new(name, text))
    }

    /// The file name the logs use, such as `alice.txt`.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The whole text.
    pub(crate) fn text(&self) -> &Bytes {
        &self.text
    }

    /// Which version of the text this is: a digest of it, so that the
    /// same text has the same version on every replica, and a changed one
    /// a different version.
    pub(crate) fn version(&self) -> &str {
        &self.version
    }

    /// The line the tutorial's server logs for reading the bytes at
    /// `range` of the text, read in chunks of `chunk_size`: for a whole
    /// chunk, kept with the story once first asked for; for part of one (a
    /// resumed call's first), formatted now. Ask for it inside the `info!`
    /// that logs it, which evaluates it only when INFO is enabled.
    pub(crate) fn read_line(&self, range: Range<usize>, chunk_size: usize) -> Cow<'_, str> {
        let text = &self.text;
        let kept = (chunk_size >= MIN_KEPT_CHUNK
            && ReadLines::is_whole_chunk(&range, chunk_size, text.len()))
        .then(|| {
            self.read_lines
                .get_or_init(|| ReadLines::new(text, chunk_size))
                .as_ref()?
                .get(&range, chunk_size)
        })
        .flatten();
        match kept {
            Some(line) => Cow::Borrowed(line),
            // The caller has sliced the text at `range` already.
            None => Cow::Owned(ReadLine(text.get(range).unwrap_or_default()).to_string()),
        }
    }

    /// Whether the story keeps its chunks' lines.
    #[cfg(test)]
    pub(crate) fn keeps_read_lines(&self) -> bool {
        matches!(self.read_lines.get(), Some(Some(_)))
    }

    /// [`Story::version`], shared rather than borrowed.
    pub(crate) fn shared_version(&self) -> Arc<str> {
        Arc::clone(&self.version)
    }
}

/// `sha256:` and the first 128 bits of the text's SHA-256, in hex: enough
/// that two texts never share a version by chance.
fn version_of(text: &[u8]) -> String {
    let digest = Sha256::digest(text);
    let mut version = String::from("sha256:");
    for byte in &digest[..16] {
        let _ = write!(version, "{byte:02x}");
    }
    version
}

impl fmt::Debug for Story {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Story")
            .field("name", &self.name)
            .field("len", &self.text.len())
            .field("version", &self.version)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_follows_the_text_not_the_name() {
        let a = Story::new("a.txt", "Once upon a time.");
        assert_eq!(
            a.version(),
            Story::new("b.txt", "Once upon a time.").version()
        );
        assert_ne!(
            a.version(),
            Story::new("a.txt", "Once upon a time!").version()
        );
        // The SHA-256 of the empty string starts e3b0c442 98fc1c14.
        assert_eq!(
            Story::new("empty.txt", "").version(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb924"
        );
    }

    #[test]
    fn read_lines_are_kept_only_once_a_whole_chunks_is_asked_for_and_read_as_formatted() {
        let text: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        let story = Story::new("bytes.txt", text.clone());
        let formatted = |range: Range<usize>| ReadLine(&text[range]).to_string();
        assert!(
            story.read_lines.get().is_none(),
            "made before it was asked for"
        );
        assert_eq!(story.read_line(0..1024, 1024), formatted(0..1024));
        // A resumed call's first, part of a chunk: as formatted, and not
        // what makes the lines.
        let other = Story::new("bytes.txt", text.clone());
        assert_eq!(
            other.read_line(10..1024, 1024).to_string(),
            formatted(10..1024)
        );
        assert!(other.read_lines.get().is_none());
        // Small chunks never make them.
        assert_eq!(other.read_line(0..7, 7).to_string(), formatted(0..7));
        assert!(other.read_lines.get().is_none());
        // Kept now, for every whole chunk, the short last one too; shared by
        // the story's clones.
        assert!(matches!(story.read_lines.get(), Some(Some(_))));
        let clone = story.clone();
        for range in [1024..2048, 4096..5000] {
            assert_eq!(
                clone.read_line(range.clone(), 1024).to_string(),
                formatted(range)
            );
        }
        // Another size reads as formatted too.
        assert_eq!(
            story.read_line(512..1024, 512).to_string(),
            formatted(512..1024)
        );
    }

    #[test]
    fn a_missing_file_names_its_path() {
        let err = Story::load(Path::new("no/such/story.txt")).unwrap_err();
        assert!(format!("{err:#}").contains("no/such/story.txt"), "{err:#}");
    }
}
