//! The workspace's packages and their path dependencies (`cargo metadata
//! --no-deps`): which crates the tests and the staged binaries build on.

use std::collections::BTreeSet;

use camino::{Utf8Path, Utf8PathBuf};
use process::Cmd;

use super::canonical;

/// A workspace package: its folder and the workspace packages it depends on.
#[derive(Debug)]
pub(super) struct Package {
    pub(super) name: String,
    pub(super) dir: Utf8PathBuf,
    /// Path dependencies of any kind (normal, dev, build): a test binary
    /// builds with the dev ones too.
    pub(super) deps: Vec<String>,
}

/// `roots` and every workspace package they depend on, directly or not.
pub(super) fn closure(packages: &[Package], roots: &BTreeSet<&str>) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = BTreeSet::new();
    let mut todo: Vec<String> = roots.iter().map(|r| (*r).to_owned()).collect();
    while let Some(name) = todo.pop() {
        if !out.insert(name.clone()) {
            continue;
        }
        if let Some(p) = packages.iter().find(|p| p.name == name) {
            todo.extend(p.deps.iter().cloned());
        }
    }
    out
}

/// The workspace's packages, their folders and their path dependencies.
pub(super) fn packages(root: &Utf8Path) -> crate::Result<Vec<Package>> {
    let text = Cmd::cargo(["metadata", "--no-deps", "--format-version", "1"]).text(root)?;
    let doc: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| crate::Error::Stack(format!("cargo metadata: {e}")))?;
    Ok(doc["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let name = p["name"].as_str()?.to_owned();
            let manifest = Utf8Path::new(p["manifest_path"].as_str()?);
            let deps = p["dependencies"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|d| d["path"].is_string())
                .filter_map(|d| d["name"].as_str().map(str::to_owned))
                .collect();
            Some(Package {
                name,
                dir: canonical(manifest.parent()?),
                deps,
            })
        })
        .collect())
}
