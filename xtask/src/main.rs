//! `cargo xtask`: parses flags, calls the workspace's crates, prints, exits.

mod bench;
mod certs;
mod ci;
mod clean_context;
mod doctor;
mod exit;
mod flags;

use std::process::ExitCode;

use camino::{Utf8Path, Utf8PathBuf};
use clap::Parser;

fn main() -> ExitCode {
    let flags = flags::Xtask::parse();
    let result = match flags.command {
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

/// The config file: `--config`, else `docker/e2e.yaml` in the workspace.
pub fn load_config(flag: Option<&Utf8Path>) -> anyhow::Result<pipeline::Config> {
    let path = flag.map_or_else(
        || project_root().join("docker/e2e.yaml"),
        Utf8Path::to_owned,
    );
    Ok(pipeline::Config::load(&path)?)
}
