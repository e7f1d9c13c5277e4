//! What the workspace's tests share, kept out of the product crates (as
//! tonic keeps its own in `tests/integration_tests`):
//!
//! - [`TestServer`]: a real server on a free loopback port;
//! - [`LogCapture`]: what the code under test logged;
//! - [`fixtures`]: the tutorial's expected bytes and settings, written out
//!   rather than computed by the code under test;
//! - [`raw`]: calls made by hand, to send what no generated client would;
//! - [`Tap`]: an output whose text can be awaited while it is written;
//! - [`Proxy`]: a TCP proxy that can stop forwarding without closing;
//! - [`serve`]: a stand-in server on a free port.

pub mod fixtures;
mod logs;
mod proxy;
pub mod raw;
mod server;
mod tap;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

pub use crate::{
    logs::LogCapture,
    proxy::Proxy,
    server::{TestServer, serve},
    tap::Tap,
};

/// A bound for waits that should end in milliseconds, so that a bug fails
/// a test instead of hanging it.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Writes files into a temporary directory.
pub trait WriteFile {
    /// Writes `text` to the file `name` in the directory, and returns its
    /// path.
    fn write(&self, name: &str, text: impl AsRef<[u8]>) -> PathBuf;
}

impl WriteFile for Path {
    fn write(&self, name: &str, text: impl AsRef<[u8]>) -> PathBuf {
        let path = self.join(name);
        std::fs::write(&path, text).expect("a test can write its temporary files");
        path
    }
}

impl WriteFile for tempfile::TempDir {
    fn write(&self, name: &str, text: impl AsRef<[u8]>) -> PathBuf {
        self.path().write(name, text)
    }
}
