//! Deleting build and test artifacts from contexts, safely: a plan first,
//! then its execution. Never a tracked file, never outside the repository
//! root, never through a symlink, never inside `.git`.

use std::collections::{BTreeMap, HashSet};
use std::os::unix::ffi::OsStrExt;

use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::matcher::Matcher;
use crate::walk::{self, EntryKind, Walk, WalkOptions};

/// Paths git tracks, relative to the repository root. The caller asks git
/// (`git ls-files -z`); this crate starts no process.
#[derive(Debug, Clone, Default)]
pub struct Tracked(HashSet<Box<[u8]>>);

impl Tracked {
    /// From the NUL-separated output of `git ls-files -z`.
    pub fn from_ls_files_z(output: &[u8]) -> Tracked {
        Tracked(
            output
                .split(|&b| b == 0)
                .filter(|p| !p.is_empty())
                .map(Box::from)
                .collect(),
        )
    }

    pub fn contains(&self, rel: &[u8]) -> bool {
        self.0.contains(rel)
    }
}

/// One artifact to delete.
#[derive(Debug, Clone, Serialize)]
pub struct Artifact {
    /// Relative to the repository root.
    pub path: String,
    pub bytes: u64,
    /// The artifact pattern that matched.
    pub pattern: String,
}

/// Something that matched and is left alone, with the reason.
#[derive(Debug, Clone, Serialize)]
pub struct Kept {
    pub path: String,
    pub reason: &'static str,
}

/// What a cleanup will do; executing it does exactly this and no more.
#[derive(Debug, Clone, Serialize)]
pub struct CleanPlan {
    pub root: Utf8PathBuf,
    pub files: Vec<Artifact>,
    /// Matched folders, removed after their files when they end up empty.
    pub dirs: Vec<String>,
    pub kept: Vec<Kept>,
}

/// What a cleanup did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CleanOutcome {
    pub removed_files: u64,
    pub removed_dirs: u64,
    pub bytes_freed: u64,
    pub failed: Vec<Kept>,
    pub dry_run: bool,
}

impl CleanPlan {
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|a| a.bytes).sum()
    }
}

/// Plans the removal of artifacts matching `patterns` in each of `contexts`.
pub fn plan(
    repo_root: &Utf8Path,
    contexts: &[Utf8PathBuf],
    patterns: &[String],
    tracked: &Tracked,
) -> Result<CleanPlan> {
    plan_walked(repo_root, contexts, None, patterns, tracked)
}

/// [`plan`] from walks already made of `contexts` (with `into_pruned`, any
/// ignore file): the artifact patterns decide each walked entry again, as a
/// walk of their own would, and no second walk reads the tree.
pub fn plan_from_walks(
    repo_root: &Utf8Path,
    contexts: &[Utf8PathBuf],
    walks: &[&Walk],
    patterns: &[String],
    tracked: &Tracked,
) -> Result<CleanPlan> {
    plan_walked(repo_root, contexts, Some(walks), patterns, tracked)
}

fn plan_walked(
    repo_root: &Utf8Path,
    contexts: &[Utf8PathBuf],
    walks: Option<&[&Walk]>,
    patterns: &[String],
    tracked: &Tracked,
) -> Result<CleanPlan> {
    let root = repo_root
        .canonicalize_utf8()
        .map_err(Error::io(repo_root))?;
    let matcher = Matcher::from_patterns(patterns).map_err(|b| Error::BadArtifactPattern {
        index: b.line,
        pattern: b.pattern,
        message: b.error.to_string(),
    })?;
    let mut files = BTreeMap::new();
    let mut dirs = BTreeMap::new();
    let mut kept = BTreeMap::new();
    for (n, context) in contexts.iter().enumerate() {
        let dir = context.canonicalize_utf8().map_err(Error::io(context))?;
        let Ok(prefix) = dir.strip_prefix(&root) else {
            return Err(Error::OutsideRoot {
                path: context.clone(),
                root,
            });
        };
        let bad = |b: crate::matcher::BadPattern| Error::BadArtifactPattern {
            index: b.line,
            pattern: b.pattern,
            message: b.error.to_string(),
        };
        let own;
        let (walk, decided) = match walks {
            Some(walks) => (
                walks[n],
                Some(walk::redecide(walks[n], &matcher).map_err(bad)?),
            ),
            // Sizes only for what matches: a stat per artifact, not per file.
            None => {
                own = walk::walk(
                    &dir,
                    &matcher,
                    WalkOptions {
                        sizes: false,
                        into_pruned: true,
                    },
                )
                .map_err(bad)?;
                (&own, None)
            }
        };
        for (i, e) in walk.entries.iter().enumerate() {
            let (excluded, by) = match &decided {
                Some(d) => (d[i].excluded, d[i].by),
                None => (e.excluded, e.by),
            };
            if !excluded {
                continue;
            }
            let rel = e.display();
            let path = if prefix.as_str().is_empty() {
                rel.into_owned()
            } else {
                format!("{prefix}/{rel}")
            };
            let pattern = by
                .map(|i| matcher.patterns()[i].text.clone())
                .unwrap_or_default();
            if path == ".git" || path.starts_with(".git/") || path.contains("/.git/") {
                continue;
            }
            match e.kind {
                EntryKind::Dir => {
                    dirs.insert(path, ());
                }
                EntryKind::Symlink => {
                    kept.insert(
                        path.clone(),
                        Kept {
                            path,
                            reason: "symlink: never followed or removed",
                        },
                    );
                }
                EntryKind::Other => {
                    kept.insert(
                        path.clone(),
                        Kept {
                            path,
                            reason: "not a regular file",
                        },
                    );
                }
                EntryKind::File if tracked.contains(path.as_bytes()) => {
                    kept.insert(
                        path.clone(),
                        Kept {
                            path,
                            reason: "tracked by git",
                        },
                    );
                }
                EntryKind::File => {
                    let bytes = match e.stat {
                        Some(_) => e.size,
                        None => {
                            let full = dir.as_std_path().join(std::ffi::OsStr::from_bytes(&e.path));
                            std::fs::symlink_metadata(full).map_or(0, |m| m.len())
                        }
                    };
                    files.insert(
                        path.clone(),
                        Artifact {
                            path,
                            bytes,
                            pattern,
                        },
                    );
                }
            }
        }
    }
    Ok(CleanPlan {
        root,
        files: files.into_values().collect(),
        dirs: dirs.into_keys().collect(),
        kept: kept.into_values().collect(),
    })
}

