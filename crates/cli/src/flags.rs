//! Every command and flag of `cargo e2e`, in one place; doc comments are the
//! `--help`. A workspace's own xtask can flatten [`Command`] into its own.

use camino::Utf8PathBuf;
use clap::builder::TypedValueParser as _;
use clap::{Args, Parser, Subcommand};
use compose::Policy;

/// Fast, leak-proof end-to-end runs against a Docker Compose stack.
///
/// Without a subcommand it runs `e2e`.
#[derive(Debug, Parser)]
#[command(
    name = "cargo-e2e",
    bin_name = "cargo e2e",
    version,
    propagate_version = true,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub e2e: E2e,
}

impl Cli {
    /// The subcommand, `e2e` when none was named.
    pub fn into_command(self) -> Command {
        self.command.unwrap_or(Command::E2e(self.e2e))
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Clean, check certificates, build, start and wait, test with nextest, tear down.
    E2e(E2e),
    /// Measure, explain and shrink Docker build contexts (exact .dockerignore semantics).
    CleanContext(CleanContext),
    /// Make sure the stack's TLS certificates exist and are valid; generate only when needed.
    Certs(Certs),
    /// Say what this machine has and lacks for e2e runs, and how to fix each gap.
    Doctor(Doctor),
    /// Write a commented starting config from the workspace's compose file.
    Init(Init),
    /// Remove the projects that dead runs left (labelled by this tool; never
    /// anyone else's, never one in use).
    Reap(Reap),
    /// Build once, test on N machines: `shard build` in a CI build job,
    /// `shard run K/N` in each job of a matrix, then `report merge`.
    #[command(subcommand)]
    Shard(ShardCommand),
    /// Read run reports: `report merge` combines shards' reports and JUnit
    /// files; `report trace` draws a run as a timeline.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Internal: started by `e2e` beside each run; applies the run's policy
    /// if the run goes away without finishing (reads its order on stdin).
    #[command(name = "__reaper", hide = true)]
    Reaper,
}

#[derive(Debug, clap::Subcommand)]
pub enum ShardCommand {
    /// Build the images, the staged binaries and the test binaries once, and
    /// write them to DIR (the CI artifact every shard takes); start nothing,
    /// run no test. Takes every flag of `e2e`.
    Build(ShardBuild),
    /// Run slice K of N of the tests with what `shard build` wrote: images
    /// loaded where this checkout's inputs match the build's (else built,
    /// and said why), tests from the build's nextest archive; no compile.
    /// Takes every flag of `e2e`.
    Run(ShardRun),
}

#[derive(Debug, Args)]
pub struct ShardBuild {
    /// Where to write what the shards need.
    #[arg(long, value_name = "DIR")]
    pub out: Utf8PathBuf,
    #[command(flatten)]
    pub e2e: E2e,
}

#[derive(Debug, Args)]
pub struct ShardRun {
    /// This shard: K of N (nextest's `--partition slice:K/N`).
    #[arg(value_name = "K/N", value_parser = parse_part)]
    pub part: (u32, u32),
    /// The folder `shard build --out` wrote (the build job's artifact).
    #[arg(long, value_name = "DIR")]
    pub from: Utf8PathBuf,
    #[command(flatten)]
    pub e2e: E2e,
}

fn parse_part(s: &str) -> Result<(u32, u32), String> {
    pipeline::shard::Shard::parse_part(s)
}

#[derive(Debug, clap::Subcommand)]
pub enum ReportCommand {
    /// One summary and one JUnit file from N shards' runs
    /// (`-- --partition slice:K/N` on N machines).
    Merge(ReportMerge),
    /// A run drawn as an SVG timeline: phases, each image's build, each
    /// service from created to ready, each test (from the run's trace.json).
    Trace(ReportTrace),
}

#[derive(Debug, Args)]
pub struct ReportTrace {
    /// A run's `trace.json`, its folder, or its `report.json` [default: the
    /// last run's, from target/e2e/report.json].
    #[arg(value_name = "RUN")]
    pub run: Option<Utf8PathBuf>,
    /// Where to write the SVG [default: trace.svg beside the trace].
    #[arg(long, value_name = "PATH")]
    pub out: Option<Utf8PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReportMerge {
    /// The shards' `report.json` files (each one's JUnit report is the one it
    /// names, else a `junit.xml` beside it).
    #[arg(required = true, value_name = "REPORT")]
    pub reports: Vec<Utf8PathBuf>,
    /// Where to write the merged JUnit report.
    #[arg(long, value_name = "PATH")]
    pub junit: Option<Utf8PathBuf>,
}

#[derive(Debug, Args)]
pub struct Reap {
    /// List what would be removed and why; remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Age after which a project whose run is known gone (this host) goes.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub older_than: std::time::Duration,
    /// Age after which a project whose run is on another host (which cannot
    /// be asked whether it still runs) goes.
    #[arg(long, value_name = "DURATION", default_value = "6h", value_parser = parse_duration)]
    pub elsewhere_after: std::time::Duration,
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    compose::model::go_duration(text)
        .ok_or_else(|| format!("`{text}` is not a duration; write it like 90s, 10m or 6h"))
}

/// `--config`, taken by every subcommand.
#[derive(Debug, Args, Default)]
pub struct ConfigFlag {
    /// The e2e config file [default: the first of e2e.yaml, .config/e2e.yaml,
    /// docker/e2e.yaml in the workspace root].
    #[arg(long, value_name = "PATH")]
    pub config: Option<Utf8PathBuf>,
}

#[derive(Debug, Args, Default)]
pub struct E2e {
    #[command(flatten)]
    pub config: ConfigFlag,
    /// After the run, keep the stack up and watch the workspace: a change runs
    /// what it affects (a service's build, the tests) and the tests again;
    /// Ctrl-C ends it with the teardown policy.
    #[arg(long)]
    pub watch: bool,
    /// With --watch: after a cycle whose tests failed, run only those until
    /// they pass (then the next cycle runs them all).
    #[arg(long, requires = "watch")]
    pub only_failed: bool,
    /// What to leave afterwards [default: stop; purge when CI is set].
    #[arg(long, value_name = "POLICY", value_parser = policy_parser())]
    pub teardown: Option<Policy>,
    /// Leave a failed stack running for debugging, and say how to reach and remove it.
    #[arg(long)]
    pub keep_on_failure: bool,
    /// Run only the tests this nextest filterset selects (checked before anything starts).
    #[arg(short = 'E', long = "filterset", value_name = "FILTERSET")]
    pub filtersets: Vec<String>,
    /// The Compose project name [default: stable per checkout; unique per run when CI is set].
    #[arg(long, value_name = "NAME", value_parser = parse_project)]
    pub project: Option<String>,
    /// Skip deleting artifacts and measuring build contexts.
    #[arg(long)]
    pub no_clean: bool,
    /// Skip building images: use the ones the engine has.
    #[arg(long)]
    pub no_build: bool,
    /// Build every image, ask cargo for the staged and test binaries, and run
    /// `up` even when nothing they are made from changed since the last run
    /// (which otherwise skips all three).
    #[arg(long, conflicts_with = "no_build")]
    pub rebuild: bool,
    /// When another run holds this project (same user, same engine), exit 3
    /// at once instead of waiting for it.
    #[arg(long)]
    pub no_wait: bool,
    /// Do not show the services' log lines while the stack starts (they are
    /// kept in the run folder's logs/ either way) [config: readiness.logs].
    #[arg(long)]
    pub no_logs: bool,
    /// Publish every port on a host port the engine picks, so runs of this
    /// stack can share an engine; `{service:port}` follows [config: compose.ephemeral_ports].
    #[arg(long)]
    pub ephemeral_ports: bool,
    /// Where to write the run report as JSON [default: target/e2e/report.json].
    #[arg(long, value_name = "PATH")]
    pub report_json: Option<Utf8PathBuf>,
    /// Arguments for `cargo nextest run`, after `--` (e.g. `-- --partition slice:1/2`).
    #[arg(last = true, value_name = "NEXTEST_ARGS")]
    pub nextest_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CleanContext {
    /// The e2e config (its compose files give the build contexts).
    #[command(flatten)]
    pub config: ConfigFlag,
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
    /// With --list: only what the build really transfers (the paths its
    /// Dockerfile's COPY/ADD and RUN --mount binds name, after the ignore file).
    #[arg(long, requires = "list")]
    pub sent: bool,
    /// A build argument for reading --context's Dockerfile (the stack's come from compose).
    #[arg(long = "build-arg", value_name = "NAME=VALUE", requires = "context")]
    pub build_args: Vec<String>,
    /// The stage --context's Dockerfile builds [default: the last one].
    #[arg(long, value_name = "STAGE", requires = "context")]
    pub target: Option<String>,
    /// Say whether PATH is sent or excluded, and which ignore-file line decided.
    #[arg(long, value_name = "PATH")]
    pub explain: Option<String>,
    /// Fail (exit 1) when a build transfers more than this (e.g. 50MB, 1.5GiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub budget: Option<u64>,
    /// Machine-readable output on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct Certs {
    /// The e2e config (certificate folder, hosts, validity).
    #[command(flatten)]
    pub config: ConfigFlag,
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
pub struct Doctor {
    #[command(flatten)]
    pub config: ConfigFlag,
}

#[derive(Debug, Args)]
pub struct Init {
    /// Where to write the config [default: e2e.yaml in the workspace root].
    #[command(flatten)]
    pub config: ConfigFlag,
    /// The compose file to start from [default: the first of compose.yaml,
    /// compose.yml, docker-compose.yaml, docker-compose.yml, in the root or docker/].
    #[arg(long, value_name = "PATH")]
    pub compose: Option<Utf8PathBuf>,
    /// Add a certs section: a CA and a server certificate for the stack's TLS.
    #[arg(long)]
    pub certs: bool,
    /// Print the config on stdout; write nothing.
    #[arg(long)]
    pub print: bool,
}

fn policy_parser() -> impl clap::builder::TypedValueParser<Value = Policy> {
    clap::builder::PossibleValuesParser::new(Policy::NAMES)
        .map(|s| Policy::parse(&s).expect("clap admits only the listed names"))
}

/// Compose's rule for project names, checked before anything starts.
fn parse_project(s: &str) -> Result<String, String> {
    let ok_start = s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ok_rest = s
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok_start && ok_rest {
        Ok(s.to_owned())
    } else {
        Err("use lowercase letters, digits, `-` and `_`, starting with a letter or digit (Compose's rule)".into())
    }
}

fn parse_size(s: &str) -> Result<u64, String> {
    build_context::parse_size(s)
}
