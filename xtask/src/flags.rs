//! Every command and flag of `cargo xtask`, in one place; doc comments are the `--help`.

use camino::Utf8PathBuf;
use clap::{Args, Parser, Subcommand};

/// Fast, leak-proof end-to-end runs against a Docker Compose stack.
#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    version,
    propagate_version = true
)]
pub struct Xtask {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Measure, explain and shrink Docker build contexts (exact .dockerignore semantics).
    CleanContext(CleanContext),
    /// Make sure the stack's TLS certificates exist and are valid; generate only when needed.
    Certs(Certs),
    /// Say what this machine has and lacks for e2e runs, and how to fix each gap.
    Doctor,
    /// Benchmarks, side by side with the tools they replace.
    Bench(Bench),
    /// Everything CI checks: formatting, clippy, unit and Docker-backed tests.
    Ci,
}

#[derive(Debug, Args)]
pub struct CleanContext {
    /// The e2e config file (its compose files give the build contexts).
    #[arg(long, value_name = "PATH")]
    pub config: Option<Utf8PathBuf>,
    /// Work on this one context folder instead of the compose stack's.
    #[arg(long, value_name = "DIR")]
    pub context: Option<Utf8PathBuf>,
    /// The Dockerfile building from --context (its <Dockerfile>.dockerignore wins).
    #[arg(long, value_name = "PATH", requires = "context")]
    pub dockerfile: Option<Utf8PathBuf>,
    /// Show what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print exactly the files and symlinks `COPY . /dst` would place in an image, one per line.
    #[arg(long, conflicts_with = "explain")]
    pub list: bool,
    /// Say whether PATH is sent or excluded, and which ignore-file line decided.
    #[arg(long, value_name = "PATH")]
    pub explain: Option<String>,
    /// Fail (exit 1) when a context sends more than this (e.g. 50MB, 1.5GiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub budget: Option<u64>,
    /// Machine-readable output on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct Certs {
    /// The e2e config file (certificate folder, hosts, validity).
    #[arg(long, value_name = "PATH")]
    pub config: Option<Utf8PathBuf>,
    /// Change nothing; exit 1 when something would be generated, and say why.
    #[arg(long, conflicts_with = "force")]
    pub check: bool,
    /// Regenerate everything, CA included.
    #[arg(long)]
    pub force: bool,
    /// Machine-readable output on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct Bench {
    /// Fewer and smaller runs (CI-sized).
    #[arg(long)]
    pub quick: bool,
}

fn parse_size(s: &str) -> Result<u64, String> {
    build_context::parse_size(s)
}