/// Carries the plan out; each deletion re-checks that nothing moved under it.
pub fn execute(plan: &CleanPlan, dry_run: bool) -> CleanOutcome {
    let mut out = CleanOutcome {
        dry_run,
        ..CleanOutcome::default()
    };
    for a in &plan.files {
        if dry_run {
            out.removed_files += 1;
            out.bytes_freed += a.bytes;
            continue;
        }
        match remove_file_safely(&plan.root, &a.path) {
            Ok(()) => {
                out.removed_files += 1;
                out.bytes_freed += a.bytes;
            }
            Err(reason) => out.failed.push(Kept {
                path: a.path.clone(),
                reason,
            }),
        }
    }
    if !dry_run {
        // Deepest first, so emptied parents go too; a folder still holding
        // tracked or unmatched files stays.
        for d in plan.dirs.iter().rev() {
            let path = plan.root.join(d);
            let is_real_dir = path.symlink_metadata().is_ok_and(|m| m.is_dir());
            if is_real_dir && inside(&plan.root, &path) && std::fs::remove_dir(&path).is_ok() {
                out.removed_dirs += 1;
            }
        }
    }
    out
}

fn remove_file_safely(root: &Utf8Path, rel: &str) -> Result<(), &'static str> {
    let path = root.join(rel);
    if !inside(root, &path) {
        return Err("its folder now resolves outside the repository root");
    }
    match path.symlink_metadata() {
        Ok(m) if m.is_file() => std::fs::remove_file(&path).map_err(|_| "could not remove it"),
        Ok(_) => Err("no longer a regular file"),
        Err(_) => Err("gone already"),
    }
}

/// Whether `path`'s folder, with every symlink resolved, is under `root`.
fn inside(root: &Utf8Path, path: &Utf8Path) -> bool {
    path.parent()
        .and_then(|p| p.canonicalize_utf8().ok())
        .is_some_and(|p| p.starts_with(root))
}

impl std::fmt::Display for CleanPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for a in &self.files {
            writeln!(
                f,
                "  {:>10}  {}  ({})",
                crate::human(a.bytes),
                a.path,
                a.pattern
            )?;
        }
        for k in &self.kept {
            writeln!(f, "  {:>10}  {}  kept: {}", "-", k.path, k.reason)?;
        }
        Ok(())
    }
}

