//! Docker build contexts: which files a build sends, exactly as BuildKit
//! decides it, how big that is, what to clean, and what to lint.
//!
//! Nothing here starts a process: callers hand in what they learned from git
//! or Docker, which keeps every rule testable on a plain folder.

pub mod artifacts;
pub mod clean;
mod context;
pub mod dockerfile;
mod error;
mod goclean;
pub mod ignorefile;
mod lints;
pub mod matcher;
pub mod pattern;
pub mod report;
pub mod sent;
pub mod walk;

pub use context::{Context, Explanation, IgnoreFile};
pub use error::{Error, Result};
pub use matcher::{BadPattern, Decision, Matcher};
pub use report::{ContextReport, analyze};
pub use walk::{Entry, EntryKind, Problem, Stat, Walk, WalkOptions};

/// Files (a trailing `/`: an empty folder) under a new temporary folder,
/// each holding its own path; for tests.
#[cfg(test)]
pub(crate) fn test_tree(files: &[&str]) -> (tempfile::TempDir, camino::Utf8PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = camino::Utf8PathBuf::from_path_buf(dir.path().canonicalize().unwrap()).unwrap();
    for f in files {
        if let Some(dir_only) = f.strip_suffix('/') {
            std::fs::create_dir_all(root.join(dir_only)).unwrap();
            continue;
        }
        let p = root.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, f.as_bytes()).unwrap();
    }
    (dir, root)
}

/// Bytes for people: `1.5 MiB`.
pub fn human(bytes: u64) -> String {
    bytesize::ByteSize::b(bytes).display().iec().to_string()
}

/// Reads a size such as `500MB`, `1.5 GiB` or `1048576`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    text.trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| {
            format!("`{text}` is not a size ({e}); write it like 500MB, 1.5GiB or 1048576")
        })
}

/// A size as a config file writes it (`50MB`, `1.5GiB`, `1048576`), read
/// once into bytes, with [`parse_size`]'s message on a bad one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Size(pub u64);

impl<'de> serde::Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Size, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Size;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a size such as 500MB, 1.5GiB or 1048576")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Size, E> {
                parse_size(v).map(Size).map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}
