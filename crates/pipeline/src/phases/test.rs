//! The test phase: the test binaries (built beside the stack from preflight
//! on, or an earlier watch cycle's) run by nextest with the stack's
//! addresses in their environment.

use camino::Utf8PathBuf;
use compose::{Container, Engine, Project};

use super::{Beside, Options, PhaseResult, Progress, Work};
use crate::error::{Error, Result};
use crate::fingerprint::{self, Store};
use crate::report::Phase;
use crate::sources::Snapshot;

/// What the tests see: the project, the CA (with certificates), and
/// `tests.env` with each `{service:port}` made the address where the engine
/// publishes it, as the engine reports it (ports it picked included).
fn test_env(opts: &Options, containers: &[Container]) -> Result<Vec<(String, String)>, String> {
    let c = &opts.config;
    let mut env = vec![("E2E_PROJECT".to_owned(), opts.project.clone())];
    if let Some(dir) = c.certs_dir() {
        env.push(("E2E_CA_CERT".to_owned(), dir.join("ca.crt").to_string()));
    }
    let host = opts.config.project_spec(None).publish_host();
    let published = |service: &str, port: u16, protocol: &str| {
        containers
            .iter()
            .filter(|k| k.service == service)
            .find_map(|k| k.published_as(port, protocol, &host))
    };
    for (key, value) in &c.tests.env {
        env.push((key.clone(), expand(value, published)?));
    }
    Ok(env)
}

/// Runs nextest; `counted` receives its outcome (counts, JUnit path) whether
/// the tests passed or not.
/// The nextest run of this config: the profile the tool supplies (for a
/// workspace whose nextest config lacks it; its own config still wins where
/// it says something), with its store (the JUnit report) in this run's
/// folder, so runs of several projects at once each count their own report.
pub(crate) fn invocation(
    opts: &Options,
    filtersets: Vec<String>,
    env: Vec<(String, String)>,
) -> test_runner::Result<test_runner::Invocation> {
    let c = &opts.config;
    let tool_config = opts.run_dir.join("nextest-tool.toml");
    test_runner::write_tool_config(
        &tool_config,
        &opts.run_dir,
        &c.tests.profile,
        &c.tests.packages,
    )?;
    Ok(test_runner::Invocation {
        profile: c.tests.profile.clone(),
        packages: c.tests.packages.clone(),
        filtersets,
        args: opts.nextest_args.clone(),
        env,
        tool_config: Some(tool_config),
        reuse: None,
        archive: None,
    })
}

fn cargo_metadata_file(opts: &Options) -> Utf8PathBuf {
    opts.run_dir.join("cargo-metadata.json")
}

/// Handed to nextest with the prebuilt binaries, so it need not run cargo
/// again; a file that could not be written is removed (no reuse then).
pub(crate) fn write_cargo_metadata(opts: &Options, json: &str) {
    let file = cargo_metadata_file(opts);
    let _ = std::fs::create_dir_all(&opts.run_dir);
    if std::fs::write(&file, json).is_err() {
        let _ = std::fs::remove_file(&file);
    }
}

/// The test binaries, built while images build and the stack starts (they
/// do not depend on it): the test phase then only runs them.
#[derive(Debug)]
pub(crate) struct Prebuild {
    work: Option<Beside<process::Result<process::GroupOutput>>>,
    command: String,
    /// Where the list of built binaries goes, for [`test_runner::Reuse`].
    binaries: Utf8PathBuf,
    /// Built by an earlier cycle or run (`binaries` is ready), and what the
    /// test phase says of it.
    reused: Option<&'static str>,
    /// The key of the sources the build started from, to record with its
    /// outputs (see [`crate::sources`]).
    sources: Option<String>,
}

/// What the test phase says of binaries a watch cycle before built.
const CYCLE_BUILT: &str =
    "; test binaries as an earlier cycle built them (none of their sources changed)";
/// What it says of binaries the last run's build left.
const RUN_BUILT: &str =
    "; test binaries as the last build left them (none of their sources changed: cargo not asked)";

