//! A key of everything a cargo build of the user's workspace could read, so
//! that a run whose sources, manifests, toolchain, environment and outputs
//! are all as the last build left them need not start cargo at all: cargo's
//! own freshness check of the staged binaries and of the test binaries costs
//! ~0.3 s of CPU, most of a kept, unchanged run beside its tests.
//!
//! It errs one way only: every file under the workspace root counts (the
//! target folders and `.git` aside), and every local package's folder
//! outside it, so an edit cargo would not rebuild for only costs a cargo
//! call. Past [`MOST_FILES`] there is no key and cargo decides as always.
//! Like Turborepo's package hashes, not cargo's fingerprints: a build
//! script reading a file outside all of these is the one thing it cannot see.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt as _;

use camino::{Utf8Path, Utf8PathBuf};

use crate::Workspace;

/// Past this many files the key is not worth its walk: cargo checks instead.
const MOST_FILES: usize = 20_000;

/// The workspace's sources as they are now, `outputs` left out (they are
/// keyed on their own, after the build); `None` when they cannot be told
/// cheaply. One walk serves every build of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot(String);

impl Snapshot {
    /// `outside`: the local packages' folders outside the root, as the last
    /// build's metadata named them (a new one needs a change to a manifest
    /// already counted, so an old list is enough to see that something changed).
    pub(crate) fn take(
        ws: &Workspace,
        outputs: &[Utf8PathBuf],
        outside: &[Utf8PathBuf],
    ) -> Option<Snapshot> {
        let mut walk = Walk {
            lines: Vec::new(),
            files: 0,
            target: &ws.target_dir,
            outputs,
        };
        walk.dir(&ws.root)?;
        // Branch and commit, which build scripts such as vergen read.
        walk.lines.push(stamped(&ws.root.join(".git/HEAD")));
        for dir in outside {
            walk.lines.push(format!("outside {dir}"));
            walk.dir(dir)?;
        }
        // The toolchain, and what the environment tells cargo.
        if let Ok(home) = std::env::var("RUSTUP_HOME")
            .or_else(|_| std::env::var("HOME").map(|h| format!("{h}/.rustup")))
        {
            let settings = Utf8PathBuf::from(home).join("settings.toml");
            walk.lines.push(stamped(&settings));
        }
        let env: BTreeMap<String, String> = std::env::vars().collect();
        walk.lines.push(format!("{env:?}"));
        let exe = Utf8PathBuf::from_path_buf(std::env::current_exe().ok()?).ok()?;
        walk.lines.push(stamped(&exe));
        Some(Snapshot(digest(&walk.lines)))
    }

    /// The key of a build described by `what` (its command and settings)
    /// from these sources.
    pub(crate) fn key(&self, what: &str) -> String {
        digest(&[what.to_owned(), self.0.clone()])
    }
}

/// The key of a build's outputs as they are now.
pub(crate) fn outputs(paths: &[Utf8PathBuf]) -> String {
    let lines: Vec<String> = paths.iter().map(|p| stamped(p)).collect();
    digest(&lines)
}

fn digest(lines: &[String]) -> String {
    crate::fingerprint::sha256_hex(lines.join("\n").as_bytes())
}

/// The folders of the local packages outside the workspace root (path
/// dependencies), from a full `cargo metadata` of this workspace; none
/// when it cannot be read.
pub(crate) fn outside_packages(ws: &Workspace, metadata: &Utf8Path) -> Vec<Utf8PathBuf> {
    read_outside(ws, metadata).unwrap_or_default()
}

fn read_outside(ws: &Workspace, metadata: &Utf8Path) -> Option<Vec<Utf8PathBuf>> {
    #[derive(serde::Deserialize)]
    struct Metadata {
        workspace_root: Utf8PathBuf,
        packages: Vec<Package>,
    }
    #[derive(serde::Deserialize)]
    struct Package {
        source: Option<String>,
        manifest_path: Utf8PathBuf,
    }
    let json = std::fs::read(metadata).ok()?;
    let m: Metadata = serde_json::from_slice(&json).ok()?;
    if m.workspace_root != ws.root {
        return None;
    }
    let mut dirs: Vec<Utf8PathBuf> = m
        .packages
        .into_iter()
        .filter(|p| p.source.is_none() && !p.manifest_path.starts_with(&ws.root))
        .filter_map(|p| p.manifest_path.parent().map(Utf8Path::to_owned))
        .collect();
    dirs.sort();
    dirs.dedup();
    Some(dirs)
}

struct Walk<'a> {
    lines: Vec<String>,
    files: usize,
    target: &'a Utf8Path,
    outputs: &'a [Utf8PathBuf],
}

