//! Which folders the watch asks inotify about: the workspace as git sees it
//! (`ignore`'s walker: every `.gitignore`, `.git/info/exclude`, the global
//! excludes; also outside a git repository), without the target folder and
//! `.git`, plus each folder git ignores that the run uses all the same (a
//! build sends it, a bind mount shows it). A `node_modules` of 100,000
//! folders that nothing uses costs no watch: inotify needs one per folder,
//! and the user's limit is shared with every editor and tool.

use std::collections::BTreeSet;

use camino::{Utf8Path, Utf8PathBuf};

/// The folders to watch, and the ignored ones left out.
#[derive(Debug, Default)]
pub(super) struct Folders {
    pub watched: BTreeSet<Utf8PathBuf>,
    /// Folders git ignores and nothing uses (not those under them).
    pub skipped: Vec<Utf8PathBuf>,
}

/// The folders from `start` down: git's view, without `never` (the target
/// folder), and what git ignores that `uses` says the run needs. `start`
/// itself is left out when git ignores it and nothing uses it.
pub(super) fn folders(
    start: &Utf8Path,
    never: &Utf8Path,
    uses: &dyn Fn(&Utf8Path) -> bool,
) -> Folders {
    let mut out = Folders::default();
    if ignored(start) && !uses(start) {
        out.skipped.push(start.to_owned());
        return out;
    }
    let never_std = never.as_std_path().to_owned();
    let walk = ignore::WalkBuilder::new(start)
        .hidden(false)
        .parents(true)
        .require_git(false)
        .follow_links(false)
        .filter_entry(move |e| e.file_name() != ".git" && e.path() != never_std)
        .build();
    for entry in walk.flatten() {
        if entry.file_type().is_some_and(|t| t.is_dir())
            && let Some(p) = Utf8Path::from_path(entry.path())
        {
            out.watched.insert(p.to_owned());
        }
    }
    // What the walker left out under the folders it kept: git ignores it
    // (or it is hidden behind one); kept when the run uses it.
    let mut todo: Vec<Utf8PathBuf> = out.watched.iter().cloned().collect();
    while let Some(dir) = todo.pop() {
        let Ok(entries) = dir.read_dir_utf8() else {
            continue;
        };
        for e in entries.filter_map(Result::ok) {
            let child = e.into_path();
            let is_dir = child.symlink_metadata().is_ok_and(|m| m.is_dir());
            if !is_dir
                || out.watched.contains(&child)
                || child.file_name() == Some(".git")
                || child == never
            {
                continue;
            }
            if uses(&child) {
                out.watched.insert(child.clone());
                todo.push(child);
            } else {
                out.skipped.push(child);
            }
        }
    }
    out.skipped.sort();
    out
}

/// Whether git ignores folder `dir` (its parent's walk leaves it out).
fn ignored(dir: &Utf8Path) -> bool {
    let Some(parent) = dir.parent() else {
        return false;
    };
    let mut walk = ignore::WalkBuilder::new(parent)
        .hidden(false)
        .parents(true)
        .require_git(false)
        .max_depth(Some(1))
        .build();
    !walk.any(|e| e.is_ok_and(|e| e.path() == dir.as_std_path()))
}

/// What to say when inotify refuses a watch: the limit, how many folders
/// are not seen, and the fix.
pub(super) fn limit_message(watched: usize, total: usize, first_unseen: &Utf8Path) -> String {
    let limit = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_watches")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    format!(
        "the file watch limit is reached: {watched} of {total} folders watched \
         (fs.inotify.max_user_watches = {limit}, shared by every program of this user); \
         changes in the other {} are not seen, starting with {first_unseen}. \
         Raise it: `sudo sysctl fs.inotify.max_user_watches=524288` (and a line in \
         /etc/sysctl.d/ to keep it), or add to .gitignore what nothing uses",
        total - watched
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> (tempfile::TempDir, Utf8PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let root = Utf8PathBuf::from_path_buf(tmp.path().canonicalize().unwrap()).unwrap();
        for d in [
            "src/a",
            "target/debug",
            "dist/js",
            "generated/x",
            ".git/objects",
            "web/node_modules/m",
        ] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join(".gitignore"), "/target\n/dist\n/generated\n").unwrap();
        std::fs::write(root.join("web/.gitignore"), "node_modules/\n").unwrap();
        (tmp, root)
    }

    #[test]
    fn git_ignored_folders_are_watched_only_when_used() {
        let (_tmp, root) = tree();
        let target = root.join("target");
        let generated = root.join("generated");
        let uses = |d: &Utf8Path| d.starts_with(&generated);
        let f = folders(&root, &target, &uses);
        let rel = |p: &Utf8PathBuf| p.strip_prefix(&root).unwrap().to_string();
        let watched: Vec<String> = f.watched.iter().map(rel).collect();
        assert_eq!(
            watched,
            ["", "generated", "generated/x", "src", "src/a", "web"],
            "git's view, plus the ignored folder a build uses"
        );
        let skipped: Vec<String> = f.skipped.iter().map(rel).collect();
        assert_eq!(skipped, ["dist", "web/node_modules"]);
        // A folder made later in a watched one, which git ignores: left out
        // as a whole (one made inside it is never seen: its parent is not watched).
        let later = folders(&root.join("web/node_modules"), &target, &uses);
        assert!(later.watched.is_empty(), "{later:?}");
        assert_eq!(later.skipped, [root.join("web/node_modules")]);
        assert!(!ignored(&root.join("src")));
        assert!(ignored(&root.join("dist")));
    }

    /// A `node_modules` of 100,000 folders costs no watch and no walk.
    #[test]
    fn a_hundred_thousand_ignored_folders_cost_no_watch() {
        let (_tmp, root) = tree();
        let modules = root.join("web/node_modules");
        for i in 0..1000 {
            for j in 0..100 {
                std::fs::create_dir_all(modules.join(format!("p{i}/d{j}"))).unwrap();
            }
        }
        let f = folders(&root, &root.join("target"), &|_: &Utf8Path| false);
        assert_eq!(f.watched.len(), 4, "{:?}", f.watched);
        assert!(f.skipped.contains(&modules));
    }

    #[test]
    fn the_limit_message_names_the_sysctl() {
        let m = limit_message(10, 25, Utf8Path::new("/w/web/node_modules"));
        assert!(m.contains("10 of 25 folders"), "{m}");
        assert!(m.contains("the other 15 are not seen, starting with /w/web/node_modules"));
        assert!(m.contains("sudo sysctl fs.inotify.max_user_watches="));
    }
}