impl Prebuild {
    pub(crate) fn start(opts: &Options) -> Prebuild {
        let mut prebuild = Prebuild {
            work: None,
            command: String::new(),
            binaries: opts.run_dir.join("binaries-metadata.json"),
            reused: None,
            sources: None,
        };
        // The test phase writes the same file and reports the error.
        let Ok(inv) = invocation(opts, Vec::new(), Vec::new()) else {
            return prebuild;
        };
        let cmd = inv.list_command();
        prebuild.command = cmd.to_string();
        let root = opts.workspace.root.clone();
        let metadata = cargo_metadata_file(opts);
        let workspace = opts.workspace.clone();
        prebuild.work = Some(Beside::spawn(move |board| {
            // Preflight wrote it only when it needed the package graph; asked
            // for beside the build, it costs no wall time.
            let meta = (!metadata.exists())
                .then(|| std::thread::spawn(move || workspace.write_full_metadata(&metadata)));
            let built = cmd
                .with_cargo_progress()
                .start_group_streaming(&root, true, process::Stream::Stderr, move |line| {
                    if let Some(p) = process::cargo_progress(line) {
                        board.post(Work::cargo("test binaries", &p));
                    }
                })
                .and_then(process::Group::wait);
            if let Some(m) = meta {
                let _ = m.join();
            }
            built
        }));
        prebuild
    }

    /// A shard's: no build at all (its tests run from the build job's archive).
    pub(crate) fn none(opts: &Options) -> Prebuild {
        Prebuild {
            work: None,
            command: String::new(),
            binaries: opts.run_dir.join("binaries-metadata.json"),
            reused: None,
            sources: None,
        }
    }

    /// A run's test binaries: the last build's, when neither their sources
    /// nor the binaries changed since (cargo is not even asked), else a
    /// build started now.
    pub(crate) fn for_run(opts: &Options, store: &Store, now: Option<&Snapshot>) -> Prebuild {
        let sources = now.filter(|_| !opts.rebuild).map(|s| test_key(opts, s));
        if let (Some(now), Some(last)) = (&sources, &store.state.tests)
            && &last.sources == now
            && let Some(dir) = &last.dir
            && last.outputs == test_outputs(dir)
            && let Some(p) = Prebuild::copied(opts, dir, RUN_BUILT)
        {
            return Prebuild { sources, ..p };
        }
        Prebuild {
            sources,
            ..Prebuild::start(opts)
        }
    }

    /// The test binaries an earlier cycle built, none of whose sources
    /// changed since: its lists (`binaries-metadata.json`,
    /// `cargo-metadata.json` in `from`) are copied to this run's folder,
    /// and the test phase runs them without cargo. Anything missing: the
    /// tests build as usual.
    pub(crate) fn reuse(opts: &Options, from: &camino::Utf8Path) -> Prebuild {
        Prebuild::copied(opts, from, CYCLE_BUILT).unwrap_or_else(|| Prebuild::start(opts))
    }

    fn copied(opts: &Options, from: &camino::Utf8Path, note: &'static str) -> Option<Prebuild> {
        let binaries = opts.run_dir.join("binaries-metadata.json");
        let copied = std::fs::create_dir_all(&opts.run_dir).is_ok()
            && std::fs::copy(from.join("binaries-metadata.json"), &binaries).is_ok()
            && std::fs::copy(from.join("cargo-metadata.json"), cargo_metadata_file(opts)).is_ok();
        copied.then_some(Prebuild {
            work: None,
            command: String::new(),
            binaries,
            reused: Some(note),
            sources: None,
        })
    }

    /// Records, for the next run, the key the build started from and the
    /// lists and binaries it left in this run's folder. After a build, not
    /// when a source changed while it ran (cargo may have read either
    /// version). Binaries reused from the record only move it to this run's
    /// folder (the older one may be pruned): nothing was built meanwhile.
    fn record(&self, opts: &Options) {
        let Some(before) = &self.sources else { return };
        let mut store = Store::open(&opts.workspace.target_dir, &opts.project);
        if self.reused.is_none() {
            let staged = super::build::stage_outputs(opts);
            let after = Snapshot::take(&opts.workspace, &staged, &store.state.outside);
            // The next keys walk the path dependencies this build's metadata
            // names (a new list turns them: cargo runs once more, then they hold).
            let metadata = cargo_metadata_file(opts);
            store.state.outside = crate::sources::outside_packages(&opts.workspace, &metadata);
            if after.map(|s| test_key(opts, &s)).as_ref() != Some(before) {
                store.state.tests = None;
                let _ = store.save();
                return;
            }
        }
        store.state.tests = Some(fingerprint::CargoBuilt {
            sources: before.clone(),
            outputs: test_outputs(&opts.run_dir),
            dir: Some(opts.run_dir.clone()),
        });
        // Losing the record costs only the next run's skip.
        let _ = store.save();
    }

