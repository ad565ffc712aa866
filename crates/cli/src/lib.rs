//! The command line of cargo-e2e as a library: flags, progress, exit codes,
//! and `main` for any workspace. The `cargo-e2e` binary is one caller
//! (`cargo e2e ...`); a workspace's own xtask is another:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     cargo_e2e::main()
//! }
//! ```
//!
//! Everything about "where" (workspace root, target folder, config, project
//! name) is found at run time from the current folder's Cargo workspace.

mod certs;
pub mod ci_log;
mod clean_context;
mod doctor;
mod e2e;
pub mod exit;
pub mod flags;
mod init;
mod progress;
mod reap;
mod reaper;
mod report;
pub mod svg;
mod timeline;
mod watch;

use std::ffi::OsString;
use std::process::ExitCode;

use camino::{Utf8Path, Utf8PathBuf};
use clap::FromArgMatches as _;
use exit::Exit;
pub use flags::{Cli, Command};
use pipeline::{Config, Workspace, WorkspaceError};

/// Parses the process's arguments and runs the command: the whole `main` of
/// `cargo-e2e` and of a workspace's xtask that hands over to this crate.
pub fn main() -> ExitCode {
    // Nothing this run makes is writable by group or others, whatever umask
    // started it (a CI container's is often 000).
    pipeline::guard::harden_umask();
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let bin = bin_name(args.first().map(OsString::as_os_str));
    // `cargo e2e ARGS` runs `cargo-e2e e2e ARGS`; `cargo xtask e2e ARGS` runs
    // `xtask e2e ARGS`. Either way a leading `e2e` names the default command.
    if args.get(1).is_some_and(|a| a == "e2e") {
        args.remove(1);
    }
    let matches = <Cli as clap::CommandFactory>::command()
        .bin_name(&bin)
        .get_matches_from(args);
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    finish(run(cli.into_command()))
}

/// Runs one command.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::E2e(f) => e2e::run(&f),
        Command::CleanContext(f) => clean_context::run(&f),
        Command::Certs(f) => certs::run(&f),
        Command::Doctor(f) => doctor::run(&f),
        Command::Init(f) => init::run(&f),
        Command::Reaper => reaper::run(),
        Command::Reap(f) => reap::run(&f),
        Command::Shard(flags::ShardCommand::Build(f)) => e2e::run_as(
            &f.e2e,
            Some(pipeline::shard::Shard::Build {
                out: absolute(&f.out)?,
            }),
        ),
        Command::Shard(flags::ShardCommand::Run(f)) => e2e::run_as(
            &f.e2e,
            Some(pipeline::shard::Shard::Run {
                from: absolute(&f.from)?,
                k: f.part.0,
                n: f.part.1,
            }),
        ),
        Command::Report(flags::ReportCommand::Merge(f)) => report::merge(&f),
        Command::Report(flags::ReportCommand::Trace(f)) => report::trace(&f),
    }
}

/// Prints the error, if any, and turns the result into the exit code of
/// the table in [`exit`].
pub fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", pipeline::secrets::redact(&format!("{err:#}")));
            ExitCode::from(exit::code(&err))
        }
    }
}

/// How the user runs this tool (`cargo e2e`, `cargo xtask`), for messages
/// that name a command.
pub(crate) fn tool() -> String {
    bin_name(std::env::args_os().next().as_deref())
}

/// How the user called us, for `--help`: `cargo e2e`, `cargo xtask`, or the file name.
fn bin_name(argv0: Option<&std::ffi::OsStr>) -> String {
    let name = argv0
        .and_then(|a| Utf8Path::new(a.to_str()?).file_name().map(str::to_owned))
        .unwrap_or_else(|| "cargo-e2e".into());
    match name.strip_prefix("cargo-") {
        Some(sub) => format!("cargo {sub}"),
        None if name == "xtask" => "cargo xtask".into(),
        None => name,
    }
}

/// `path` from the current folder (a run works from the workspace root).
fn absolute(path: &Utf8Path) -> anyhow::Result<Utf8PathBuf> {
    Ok(if path.is_absolute() {
        path.to_owned()
    } else {
        current_dir()?.join(path)
    })
}

fn current_dir() -> anyhow::Result<Utf8PathBuf> {
    let here = std::env::current_dir()?;
    Utf8PathBuf::from_path_buf(here)
        .map_err(|p| anyhow::anyhow!("the current folder is not UTF-8: {}", p.display()))
}

/// The workspace around the current folder.
pub fn workspace() -> anyhow::Result<Workspace> {
    Ok(Workspace::discover(&current_dir()?).map_err(|e| Exit::usage(e.to_string()))?)
}

/// The workspace and its config: `--config`, else the default places.
pub fn load_config(flag: Option<&Utf8Path>) -> anyhow::Result<(Workspace, Config)> {
    config_in(workspace()?, flag)
}

/// Like [`load_config`], for commands that need no Cargo workspace
/// (`clean-context`, `certs`): outside one, a named config still loads, the
/// current folder standing in for the workspace.
pub fn load_config_anywhere(flag: Option<&Utf8Path>) -> anyhow::Result<Config> {
    let here = current_dir()?;
    let ws = match Workspace::discover(&here) {
        Ok(ws) => ws,
        Err(WorkspaceError::NotAWorkspace { .. }) if flag.is_some() => Workspace::standalone(here),
        Err(e) => return Err(Exit::usage(e.to_string()).into()),
    };
    Ok(config_in(ws, flag)?.1)
}

fn config_in(ws: Workspace, flag: Option<&Utf8Path>) -> anyhow::Result<(Workspace, Config)> {
    let path = ws
        .config_path(flag)
        .map_err(|e| Exit::usage(e.to_string()))?;
    let config = Config::load(&path, &ws)?;
    Ok((ws, config))
}

/// Whether this runs under CI (the `CI` variable most CI systems set).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[test]
    fn help_names_the_command_the_user_typed() {
        let name = |a: &str| bin_name(Some(std::ffi::OsStr::new(a)));
        assert_eq!(name("/home/u/.cargo/bin/cargo-e2e"), "cargo e2e");
        assert_eq!(name("target/debug/xtask"), "cargo xtask");
        assert_eq!(name("runner"), "runner");
    }

    #[test]
    fn without_a_subcommand_it_runs_e2e_with_its_flags() {
        let cli =
            Cli::try_parse_from(["cargo-e2e", "--teardown", "keep", "-E", "test(a)"]).unwrap();
        let Command::E2e(f) = cli.into_command() else {
            panic!("e2e expected")
        };
        assert_eq!(f.teardown, Some(compose::Policy::Keep));
        assert_eq!(f.filtersets, ["test(a)"]);
        let cli = Cli::try_parse_from(["cargo-e2e", "doctor", "--config", "x.yaml"]).unwrap();
        let Command::Doctor(d) = cli.into_command() else {
            panic!("doctor expected")
        };
        assert_eq!(d.config.config.as_deref(), Some(Utf8Path::new("x.yaml")));
    }
}