impl std::fmt::Display for CleanOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verb = if self.dry_run {
            "would remove"
        } else {
            "removed"
        };
        write!(
            f,
            "{verb} {} files and {} folders, {} freed",
            self.removed_files,
            self.removed_dirs,
            crate::human(self.bytes_freed)
        )?;
        for k in &self.failed {
            write!(f, "\n  not removed: {}: {}", k.path, k.reason)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(files: &[&str]) -> (tempfile::TempDir, Utf8PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8PathBuf::from_path_buf(dir.path().canonicalize().unwrap()).unwrap();
        for f in files {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, vec![b'x'; 100]).unwrap();
        }
        (dir, root)
    }

    fn defaults() -> Vec<String> {
        crate::artifacts::default_patterns()
    }

    /// The plan of the default patterns for `root`, where git tracks nothing.
    fn untracked_plan(root: &Utf8Path) -> CleanPlan {
        plan(root, &[root.to_owned()], &defaults(), &Tracked::default()).unwrap()
    }

    /// The files a plan deletes, as paths.
    fn names(plan: &CleanPlan) -> Vec<&str> {
        plan.files.iter().map(|a| a.path.as_str()).collect()
    }

    #[test]
    fn removes_untracked_artifacts_and_keeps_tracked_ones() {
        let (_d, root) = repo(&[
            "svc/a.out",
            "svc/tracked.out",
            "svc/main.go",
            "svc/bin/x.test",
            "test-results/r.xml",
            "audit-results/keep/tracked.txt",
            "audit-results/cov.out",
        ]);
        let tracked = Tracked::from_ls_files_z(
            b"svc/tracked.out\0svc/main.go\0audit-results/keep/tracked.txt\0",
        );
        let plan = plan(&root, std::slice::from_ref(&root), &defaults(), &tracked).unwrap();
        // The same plan from a walk made with an ignore file's patterns.
        let walked = crate::walk::walk(
            &root,
            &crate::Matcher::from_patterns(&["svc", "!svc/main.go", "**/*.xml"]).unwrap(),
            WalkOptions {
                sizes: true,
                into_pruned: true,
            },
        )
        .unwrap();
        let again = plan_from_walks(
            &root,
            std::slice::from_ref(&root),
            &[&walked],
            &defaults(),
            &tracked,
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(&again).unwrap(),
            serde_json::to_value(&plan).unwrap()
        );
        let names = names(&plan);
        assert_eq!(
            names,
            [
                "audit-results/cov.out",
                "svc/a.out",
                "svc/bin/x.test",
                "test-results/r.xml"
            ]
        );
        assert_eq!(plan.bytes(), 400);
        let out = execute(&plan, false);
        assert_eq!((out.removed_files, out.bytes_freed), (4, 400));
        assert!(root.join("svc/tracked.out").exists());
        assert!(root.join("audit-results/keep/tracked.txt").exists());
        assert!(
            !root.join("test-results").exists(),
            "an emptied result folder goes"
        );
        assert!(
            root.join("audit-results").exists(),
            "a result folder with a tracked file stays"
        );
        assert!(root.join("svc/main.go").exists());
    }

    #[test]
    fn dry_run_deletes_nothing() {
        let (_d, root) = repo(&["a.out", "b/c.test"]);
        let plan = untracked_plan(&root);
        let out = execute(&plan, true);
        assert_eq!((out.removed_files, out.bytes_freed), (2, 200));
        assert!(root.join("a.out").exists() && root.join("b/c.test").exists());
    }

    #[test]
    fn never_follows_symlinks_out_of_the_root() {
        let (_outside_dir, outside) = repo(&["victim.out", "results/x.out"]);
        let (_d, root) = repo(&["mine.out"]);
        std::os::unix::fs::symlink(&outside, root.join("escape")).unwrap();
        std::os::unix::fs::symlink(outside.join("victim.out"), root.join("link.out")).unwrap();
        std::os::unix::fs::symlink(outside.join("results"), root.join("test-results")).unwrap();
        let plan = untracked_plan(&root);
        let names = names(&plan);
        assert_eq!(names, ["mine.out"]);
        let kept: Vec<&str> = plan.kept.iter().map(|k| k.path.as_str()).collect();
        assert_eq!(kept, ["link.out", "test-results"]);
        execute(&plan, false);
        assert!(outside.join("victim.out").exists() && outside.join("results/x.out").exists());
        assert!(root.join("link.out").symlink_metadata().is_ok());
    }

    #[test]
    fn refuses_a_context_outside_the_root() {
        let (_a, root) = repo(&["x.out"]);
        let (_b, other) = repo(&["y.out"]);
        let err = plan(
            &root,
            std::slice::from_ref(&other),
            &defaults(),
            &Tracked::default(),
        )
        .unwrap_err();
        assert!(matches!(err, Error::OutsideRoot { .. }), "{err}");
        assert!(other.join("y.out").exists());
    }

    #[test]
    fn a_folder_swapped_for_a_symlink_after_planning_is_not_entered() {
        let (_o, outside) = repo(&["sub/a.out"]);
        let (_d, root) = repo(&["sub/a.out"]);
        let plan = untracked_plan(&root);
        std::fs::remove_dir_all(root.join("sub")).unwrap();
        std::os::unix::fs::symlink(outside.join("sub"), root.join("sub")).unwrap();
        let out = execute(&plan, false);
        assert_eq!(out.removed_files, 0);
        assert!(outside.join("sub/a.out").exists());
    }

    #[test]
    fn git_internals_are_never_touched() {
        let (_d, root) = repo(&[".git/objects/pack.out", "x.out"]);
        let plan = untracked_plan(&root);
        let names = names(&plan);
        assert_eq!(names, ["x.out"]);
    }
}
