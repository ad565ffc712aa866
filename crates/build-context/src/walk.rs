//! The parallel walk of a context, deciding every entry as BuildKit's walker does.
//!
//! BuildKit's walker is stateful: each folder hands its per-pattern results
//! to its children. Here a folder is one job: the thread that reads it
//! decides its entries with the folder's own state and queues its subfolders
//! with theirs, so no state is shared between threads. A folder is opened by
//! its path once; its entries are `lstat`ed relative to it (`fstatat`), as
//! `du` does, not by full path.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};

use camino::Utf8Path;
use nix::dir::{Dir, Type};
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, fstatat};

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
    matcher: &'a Matcher,
    options: WalkOptions,
    /// Whether to read each entry's extended attributes.
    xattrs: bool,
    queue: Mutex<Queue>,
    wake: Condvar,
    error: Mutex<Option<BadPattern>>,
}

#[derive(Default)]
struct Queue {
    jobs: Vec<Job>,
    /// Jobs taken and not yet finished: they may queue more.
    running: usize,
    stop: bool,
}

/// One folder to read: where it is, and what its children inherit.
struct Job {
    rel: Box<[u8]>,
    full: PathBuf,
    /// `None` for the root: entries at the top have no folder state.
    state: Option<DirState>,
}

/// Walks `root` and decides every entry with `matcher`.
pub fn walk(root: &Utf8Path, matcher: &Matcher, options: WalkOptions) -> Result<Walk, BadPattern> {
    // A listxattr per file costs as much as the stat. Where files carry
    // attributes at all (SELinux labels every file), the root folder has
    // some too; elsewhere they are taken to be absent.
    let xattrs = options.sizes && crate::sent::xattr_bytes(root.as_std_path()).is_ok_and(|b| b > 0);
    let shared = Shared {
        matcher,
        options,
        xattrs,
        queue: Mutex::new(Queue {
            jobs: vec![Job {
                rel: Box::default(),
                full: root.as_std_path().to_owned(),
                state: None,
            }],
            ..Queue::default()
        }),
        wake: Condvar::new(),
        error: Mutex::new(None),
    };
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let batches: Vec<Walk> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| scope.spawn(|| work(&shared)))
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("no walker thread panicked"))
            .collect()
    });
    if let Some(e) = shared
        .error
        .into_inner()
        .expect("no walker thread panicked")
    {
        return Err(e);
    }
    let mut walk = Walk::default();
    for batch in batches {
        walk.entries.extend(batch.entries);
        walk.problems.extend(batch.problems);
    }
    walk.entries.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    walk.problems.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(walk)
}

/// One thread: take a folder, read it, queue its subfolders, until none is left.
fn work(shared: &Shared<'_>) -> Walk {
    let mut out = Walk::default();
    loop {
        let job = {
            let mut q = shared.queue.lock().expect("walk queue");
            loop {
                if q.stop {
                    break None;
                }
                if let Some(job) = q.jobs.pop() {
                    q.running += 1;
                    break Some(job);
                }
                if q.running == 0 {
                    break None;
                }
                q = shared.wake.wait(q).expect("walk queue");
            }
        };
        let Some(job) = job else {
            shared.wake.notify_all();
            return out;
        };
        let mut found = Vec::new();
        let result = read_dir(shared, &job, &mut out, &mut found);
        let mut q = shared.queue.lock().expect("walk queue");
        q.running -= 1;
        if let Err(e) = result {
            shared.error.lock().expect("error slot").get_or_insert(e);
            q.stop = true;
        }
        q.jobs.extend(found);
        drop(q);
        shared.wake.notify_all();
    }
}

