//! The parallel walk of a context, deciding every entry as BuildKit's walker does.
//!
//! The `ignore` crate's parallel walker does the I/O (its gitignore logic is
//! switched off). BuildKit's walker is stateful: each folder hands its
//! per-pattern results to its children. The parallel walker visits a folder
//! before it queues the folder's children, so each folder's state is stored
//! under its path and looked up by the children.

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, Mutex};

use camino::Utf8Path;
use ignore::{DirEntry, ParallelVisitor, ParallelVisitorBuilder, WalkBuilder, WalkState};

use crate::matcher::{BadPattern, Matcher};

/// What the walk looks at besides the decision.
#[derive(Debug, Clone, Copy, Default)]
pub struct WalkOptions {
    /// lstat every file for its size (what `du -sb` does).
    pub sizes: bool,
    /// Also walk folders that BuildKit prunes, to measure what they hold.
    pub into_pruned: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Symlink,
    Dir,
    /// Fifos, sockets, devices.
    Other,
}

/// One entry of the context, with the engine's verdict on it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Relative to the context root, `/`-separated, raw bytes (names need not be UTF-8).
    pub path: Box<[u8]>,
    pub kind: EntryKind,
    pub size: u64,
    pub excluded: bool,
    /// Index of the deciding pattern.
    pub by: Option<usize>,
    /// Under a folder the engine never looks into.
    pub pruned: bool,
    /// What `lstat` said, when the walk measured sizes.
    pub stat: Option<Stat>,
}

/// The part of `lstat` that the engine's transfer puts on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// `st_mode`: type and permission bits.
    pub mode: u32,
    pub mtime_ns: i64,
    pub ino: u64,
    pub nlink: u64,
    /// What its extended attributes add to its stat packet (`sent::xattr_bytes`).
    pub xattr_bytes: u64,
}

impl Entry {
    pub fn display(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.path)
    }
}

/// Something the walk could not do; the engine would fail on the unexcluded ones.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub path: String,
    pub message: String,
    /// The engine ignores permission errors on excluded entries only.
    pub excluded: bool,
}

/// All entries, sorted bytewise by path, and the problems met.
#[derive(Debug, Default)]
pub struct Walk {
    pub entries: Vec<Entry>,
    pub problems: Vec<Problem>,
}

#[derive(Clone)]
enum DirState {
    Eval { info: Arc<[bool]>, excluded: bool },
    Pruned { by: Option<usize> },
}

struct Shared<'a> {
    root: &'a Utf8Path,
    matcher: &'a Matcher,
    options: WalkOptions,
    /// Whether to read each entry's extended attributes.
    xattrs: bool,
    dirs: Mutex<HashMap<Box<[u8]>, DirState>>,
    error: Mutex<Option<BadPattern>>,
    results: Mutex<Vec<(Vec<Entry>, Vec<Problem>)>>,
}

/// Walks `root` and decides every entry with `matcher`.
pub fn walk(root: &Utf8Path, matcher: &Matcher, options: WalkOptions) -> Result<Walk, BadPattern> {
    // A listxattr per file costs as much as the stat. Where files carry
    // attributes at all (SELinux labels every file), the root folder has
    // some too; elsewhere they are taken to be absent.
    let xattrs = options.sizes && crate::sent::xattr_bytes(root.as_std_path()).is_ok_and(|b| b > 0);
    let shared = Shared {
        root,
        matcher,
        options,
        xattrs,
        dirs: Mutex::new(HashMap::new()),
        error: Mutex::new(None),
        results: Mutex::new(Vec::new()),
    };
    WalkBuilder::new(root)
        .standard_filters(false)
        .follow_links(false)
        .threads(std::thread::available_parallelism().map_or(2, |n| n.get()))
        .build_parallel()
        .visit(&mut Builder { shared: &shared });
    if let Some(e) = shared.error.into_inner().expect("no visitor panicked") {
        return Err(e);
    }
    let mut walk = Walk::default();
    for (entries, problems) in shared.results.into_inner().expect("no visitor panicked") {
        walk.entries.extend(entries);
        walk.problems.extend(problems);
    }
    walk.entries.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    walk.problems.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(walk)
}

struct Builder<'a> {
    shared: &'a Shared<'a>,
}

impl<'s> ParallelVisitorBuilder<'s> for Builder<'s> {
    fn build(&mut self) -> Box<dyn ParallelVisitor + 's> {
        Box::new(Visitor {
            shared: self.shared,
            entries: Vec::new(),
            problems: Vec::new(),
        })
    }
}

struct Visitor<'a> {
    shared: &'a Shared<'a>,
    entries: Vec<Entry>,
    problems: Vec<Problem>,
}

impl Drop for Visitor<'_> {
    fn drop(&mut self) {
        let batch = (
            std::mem::take(&mut self.entries),
            std::mem::take(&mut self.problems),
        );
        if let Ok(mut results) = self.shared.results.lock() {
            results.push(batch);
        }
    }
}

