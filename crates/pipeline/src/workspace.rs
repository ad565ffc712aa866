//! Where a run happens, found at run time from the user's Cargo workspace:
//! its root, its target folder, its e2e config. Nothing here comes from the
//! tool's own build (`env!("CARGO_MANIFEST_DIR")`), so the same binary serves
//! any workspace.

use camino::{Utf8Path, Utf8PathBuf};
use process::Cmd;
use serde::Deserialize;

/// The user's workspace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workspace {
    /// The workspace root: cargo and nextest run there, printed paths start there.
    pub root: Utf8PathBuf,
    /// Where cargo builds (`CARGO_TARGET_DIR`, `build.target-dir`, else `root/target`).
    pub target_dir: Utf8PathBuf,
    /// The member packages' names (from the same `cargo metadata` call).
    pub members: Vec<String>,
    /// Their `Cargo.toml` files.
    pub manifests: Vec<Utf8PathBuf>,
}

/// Where `cargo e2e` looks for its config when `--config` is not given, in order.
pub const CONFIG_CANDIDATES: &[&str] = &["e2e.yaml", ".config/e2e.yaml", "docker/e2e.yaml"];

#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error(
        "{dir} is not inside a Cargo workspace (`cargo metadata` failed: {detail}); run cargo e2e from your workspace"
    )]
    NotAWorkspace { dir: Utf8PathBuf, detail: String },
    #[error(
        "no e2e config in {root}: looked for {}; write one from your compose file with `cargo e2e init`, or pass --config PATH",
        CONFIG_CANDIDATES.join(", ")
    )]
    NoConfig { root: Utf8PathBuf },
}

impl Workspace {
    /// The workspace around `dir`, as cargo sees it (`cargo metadata --no-deps`:
    /// one call, ~50 ms, and it knows every way the target folder can be moved).
    pub fn discover(dir: &Utf8Path) -> Result<Workspace, WorkspaceError> {
        #[derive(Deserialize)]
        struct Metadata {
            workspace_root: Utf8PathBuf,
            target_directory: Utf8PathBuf,
            packages: Vec<Package>,
        }
        #[derive(Deserialize)]
        struct Package {
            name: String,
            manifest_path: Utf8PathBuf,
        }
        let not_a_workspace = |detail: String| WorkspaceError::NotAWorkspace {
            dir: dir.to_owned(),
            detail,
        };
        let json = Cmd::cargo(["metadata", "--no-deps", "--format-version", "1"])
            .output(dir)
            .map_err(|e| not_a_workspace(first_line(&e.to_string())))?;
        let m: Metadata =
            serde_json::from_slice(&json).map_err(|e| not_a_workspace(e.to_string()))?;
        Ok(Workspace {
            root: m.workspace_root,
            target_dir: m.target_directory,
            members: m.packages.iter().map(|p| p.name.clone()).collect(),
            manifests: m.packages.into_iter().map(|p| p.manifest_path).collect(),
        })
    }

    /// A folder outside any Cargo workspace standing in for one (for the
    /// commands that need no cargo: `clean-context`, `certs`).
    pub fn standalone(root: Utf8PathBuf) -> Workspace {
        Workspace {
            target_dir: root.join("target"),
            root,
            members: Vec::new(),
            manifests: Vec::new(),
        }
    }

    /// `--config` when given, else the first of [`CONFIG_CANDIDATES`] that exists.
    pub fn config_path(&self, flag: Option<&Utf8Path>) -> Result<Utf8PathBuf, WorkspaceError> {
        if let Some(path) = flag {
            return Ok(path.to_owned());
        }
        CONFIG_CANDIDATES
            .iter()
            .map(|c| self.root.join(c))
            .find(|p| p.is_file())
            .ok_or_else(|| WorkspaceError::NoConfig {
                root: self.root.clone(),
            })
    }

    /// The stable project name of this workspace: `e2e-<root folder>`.
    pub fn default_project(&self) -> String {
        let dir = self
            .root
            .file_name()
            .unwrap_or("stack")
            .to_ascii_lowercase();
        let dir: String = dir
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        format!("e2e-{dir}")
    }

    /// `path` as a user would type it from the workspace root: relative when
    /// inside it, absolute otherwise.
    pub fn shown(&self, path: &Utf8Path) -> Utf8PathBuf {
        match path.strip_prefix(&self.root) {
            Ok(rel) if rel.as_str().is_empty() => ".".into(),
            Ok(rel) => rel.to_owned(),
            Err(_) => path.to_owned(),
        }
    }
}