impl Walk<'_> {
    /// Every file under `dir` with its stamp, but target folders (cargo
    /// tags each with `CACHEDIR.TAG`), `.git` and the outputs; `None` past
    /// [`MOST_FILES`].
    fn dir(&mut self, dir: &Utf8Path) -> Option<()> {
        if dir == self.target || dir.join("CACHEDIR.TAG").exists() {
            return Some(());
        }
        let Ok(entries) = dir.read_dir_utf8() else {
            return Some(());
        };
        let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
        entries.sort_by(|a, b| a.file_name().cmp(b.file_name()));
        for e in entries {
            let path = e.path();
            let Ok(kind) = e.file_type() else { continue };
            if kind.is_dir() {
                if e.file_name() != ".git" {
                    self.dir(path)?;
                }
                continue;
            }
            if self.outputs.iter().any(|o| o == path) {
                continue;
            }
            self.files += 1;
            if self.files > MOST_FILES {
                return None;
            }
            self.lines.push(stamped(path));
        }
        Some(())
    }
}

/// `path` and its identity, or `none`.
fn stamped(path: &Utf8Path) -> String {
    match std::fs::symlink_metadata(path) {
        Ok(m) => format!("{path} {}", identity(&m)),
        Err(_) => format!("{path} none"),
    }
}

/// A file's identity: its inode, size and change times (what git's index
/// trusts to say a file is as it was).
pub(crate) fn identity(m: &std::fs::Metadata) -> String {
    format!(
        "{} {} {}.{} {}.{}",
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_or_an_output_turns_its_key_and_a_target_folder_does_not() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(tmp.path()).unwrap().to_owned();
        let write = |p: &str, text: &str| {
            let p = root.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        write("Cargo.toml", "[workspace]\n");
        write("app/Cargo.toml", "[package]\n");
        write("app/src/main.rs", "fn main() {}\n");
        write("docker/app/bin/app", "binary");
        write(
            "target/CACHEDIR.TAG",
            "Signature: 8a477f597d28d172789f06886806bc55",
        );
        let ws = Workspace {
            root: root.clone(),
            target_dir: root.join("target"),
            members: vec!["app".into()],
            manifests: vec![root.join("app/Cargo.toml")],
        };
        let out = [root.join("docker/app/bin/app")];
        let key =
            |what: &str, out: &[Utf8PathBuf]| Snapshot::take(&ws, out, &[]).map(|s| s.key(what));
        let (first, built) = (key("build", &out).unwrap(), outputs(&out));
        assert_eq!(key("build", &out).unwrap(), first, "nothing changed");
        assert_ne!(key("another build", &out).unwrap(), first);
        write("target/debug/x", "built");
        write(
            "app/target/CACHEDIR.TAG",
            "Signature: 8a477f597d28d172789f06886806bc55",
        );
        write("app/target/y", "built by hand in app/");
        write(".git/index", "staged");
        write("docker/app/bin/app", "another binary");
        assert_eq!(
            key("build", &out).unwrap(),
            first,
            "outputs are not sources"
        );
        assert_ne!(outputs(&out), built, "an output changed");
        write("app/src/main.rs", "fn main() { }\n");
        let edited = key("build", &out).unwrap();
        assert_ne!(edited, first, "a source changed");
        // Files no member names count too: a build script or include_str! may read them.
        write("proto/api.proto", "syntax = \"proto3\";");
        assert_ne!(key("build", &out).unwrap(), edited);
        write(".git/HEAD", "ref: refs/heads/other");
        assert_ne!(key("build", &out).unwrap(), edited);
    }

    #[test]
    fn a_path_dependency_outside_the_workspace_counts_once_the_metadata_names_it() {
        let tmp = tempfile::tempdir().unwrap();
        let base = Utf8Path::from_path(tmp.path()).unwrap().to_owned();
        let (root, lib) = (base.join("ws"), base.join("shared-lib"));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(lib.join("src")).unwrap();
        std::fs::write(lib.join("src/lib.rs"), "pub fn f() {}").unwrap();
        let ws = Workspace {
            root: root.clone(),
            target_dir: root.join("target"),
            ..Workspace::default()
        };
        let file = base.join("cargo-metadata.json");
        assert_eq!(outside_packages(&ws, &file), Vec::<Utf8PathBuf>::new());
        let other = serde_json::json!({"workspace_root": base.join("other"), "packages": [
            {"source": null, "manifest_path": lib.join("Cargo.toml")},
        ]});
        std::fs::write(&file, other.to_string()).unwrap();
        assert!(
            outside_packages(&ws, &file).is_empty(),
            "another workspace's metadata"
        );
        let metadata = serde_json::json!({"workspace_root": root, "packages": [
            {"source": null, "manifest_path": lib.join("Cargo.toml")},
            {"source": null, "manifest_path": root.join("app/Cargo.toml")},
            {"source": "registry+https://github.com/rust-lang/crates.io-index",
             "manifest_path": base.join("registry/serde/Cargo.toml")},
        ]});
        std::fs::write(&file, metadata.to_string()).unwrap();
        let outside = outside_packages(&ws, &file);
        assert_eq!(outside, vec![lib.clone()]);
        let first = Snapshot::take(&ws, &[], &outside).unwrap();
        assert_ne!(Snapshot::take(&ws, &[], &[]).unwrap(), first);
        std::fs::write(lib.join("src/lib.rs"), "pub fn f() { }").unwrap();
        assert_ne!(Snapshot::take(&ws, &[], &outside).unwrap(), first);
    }
}