impl ParallelVisitor for Visitor<'_> {
    fn visit(&mut self, entry: Result<DirEntry, ignore::Error>) -> WalkState {
        match entry {
            Ok(entry) => self.visit_entry(entry),
            Err(err) => {
                self.problem_from(err);
                WalkState::Continue
            }
        }
    }
}

impl Visitor<'_> {
    fn visit_entry(&mut self, entry: DirEntry) -> WalkState {
        if entry.depth() == 0 {
            return WalkState::Continue;
        }
        let shared = self.shared;
        let rel = relative(shared.root, entry.path());
        let parent = match rel.iter().rposition(|&b| b == b'/') {
            Some(slash) => shared
                .dirs
                .lock()
                .expect("dir map")
                .get(&rel[..slash])
                .cloned(),
            None => None,
        };
        let kind = match entry.file_type() {
            Some(t) if t.is_symlink() => EntryKind::Symlink,
            Some(t) if t.is_dir() => EntryKind::Dir,
            Some(t) if t.is_file() => EntryKind::File,
            _ => EntryKind::Other,
        };
        if std::str::from_utf8(&rel).is_err() {
            self.problems.push(Problem {
                path: String::from_utf8_lossy(&rel).into_owned(),
                message:
                    "name is not UTF-8; it is sent, but shown here with replacement characters"
                        .into(),
                excluded: false,
            });
        }

        let (excluded, by, pruned, info) = match parent {
            Some(DirState::Pruned { by }) => (true, by, true, None),
            Some(DirState::Eval { info, .. }) => match shared.matcher.decide(&rel, Some(&info)) {
                Ok((d, info)) => (d.excluded, d.by, false, Some(info)),
                Err(e) => return self.fail(e),
            },
            None => match shared.matcher.decide(&rel, None) {
                Ok((d, info)) => (d.excluded, d.by, false, Some(info)),
                Err(e) => return self.fail(e),
            },
        };

        let mut state = WalkState::Continue;
        if kind == EntryKind::Dir {
            let dir_state = if pruned {
                DirState::Pruned { by }
            } else if excluded && shared.matcher.can_prune(&String::from_utf8_lossy(&rel)) {
                if !shared.options.into_pruned {
                    state = WalkState::Skip;
                }
                DirState::Pruned { by }
            } else {
                DirState::Eval {
                    info: info.unwrap_or_default().into(),
                    excluded,
                }
            };
            if state == WalkState::Continue {
                shared
                    .dirs
                    .lock()
                    .expect("dir map")
                    .insert(rel.clone(), dir_state);
            }
        }

        let (size, stat) = if shared.options.sizes {
            use std::os::unix::fs::MetadataExt;
            match entry.metadata() {
                Ok(m) => (
                    if kind == EntryKind::File { m.len() } else { 0 },
                    Some(Stat {
                        mode: m.mode(),
                        mtime_ns: m.mtime().saturating_mul(1_000_000_000) + m.mtime_nsec(),
                        ino: m.ino(),
                        nlink: m.nlink(),
                        // Read here, in the walk's threads; never sent from a pruned folder.
                        xattr_bytes: if pruned || !shared.xattrs {
                            0
                        } else {
                            crate::sent::xattr_bytes(entry.path()).unwrap_or(0)
                        },
                    }),
                ),
                Err(err) => {
                    self.problem_from(err);
                    (0, None)
                }
            }
        } else {
            (0, None)
        };
        self.entries.push(Entry {
            path: rel,
            kind,
            size,
            excluded,
            by,
            pruned,
            stat,
        });
        state
    }

    fn fail(&mut self, e: BadPattern) -> WalkState {
        let mut slot = self.shared.error.lock().expect("error slot");
        slot.get_or_insert(e);
        WalkState::Quit
    }

    fn problem_from(&mut self, err: ignore::Error) {
        let path = error_path(&err).map(|p| relative(self.shared.root, p));
        let excluded = path.as_ref().is_some_and(|p| self.is_excluded_dir(p));
        let path = path.map_or_else(String::new, |p| String::from_utf8_lossy(&p).into_owned());
        self.problems.push(Problem {
            path,
            message: innermost(&err),
            excluded,
        });
    }

    fn is_excluded_dir(&self, rel: &[u8]) -> bool {
        matches!(
            self.shared.dirs.lock().expect("dir map").get(rel),
            Some(DirState::Eval { excluded: true, .. } | DirState::Pruned { .. })
        )
    }
}

fn relative(root: &Utf8Path, path: &std::path::Path) -> Box<[u8]> {
    let rel = path.strip_prefix(root.as_std_path()).unwrap_or(path);
    rel.as_os_str().as_bytes().into()
}

fn error_path(err: &ignore::Error) -> Option<&std::path::Path> {
    match err {
        ignore::Error::WithPath { path, .. } => Some(path),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            error_path(err)
        }
        ignore::Error::Loop { child, .. } => Some(child),
        _ => None,
    }
}