/// Reads one folder: decides each entry with the folder's state, measures
/// it when asked, and queues the subfolders to walk.
fn read_dir(
    shared: &Shared<'_>,
    job: &Job,
    out: &mut Walk,
    found: &mut Vec<Job>,
) -> Result<(), BadPattern> {
    let open = || -> nix::Result<(Dir, OwnedFd)> {
        let fd = nix::fcntl::open(
            job.full.as_path(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
            Mode::empty(),
        )?;
        let stat_fd = fd.try_clone().map_err(|_| nix::errno::Errno::EMFILE)?;
        Ok((Dir::from_fd(fd)?, stat_fd))
    };
    // The engine ignores an unreadable folder only when it is excluded.
    let folder_problem = |e: nix::errno::Errno| Problem {
        path: String::from_utf8_lossy(&job.rel).into_owned(),
        message: std::io::Error::from(e).to_string(),
        excluded: is_excluded(job.state.as_ref()),
    };
    let (mut dir, stat_fd) = match open() {
        Ok(opened) => opened,
        Err(e) => {
            out.problems.push(folder_problem(e));
            return Ok(());
        }
    };
    for item in dir.iter() {
        let item = match item {
            Ok(item) => item,
            Err(e) => {
                out.problems.push(folder_problem(e));
                break;
            }
        };
        let name = item.file_name();
        let bytes = name.to_bytes();
        if bytes == b"." || bytes == b".." {
            continue;
        }
        let rel: Box<[u8]> = if job.rel.is_empty() {
            bytes.into()
        } else {
            [&job.rel[..], b"/", bytes].concat().into()
        };
        if std::str::from_utf8(&rel).is_err() {
            out.problems.push(Problem {
                path: String::from_utf8_lossy(&rel).into_owned(),
                message:
                    "name is not UTF-8; it is sent, but shown here with replacement characters"
                        .into(),
                excluded: false,
            });
        }
        let (excluded, by, pruned, info) = match &job.state {
            Some(DirState::Pruned { by }) => (true, *by, true, None),
            Some(DirState::Eval { info, .. }) => {
                let (d, info) = shared.matcher.decide(&rel, Some(info))?;
                (d.excluded, d.by, false, Some(info))
            }
            None => {
                let (d, info) = shared.matcher.decide(&rel, None)?;
                (d.excluded, d.by, false, Some(info))
            }
        };
        let known = item.file_type().map(kind_of);
        let mut stat = None;
        let mut stat_kind = None;
        let mut size = 0;
        if shared.options.sizes || known.is_none() {
            match fstatat(&stat_fd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) => {
                    let mode = st.st_mode;
                    if shared.options.sizes {
                        size = st.st_size as u64;
                        stat = Some(Stat {
                            mode,
                            mtime_ns: st.st_mtime.saturating_mul(1_000_000_000) + st.st_mtime_nsec,
                            ino: st.st_ino,
                            nlink: st.st_nlink,
                            xattr_bytes: if pruned || !shared.xattrs {
                                0
                            } else {
                                let full = job.full.join(OsStr::from_bytes(bytes));
                                crate::sent::xattr_bytes(&full).unwrap_or(0)
                            },
                        });
                    }
                    if known.is_none() {
                        stat_kind = Some(kind_of_mode(mode));
                    }
                }
                Err(e) => out.problems.push(Problem {
                    path: String::from_utf8_lossy(&rel).into_owned(),
                    message: std::io::Error::from(e).to_string(),
                    excluded,
                }),
            }
        }
        let kind = known.or(stat_kind).unwrap_or(EntryKind::Other);
        if kind != EntryKind::File {
            size = 0;
        }
        if kind == EntryKind::Dir {
            let prunable = excluded && shared.matcher.can_prune(&String::from_utf8_lossy(&rel));
            let (state, descend) = if pruned || prunable {
                (DirState::Pruned { by }, shared.options.into_pruned)
            } else {
                (
                    DirState::Eval {
                        info: info.unwrap_or_default().into(),
                        excluded,
                    },
                    true,
                )
            };
            if descend {
                found.push(Job {
                    rel: rel.clone(),
                    full: job.full.join(OsStr::from_bytes(bytes)),
                    state: Some(state),
                });
            }
        }
        out.entries.push(Entry {
            path: rel,
            kind,
            size,
            excluded,
            by,
            pruned,
            stat,
        });
    }
    Ok(())
}

/// One entry decided again with other patterns ([`redecide`]).
#[derive(Debug, Clone, Copy)]
pub struct Redecided {
    pub excluded: bool,
    pub by: Option<usize>,
}

/// Decides a finished walk's entries again with `matcher`, as a walk with
/// it would (folder states handed down, excluded folders pruned), one
/// decision per entry. The walk must hold every entry (`into_pruned`),
/// sorted as [`walk`] sorts them, so folders come first.
pub fn redecide(walk: &Walk, matcher: &Matcher) -> Result<Vec<Redecided>, BadPattern> {
    let mut states: foldhash::HashMap<&[u8], DirState> = foldhash::HashMap::default();
    let mut out = Vec::with_capacity(walk.entries.len());
    for e in &walk.entries {
        let parent = e
            .path
            .iter()
            .rposition(|&b| b == b'/')
            .and_then(|i| states.get(&e.path[..i]));
        let (excluded, by, pruned, info) = match parent {
            Some(DirState::Pruned { by }) => (true, *by, true, None),
            Some(DirState::Eval { info, .. }) => {
                let (d, info) = matcher.decide(&e.path, Some(info))?;
                (d.excluded, d.by, false, Some(info))
            }
            None => {
                let (d, info) = matcher.decide(&e.path, None)?;
                (d.excluded, d.by, false, Some(info))
            }
        };
        if e.kind == EntryKind::Dir {
            let prunable = excluded && matcher.can_prune(&String::from_utf8_lossy(&e.path));
            let state = if pruned || prunable {
                DirState::Pruned { by }
            } else {
                DirState::Eval {
                    info: info.unwrap_or_default().into(),
                    excluded,
                }
            };
            states.insert(&e.path, state);
        }
        out.push(Redecided { excluded, by });
    }
    Ok(out)
}

fn is_excluded(state: Option<&DirState>) -> bool {
    matches!(
        state,
        Some(DirState::Eval { excluded: true, .. } | DirState::Pruned { .. })
    )
}

fn kind_of(t: Type) -> EntryKind {
    match t {
        Type::Directory => EntryKind::Dir,
        Type::File => EntryKind::File,
        Type::Symlink => EntryKind::Symlink,
        _ => EntryKind::Other,
    }
}

fn kind_of_mode(mode: u32) -> EntryKind {
    match mode & 0o170000 {
        0o040000 => EntryKind::Dir,
        0o100000 => EntryKind::File,
        0o120000 => EntryKind::Symlink,
        _ => EntryKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_tree as tree;

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