    /// Waits for the build; a failed one fails the test phase with its
    /// output. The list of the binaries built, when it could be written.
    pub(crate) fn finish(
        mut self,
        opts: &Options,
        progress: &mut dyn Progress,
    ) -> Result<Option<Utf8PathBuf>, Error> {
        let Some(work) = self.work.take() else {
            if self.reused.is_some() {
                self.record(opts);
            }
            return Ok(self.reused.map(|_| self.binaries));
        };
        let out = work.join(Phase::Test, progress)?;
        if out.success() {
            let written = std::fs::write(&self.binaries, &out.stdout).is_ok();
            if written {
                self.record(opts);
            }
            return Ok(written.then_some(self.binaries));
        }
        let text = format!("{}{}", out.stdout, out.stderr);
        Err(Error::Stack(format!(
            "the test binaries did not build (`{}`):\n{}",
            self.command,
            crate::stage::without_progress(&text, 30)
        )))
    }

    /// What its build posted last, if it did since asked.
    pub(crate) fn news(&self) -> Option<Work> {
        self.work.as_ref()?.board.take()
    }
}

pub(crate) fn test_phase(
    opts: &Options,
    project: &Project,
    prebuild: Option<Prebuild>,
    containers: Option<Vec<Container>>,
    counted: &mut Option<test_runner::Outcome>,
    progress: &mut dyn Progress,
) -> PhaseResult<()> {
    let reused = prebuild.as_ref().and_then(|p| p.reused);
    let binaries = match prebuild {
        Some(p) => p.finish(opts, progress)?,
        None => None,
    };
    let c = &opts.config;
    let containers = match containers {
        Some(c) => c,
        None => project.ps()?,
    };
    let env = test_env(opts, &containers).map_err(Error::BadInput)?;
    let filtersets = if opts.filtersets.is_empty() {
        c.tests.filterset.iter().cloned().collect()
    } else {
        opts.filtersets.clone()
    };
    let mut invocation = invocation(opts, filtersets, env)?;
    // A shard: the build job's archive, this checkout's paths, its slice.
    if let Some(crate::shard::Shard::Run { from, k, n }) = &opts.shard {
        invocation.archive = Some(test_runner::Archive {
            file: from.join(crate::shard::TESTS),
            remap: opts.workspace.root.clone(),
        });
        invocation
            .args
            .extend(["--partition".to_owned(), format!("slice:{k}/{n}")]);
    }
    // The binaries the prebuild made are run as they are, without a second
    // cargo build; pass-through arguments other than run options may be
    // cargo's own build options, which nextest refuses beside reused
    // binaries, so those keep the plain run.
    let metadata = cargo_metadata_file(opts);
    if let Some(binaries) = binaries
        && test_runner::reusable_with(&opts.nextest_args)
        && metadata.exists()
    {
        invocation.reuse = Some(test_runner::Reuse {
            binaries_metadata: binaries,
            cargo_metadata: metadata,
        });
    }
    let outcome = invocation.run(&opts.workspace.root, &opts.run_dir)?;
    // Tests that failed because the engine went away are not the tests' fault.
    if outcome.verdict != test_runner::Verdict::Passed
        && let Err(compose::Error::NoDaemon { detail }) = Engine::server()
    {
        return Err(Error::Stack(format!(
            "the Docker engine went away while the tests ran ({detail}); check it with `docker info`, \
             then run again: the next run takes over what this one left"
        )));
    }
    let mut counts = outcome
        .counts
        .map_or_else(|| "no JUnit report to count from".into(), |c| c.to_string());
    if let Some(note) = reused
        && invocation.reuse.is_some()
    {
        counts.push_str(note);
    }
    let verdict = outcome.verdict.clone();
    *counted = Some(outcome);
    match verdict {
        test_runner::Verdict::Passed => Ok(((), counts)),
        test_runner::Verdict::Failed => Err(Error::Tests(counts)),
        test_runner::Verdict::NoTests => Err(Error::Tests(format!(
            "no tests ran: the filterset and the `{}` profile's default-filter selected none in {}",
            c.tests.profile,
            if c.tests.packages.is_empty() {
                "the workspace".to_owned()
            } else {
                format!("tests.packages ({})", c.tests.packages.join(", "))
            }
        ))),
        test_runner::Verdict::NextestError(code) => Err(Error::Stack(format!(
            "`{}` failed with exit code {}",
            invocation.command(),
            code.map_or("none (a signal)".into(), |c| c.to_string())
        ))),
    }
}

/// The key of what the test binaries build from: their profile and
/// packages (what the build command says that a run can change) and the
/// workspace's sources.
fn test_key(opts: &Options, sources: &Snapshot) -> String {
    let tests = &opts.config.tests;
    sources.key(&format!("tests {} {:?}", tests.profile, tests.packages))
}