fn innermost(err: &ignore::Error) -> String {
    match err {
        ignore::Error::WithPath { err, .. }
        | ignore::Error::WithDepth { err, .. }
        | ignore::Error::WithLineNumber { err, .. } => innermost(err),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use camino::Utf8PathBuf;

    fn tree(files: &[&str]) -> (tempfile::TempDir, Utf8PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8PathBuf::from_path_buf(dir.path().to_path_buf()).unwrap();
        for f in files {
            let p = root.join(f);
            if let Some(dir_only) = f.strip_suffix('/') {
                std::fs::create_dir_all(root.join(dir_only)).unwrap();
                continue;
            }
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, f.as_bytes()).unwrap();
        }
        (dir, root)
    }

    fn sent(root: &Utf8Path, patterns: &[&str]) -> Vec<String> {
        let m = Matcher::from_patterns(patterns).unwrap();
        let w = walk(root, &m, WalkOptions::default()).unwrap();
        w.entries
            .iter()
            .filter(|e| !e.excluded && e.kind != EntryKind::Dir)
            .map(|e| e.display().into_owned())
            .collect()
    }

    #[test]
    fn walker_semantics_on_a_tree() {
        let (_d, root) = tree(&[
            "a/keep.txt",
            "a/b.out",
            "c.out",
            "dir/a.txt",
            "dir/x/y.txt",
            "z/k/keep.txt",
            "z/k/no",
        ]);
        assert_eq!(
            sent(&root, &["**/*.out"]),
            [
                "a/keep.txt",
                "dir/a.txt",
                "dir/x/y.txt",
                "z/k/keep.txt",
                "z/k/no"
            ]
        );
        // Stateful walk: `!dir` re-includes the folder, not files a later look finds excluded.
        assert_eq!(
            sent(&root, &["**/*.txt", "!dir"]),
            ["a/b.out", "c.out", "z/k/no"]
        );
        // An exception with a glob keeps every excluded folder open.
        assert_eq!(
            sent(&root, &["*", "!**/keep.txt"]),
            ["a/keep.txt", "z/k/keep.txt"]
        );
        assert_eq!(
            sent(&root, &["z", "!z/k/keep.txt"]),
            [
                "a/b.out",
                "a/keep.txt",
                "c.out",
                "dir/a.txt",
                "dir/x/y.txt",
                "z/k/keep.txt"
            ]
        );
    }

    #[test]
    fn sizes_and_pruned_folders_are_measured_on_request() {
        let (_d, root) = tree(&["target/big", "src/main.rs"]);
        std::fs::write(root.join("target/big"), vec![0u8; 5000]).unwrap();
        let m = Matcher::from_patterns(&["target"]).unwrap();
        let w = walk(
            &root,
            &m,
            WalkOptions {
                sizes: true,
                into_pruned: true,
            },
        )
        .unwrap();
        let big = w
            .entries
            .iter()
            .find(|e| &*e.path == b"target/big")
            .unwrap();
        assert_eq!(
            (big.size, big.excluded, big.pruned, big.by),
            (5000, true, true, Some(0))
        );
        let w = walk(&root, &m, WalkOptions::default()).unwrap();
        assert!(w.entries.iter().all(|e| &*e.path != b"target/big"));
    }

    #[test]
    fn symlinks_are_entries_and_never_followed() {
        let (_d, root) = tree(&["real/file"]);
        std::os::unix::fs::symlink("/etc", root.join("out")).unwrap();
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        let w = walk(
            &root,
            &Matcher::default(),
            WalkOptions {
                sizes: true,
                into_pruned: true,
            },
        )
        .unwrap();
        let kinds: Vec<_> = w
            .entries
            .iter()
            .map(|e| (e.display().into_owned(), e.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                ("loop".to_owned(), EntryKind::Symlink),
                ("out".to_owned(), EntryKind::Symlink),
                ("real".to_owned(), EntryKind::Dir),
                ("real/file".to_owned(), EntryKind::File)
            ]
        );
        assert!(w.problems.is_empty());
    }

    #[test]
    fn non_utf8_names_are_reported_not_fatal() {
        use std::os::unix::ffi::OsStrExt;
        let (_d, root) = tree(&["ok"]);
        let name = std::ffi::OsStr::from_bytes(b"bad\xffname");
        std::fs::write(root.as_std_path().join(name), b"x").unwrap();
        let w = walk(&root, &Matcher::default(), WalkOptions::default()).unwrap();
        assert_eq!(w.entries.len(), 2);
        assert_eq!(&*w.entries[0].path, b"bad\xffname");
        assert_eq!(w.problems.len(), 1);
    }

    #[test]
    fn regex_errors_surface_when_evaluated() {
        let (_d, root) = tree(&["x"]);
        let m = Matcher::from_patterns(&["ok", "[Local-Only]/"]).unwrap();
        let err = walk(&root, &m, WalkOptions::default()).unwrap_err();
        assert_eq!(err.line, 2);
    }
}
