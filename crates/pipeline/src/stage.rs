//! Host-built binaries for `FROM scratch` images: each staged package is built
//! statically for the host's Linux target and copied into its build context,
//! and only when its bytes changed, so BuildKit's cache holds when nothing did.

use camino::{Utf8Path, Utf8PathBuf};
use compose::{Cmd, GroupOptions};

use crate::config::StageConfig;

/// Builds every staged package in one cargo call and copies the binaries.
/// Returns how many binaries changed.
pub fn stage(
    root: &Utf8Path,
    target_dir: &Utf8Path,
    stages: &[(StageConfig, Utf8PathBuf)],
) -> Result<usize, String> {
    if stages.is_empty() {
        return Ok(0);
    }
    let triple = host_triple(root)?;
    let packages = stages
        .iter()
        .flat_map(|(s, _)| ["--package".to_owned(), s.package.clone()]);
    let args = [
        "build",
        "--locked",
        "--profile",
        "image",
        "--target",
        &triple,
    ]
    .map(str::to_owned)
    .into_iter()
    .chain(packages);
    // With --target, RUSTFLAGS reach only the target's artifacts: build scripts
    // and proc macros stay dynamic, and the host build's cache is untouched.
    let flags = [
        std::env::var("RUSTFLAGS").unwrap_or_default(),
        "-C target-feature=+crt-static".into(),
    ]
    .join(" ");
    let cmd = Cmd::cargo(args).env("RUSTFLAGS", flags.trim());
    let out = cmd
        .run_group(
            root,
            GroupOptions {
                capture: true,
                interruptible: true,
            },
        )
        .map_err(|e| e.to_string())?;
    if !out.success() {
        let lines: Vec<&str> = out.stderr.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        return Err(format!("`{cmd}` failed:\n{tail}"));
    }
    let mut changed = 0;
    for (s, dir) in stages {
        let from = target_dir.join(&triple).join("image").join(&s.package);
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {dir}: {e}"))?;
        changed += usize::from(copy_if_changed(&from, &dir.join(&s.package))?);
    }
    Ok(changed)
}

fn copy_if_changed(from: &Utf8Path, to: &Utf8Path) -> Result<bool, String> {
    let new = std::fs::read(from).map_err(|e| format!("cannot read {from}: {e}"))?;
    if std::fs::read(to).is_ok_and(|old| old == new) {
        return Ok(false);
    }
    std::fs::copy(from, to).map_err(|e| format!("cannot write {to}: {e}"))?;
    Ok(true)
}

/// The host's target triple, from `rustc -vV`.
pub fn host_triple(root: &Utf8Path) -> Result<String, String> {
    let text = Cmd::new("rustc", ["-vV"])
        .text(root)
        .map_err(|e| e.to_string())?;
    text.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
        .ok_or_else(|| "`rustc -vV` names no host".into())
}