/// The key of a test build's outputs in `dir`: its two lists and every
/// binary the first names (test binaries and the binaries they run).
fn test_outputs(dir: &camino::Utf8Path) -> String {
    let lists = [
        dir.join("binaries-metadata.json"),
        dir.join("cargo-metadata.json"),
    ];
    let mut paths = lists.to_vec();
    if let Ok(json) = std::fs::read(&lists[0])
        && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&json)
    {
        paths.extend(binary_paths(&v));
    }
    crate::sources::outputs(&paths)
}

/// Every `binary-path` and non-test binary `path` in nextest's binary list.
fn binary_paths(v: &serde_json::Value) -> Vec<Utf8PathBuf> {
    let base = v["rust-build-meta"]["target-directory"]
        .as_str()
        .map(Utf8PathBuf::from)
        .unwrap_or_default();
    let tests = v["rust-binaries"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .filter_map(|b| b["binary-path"].as_str());
    let others = v["rust-build-meta"]["non-test-binaries"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .filter_map(|list| list.as_array())
        .flatten()
        .filter_map(|b| b["path"].as_str());
    tests.chain(others).map(|p| base.join(p)).collect()
}

/// Each `{service:port}` in `value` becomes what `published` says (the
/// `HOST:PORT` where the engine publishes it).
/// `{service:port}` (TCP) and `{service:port/udp}` in `value`, each the
/// address where that port is published.
pub fn expand(
    value: &str,
    published: impl Fn(&str, u16, &str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(open) = rest.find('{') {
        let close = rest[open..]
            .find('}')
            .ok_or(format!("tests.env: unclosed `{{` in `{value}`"))?
            + open;
        let (service, port) = rest[open + 1..close]
            .split_once(':')
            .ok_or(format!("tests.env: `{value}`: write {{service:port}}"))?;
        let (port, protocol) = port.split_once('/').unwrap_or((port, "tcp"));
        if !matches!(protocol, "tcp" | "udp") {
            return Err(format!(
                "tests.env: `{value}`: `{protocol}` is not a protocol: write {{service:port}} or {{service:port/udp}}"
            ));
        }
        let port: u16 = port
            .parse()
            .map_err(|_| format!("tests.env: `{value}`: `{port}` is not a port number"))?;
        let shown = if protocol == "tcp" {
            port.to_string()
        } else {
            format!("{port}/{protocol}")
        };
        let address = published(service, port, protocol).ok_or(format!(
            "tests.env `{value}`: service {service} publishes no port {shown}"
        ))?;
        out.push_str(&rest[..open]);
        out.push_str(&address);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_ports_become_the_published_addresses() {
        let published = |service: &str, port: u16, protocol: &str| match (service, port, protocol) {
            ("proxy", 80, "tcp") => Some("127.0.0.1:49153".to_owned()),
            ("dns", 53, "udp") => Some("127.0.0.1:49200".to_owned()),
            _ => None,
        };
        let table = [
            (
                "http://{proxy:80}/items",
                Ok("http://127.0.0.1:49153/items"),
            ),
            (
                "{proxy:80},{proxy:80}",
                Ok("127.0.0.1:49153,127.0.0.1:49153"),
            ),
            ("plain", Ok("plain")),
            ("{dns:53/udp}", Ok("127.0.0.1:49200")),
            ("{proxy:80/tcp}", Ok("127.0.0.1:49153")),
            (
                "{dns:53}",
                Err("tests.env `{dns:53}`: service dns publishes no port 53"),
            ),
            (
                "{proxy:80/udp}",
                Err("tests.env `{proxy:80/udp}`: service proxy publishes no port 80/udp"),
            ),
            (
                "{dns:53/sctp}",
                Err(
                    "tests.env: `{dns:53/sctp}`: `sctp` is not a protocol: write {service:port} or {service:port/udp}",
                ),
            ),
            (
                "{proxy:81}",
                Err("tests.env `{proxy:81}`: service proxy publishes no port 81"),
            ),
            (
                "{proxy:http}",
                Err("tests.env: `{proxy:http}`: `http` is not a port number"),
            ),
            ("{proxy}", Err("tests.env: `{proxy}`: write {service:port}")),
            ("{proxy:80", Err("tests.env: unclosed `{` in `{proxy:80`")),
        ];
        for (value, want) in table {
            let got = expand(value, published);
            assert_eq!(
                got.as_deref(),
                want.map_err(str::to_owned).as_deref(),
                "{value}"
            );
        }
    }
}
