//! `cargo xtask`: this repository's own commands (bench, ci) beside the
//! ones every workspace gets from cargo-e2e, which it hands over to.

mod bench;
mod ci;
mod repeat;
mod soak;

use std::process::ExitCode;

use camino::{Utf8Path, Utf8PathBuf};
use clap::{Args, Parser, Subcommand};

/// Fast, leak-proof end-to-end runs against a Docker Compose stack, and this
/// repository's benchmarks and CI.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version)]
struct Xtask {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    #[command(flatten)]
    Tool(cargo_e2e::Command),
    /// Benchmarks, side by side with the tools they replace.
    Bench(Bench),
    /// Everything CI checks: formatting, clippy, unit and Docker-backed tests, an e2e run.
    Ci(Ci),
    /// The demo stack and the shop fixture from nothing N times each on the
    /// engine that answers: a failure count per stack, failed runs' folders kept.
    Repeat(Repeat),
    /// The demo stack run K times, each hit by a random fault at a random
    /// moment of a random phase; after each, the engine must hold what the
    /// policy promises and the next run must pass. Seeded: the seed replays it.
    Soak(Soak),
}

#[derive(Debug, Args)]
pub struct Soak {
    /// The seed of the random choices (policy, mode, fault, phase, moment).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// How many faulted runs.
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
}

#[derive(Debug, Args)]
pub struct Repeat {
    /// Runs of each stack.
    #[arg(long, default_value_t = 20)]
    pub runs: usize,
    /// Only these stacks [default: both].
    #[arg(long, value_parser = ["demo", "shop"])]
    pub stack: Vec<String>,
}

#[derive(Debug, Args)]
pub struct Bench {
    /// Fewer rounds (2 per cycle scenario): the whole run under ten minutes on 2 cores.
    #[arg(long)]
    pub quick: bool,
    /// Run only these parts [default: all]. The cycle part clears the engine's
    /// BuildKit cache for its cold scenario.
    #[arg(long, value_enum, value_name = "PART")]
    pub only: Vec<BenchPart>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchPart {
    /// The naive E2E script against cargo xtask e2e on a ~650 MiB repository.
    Cycle,
    /// The pipeline against the bare commands it runs.
    Overhead,
    /// Compose's `up --wait` against the tool's `up` on a stack gated on a healthy service.
    Readiness,
    /// The context walk against find and du.
    Walk,
    /// A run on a kept, unchanged demo stack against the bare nextest run of its tests.
    Kept,
    /// `e2e --watch` from a change to its result: a backend change, a test
    /// change, a file nothing uses, each against what one runs without it.
    Watch,
}

#[derive(Debug, Args)]
pub struct Ci {
    /// Print the steps and their commands; run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Only what depends on the engine: the Docker-backed tests and the e2e
    /// run (what CI runs again on each further engine of the matrix).
    #[arg(long)]
    pub engine_only: bool,
    /// With --engine-only: only the Docker-backed tests that touch image IDs
    /// (fingerprints, purge, dangling images, "nothing changed"), for the
    /// containerd image store, where image IDs are manifest digests.
    #[arg(long, requires = "engine_only")]
    pub image_ids: bool,
}

fn main() -> ExitCode {
    let result = match Xtask::parse().command {
        Command::Tool(cmd) => cargo_e2e::run(cmd),
        Command::Bench(f) => bench::run(&f),
        Command::Ci(f) => ci::run(&f),
        Command::Repeat(f) => repeat::run(&f),
        Command::Soak(f) => soak::run(&f),
    };
    cargo_e2e::finish(result)
}

/// This repository's root: xtask lives one level below it.
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
/// shares the build cache with `cargo xtask` (see `process::CARGO_RUN_VARS`).
pub fn nested_cargo(cmd: xshell::Cmd<'_>) -> xshell::Cmd<'_> {
    process::CARGO_RUN_VARS
        .iter()
        .fold(cmd, |c, var| c.env_remove(var))
}

/// Where cargo builds: `CARGO_TARGET_DIR`, else `target/` in the workspace.
pub fn target_dir() -> Utf8PathBuf {
    std::env::var("CARGO_TARGET_DIR")
        .map_or_else(|_| project_root().join("target"), Utf8PathBuf::from)
}

/// This repository's config and workspace.
pub fn load_config() -> anyhow::Result<(pipeline::Workspace, pipeline::Config)> {
    let ws = pipeline::Workspace::discover(&project_root())?;
    let config = pipeline::Config::load(&project_root().join("docker/e2e.yaml"), &ws)?;
    Ok((ws, config))
}