fn first_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .find(|l| l.starts_with("error"))
        .or_else(|| s.lines().next())
        .unwrap_or_default()
        .to_owned()
}

impl Workspace {
    /// Writes the workspace's full `cargo metadata` to `to`, from the copy the
    /// last run kept when no manifest, lock file or cargo config changed since
    /// (their sizes and mtimes), else from cargo (~0.2 s of CPU, which on two
    /// cores is felt by everything running beside it).
    pub(crate) fn write_full_metadata(&self, to: &Utf8Path) {
        let ws = self;
        let cache = ws.target_dir.join("e2e/cache");
        let (cached, key_file) = (
            cache.join("cargo-metadata.json"),
            cache.join("cargo-metadata.key"),
        );
        let mut inputs: Vec<Utf8PathBuf> = [
            "Cargo.toml",
            "Cargo.lock",
            ".cargo/config.toml",
            ".cargo/config",
        ]
        .iter()
        .map(|f| ws.root.join(f))
        .collect();
        inputs.extend(ws.manifests.iter().cloned());
        let mut key: String = inputs
            .iter()
            .map(|p| match std::fs::metadata(p) {
                Ok(m) => format!(
                    "{p} {} {:?}\n",
                    m.len(),
                    m.modified()
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                ),
                Err(_) => format!("{p} none\n"),
            })
            .collect();
        // Targets cargo finds by their files (a new `tests/x.rs` is a new test
        // binary, which a filterset may name) change the metadata too.
        for manifest in &ws.manifests {
            key.push_str(&auto_targets(manifest.parent().unwrap_or(&ws.root)));
        }
        if std::fs::read_to_string(&key_file).is_ok_and(|k| k == key)
            && std::fs::copy(&cached, to).is_ok()
        {
            return;
        }
        if let Ok(json) = Cmd::cargo(["metadata", "--format-version", "1"]).output(&ws.root)
            && std::fs::write(to, &json).is_ok()
        {
            // Runs of other projects in this workspace read the copy meanwhile:
            // each file is replaced whole, the copy before the key that vouches for it.
            let _ = std::fs::create_dir_all(&cache);
            if crate::write_whole(&cached, &json).is_ok() {
                let _ = crate::write_whole(&key_file, key.as_bytes());
            }
        }
    }
}

/// The files by which cargo discovers a package's targets, named.
fn auto_targets(dir: &Utf8Path) -> String {
    let mut out = String::new();
    for file in ["src/lib.rs", "src/main.rs", "build.rs"] {
        if dir.join(file).exists() {
            out.push_str(&format!("{dir}/{file}\n"));
        }
    }
    for folder in ["src/bin", "tests", "examples", "benches"] {
        let Ok(entries) = dir.join(folder).read_dir_utf8() else {
            continue;
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_owned())
            .collect();
        names.sort();
        out.push_str(&format!("{dir}/{folder}: {}\n", names.join(" ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workspace_is_found_from_any_folder_inside_it() {
        let here = Utf8Path::new(env!("CARGO_MANIFEST_DIR"));
        let ws = Workspace::discover(&here.join("src")).unwrap();
        assert_eq!(ws.root, here.join("../..").canonicalize_utf8().unwrap());
        assert!(
            ws.target_dir.ends_with("target") || std::env::var_os("CARGO_TARGET_DIR").is_some()
        );
        assert_eq!(
            ws.default_project(),
            format!("e2e-{}", ws.root.file_name().unwrap())
        );
        assert!(
            ws.members.iter().any(|m| m == "e2e-pipeline"),
            "{:?}",
            ws.members
        );
        assert_eq!(
            ws.shown(&ws.root.join("docker/e2e.yaml")),
            "docker/e2e.yaml"
        );
        assert_eq!(ws.shown(Utf8Path::new("/elsewhere/x")), "/elsewhere/x");
    }

    #[test]
    fn outside_a_workspace_the_error_says_where_and_what_to_do() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(tmp.path()).unwrap();
        let err = Workspace::discover(dir).unwrap_err().to_string();
        assert!(err.contains("is not inside a Cargo workspace"), "{err}");
        assert!(err.contains("could not find `Cargo.toml`"), "{err}");
        let ws = Workspace::standalone(dir.to_owned());
        let err = ws.config_path(None).unwrap_err().to_string();
        assert!(err.contains("cargo e2e init"), "{err}");
        std::fs::create_dir_all(dir.join(".config")).unwrap();
        std::fs::write(dir.join(".config/e2e.yaml"), "").unwrap();
        assert_eq!(ws.config_path(None).unwrap(), dir.join(".config/e2e.yaml"));
    }
}
