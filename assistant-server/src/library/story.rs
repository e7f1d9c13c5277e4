//! The story a server tells, held in memory so every call can slice it
//! without copying.

use std::{
    fmt::{self, Write as _},
    path::Path,
    sync::{Arc, LazyLock},
};

use anyhow::Context;
use bytes::Bytes;
use sha2::{Digest, Sha256};

/// The tutorial's story, compiled into the binary so the server runs from
/// any directory.
const ALICE: &[u8] = include_bytes!("../../../stories/alice.txt");

/// A named text, shared by every call. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Story {
    name: Arc<str>,
    text: Bytes,
    version: Arc<str>,
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
    fn a_missing_file_names_its_path() {
        let err = Story::load(Path::new("no/such/story.txt")).unwrap_err();
        assert!(format!("{err:#}").contains("no/such/story.txt"), "{err:#}");
    }
}
