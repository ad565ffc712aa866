//! `cargo xtask`: parses flags, calls the workspace's crates, prints, exits.

mod bench;
mod certs;
mod ci;
mod clean_context;
mod doctor;
mod e2e;
mod exit;
mod flags;
mod progress;

use std::process::ExitCode;

use camino::{Utf8Path, Utf8PathBuf};
use clap::Parser;

fn main() -> ExitCode {
    let flags = flags::Xtask::parse();
    let result = match flags.command {
        flags::Command::E2e(f) => e2e::run(&f),
        flags::Command::CleanContext(f) => clean_context::run(&f),
        flags::Command::Certs(f) => certs::run(&f),
        flags::Command::Doctor => doctor::run(),
        flags::Command::Bench(f) => bench::run(&f),
        flags::Command::Ci => ci::run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            exit::code(&err)
        }
    }
}

/// The workspace root: xtask lives one level below it.
pub fn project_root() -> Utf8PathBuf {
    Utf8Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_owned()
}

/// An xshell shell in the workspace root.
pub fn shell() -> anyhow::Result<xshell::Shell> {
    let sh = xshell::Shell::new()?;
    sh.change_dir(project_root());
    Ok(sh)
}

/// A nested cargo command without the variables `cargo run` set for us, so it
/// shares the build cache with `cargo xtask` (see `compose::run::CARGO_RUN_VARS`).
pub fn nested_cargo(cmd: xshell::Cmd<'_>) -> xshell::Cmd<'_> {
    compose::run::CARGO_RUN_VARS
        .iter()
        .fold(cmd, |c, var| c.env_remove(var))
}

/// Where cargo builds: `CARGO_TARGET_DIR`, else `target/` in the workspace.
pub fn target_dir() -> Utf8PathBuf {
    std::env::var("CARGO_TARGET_DIR")
        .map_or_else(|_| project_root().join("target"), Utf8PathBuf::from)
}

/// Whether this runs under CI (the `CI` variable most CI systems set).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// The config file: `--config`, else `docker/e2e.yaml` in the workspace.
pub fn load_config(flag: Option<&Utf8Path>) -> anyhow::Result<pipeline::Config> {
    let path = flag.map_or_else(
        || project_root().join("docker/e2e.yaml"),
        Utf8Path::to_owned,
    );
    Ok(pipeline::Config::load(&path)?)
}
