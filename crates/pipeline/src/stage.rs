//! Host-built binaries for `FROM scratch` images: each staged package is built
//! statically for the host's Linux target and copied into its build context,
//! and only when its bytes changed, so BuildKit's cache holds when nothing did.
//! They build in a target folder of their own (`<target>/e2e/stage`), so
//! the test binaries can build at the same time: one cargo holding a target
//! folder's lock makes any other wait.

use camino::{Utf8Path, Utf8PathBuf};
use process::Cmd;

use crate::config::StageConfig;
use crate::error::{Error, Result};

/// How a build says how far it has come.
pub type OnProgress = std::sync::Arc<dyn Fn(process::CargoProgress) + Send + Sync>;

/// Builds the staged packages (one cargo call per profile, whose progress
/// goes to `on_progress`) and copies the binaries. Returns how many
/// binaries changed.
pub fn stage(
    root: &Utf8Path,
    target_dir: &Utf8Path,
    stages: &[(StageConfig, Utf8PathBuf)],
    on_progress: OnProgress,
) -> Result<Vec<Utf8PathBuf>> {
    if stages.is_empty() {
        return Ok(Vec::new());
    }
    let triple = host_triple(root)?;
    let mut profiles: Vec<&str> = stages.iter().map(|(s, _)| s.profile.as_str()).collect();
    profiles.sort_unstable();
    profiles.dedup();
    for profile in profiles {
        let packages: Vec<&str> = stages
            .iter()
            .filter(|(s, _)| s.profile == profile)
            .map(|(s, _)| s.package.as_str())
            .collect();
        build(
            root,
            &stage_dir(target_dir),
            &triple,
            profile,
            &packages,
            on_progress.clone(),
        )?;
    }
    let mut changed = Vec::new();
    for (s, dir) in stages {
        let from = stage_dir(target_dir)
            .join(&triple)
            .join(profile_dir(&s.profile))
            .join(&s.package);
        std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
        let to = dir.join(&s.package);
        if copy_if_changed(&from, &to)? {
            changed.push(to);
        }
    }
    Ok(changed)
}

/// Where staged binaries build: apart from the workspace's other builds.
pub fn stage_dir(target_dir: &Utf8Path) -> Utf8PathBuf {
    target_dir.join("e2e/stage")
}

/// The folder cargo builds a profile into: `dev` builds into `debug`.
fn profile_dir(profile: &str) -> &str {
    match profile {
        "dev" | "test" => "debug",
        "bench" => "release",
        other => other,
    }
}

fn build(
    root: &Utf8Path,
    target_dir: &Utf8Path,
    triple: &str,
    profile: &str,
    packages: &[&str],
    on_progress: OnProgress,
) -> Result<()> {
    let packages = packages
        .iter()
        .flat_map(|p| ["--package".to_owned(), p.to_string()]);
    let args = ["build", "--profile", profile, "--target", triple]
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
    let cmd = Cmd::cargo(args)
        .env("RUSTFLAGS", flags.trim())
        .env("CARGO_TARGET_DIR", target_dir.as_str())
        .with_cargo_progress();
    let out = cmd
        .start_group_streaming(root, true, process::Stream::Stderr, move |line| {
            if let Some(p) = process::cargo_progress(line) {
                on_progress(p);
            }
        })?
        .wait()?;
    if !out.success() {
        return Err(Error::Stack(format!(
            "`{cmd}` failed:\n{}",
            without_progress(&out.stderr, 30)
        )));
    }
    Ok(())
}

/// The last `n` lines of a cargo's stderr, without its progress bar.
pub(crate) fn without_progress(stderr: &str, n: usize) -> String {
    let lines: Vec<&str> = stderr
        .split(['\n', '\r'])
        .filter(|l| !l.trim().is_empty() && process::cargo_progress(l).is_none())
        .collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn copy_if_changed(from: &Utf8Path, to: &Utf8Path) -> Result<bool> {
    let new = std::fs::read(from).map_err(Error::io(from))?;
    if std::fs::read(to).is_ok_and(|old| old == new) {
        return Ok(false);
    }
    std::fs::copy(from, to).map_err(Error::io(to))?;
    Ok(true)
}

/// The host's target triple, from `rustc -vV`.
pub fn host_triple(root: &Utf8Path) -> Result<String> {
    let text = Cmd::new("rustc", ["-vV"]).text(root)?;
    text.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
        .ok_or_else(|| Error::Stack("`rustc -vV` names no host".into()))
}
