//! `cargo e2e`, the runner: preflight, clean, certs, build, up, test (the
//! phases are in `phases.rs`), then teardown. Teardown runs whatever happened before it: an error, a panic or an
//! interruption (the first Ctrl-C stops the running child and lands here).

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use camino::Utf8PathBuf;
use compose::{Policy, Project};

use crate::Config;
pub use crate::config::unix_time;
use crate::fingerprint::Store;
use crate::lock::ProjectLock;
use crate::phases::{
    Prebuild, Staging, build_phase, certs_phase, clean_phase, preflight, test_phase, up_phase,
};
use crate::report::{Phase, PhaseReport, RunReport, Status, TeardownDone, Verdict};
use crate::workspace::Workspace;

/// Everything a run needs, decided by the caller.
#[derive(Debug, Clone)]
pub struct Options {
    pub config: Config,
    /// The user's workspace: cargo runs in its root and builds in its target folder.
    pub workspace: Workspace,
    pub project: String,
    pub teardown: Policy,
    pub keep_on_failure: bool,
    pub no_clean: bool,
    pub no_build: bool,
    /// Ignore the record of the last run: build and start as if all changed.
    pub rebuild: bool,
    /// When another run holds the project: fail at once instead of waiting.
    pub no_wait: bool,
    /// The executable to start as the reaper (`EXE __reaper`): the CLI's own.
    /// `None`: no reaper (a library caller that tears down itself).
    pub reaper: Option<Utf8PathBuf>,
    /// Publish every port on a host port the engine picks (`compose.ephemeral_ports`).
    pub ephemeral_ports: bool,
    /// Under CI: fixed host ports get a warning (runs cannot share an engine).
    pub ci: bool,
    /// `-E` from the command line; when empty, the config's `tests.filterset`.
    pub filtersets: Vec<String>,
    /// Passed through to nextest after `--`.
    pub nextest_args: Vec<String>,
    /// This run's folder: build log, failure bundle.
    pub run_dir: Utf8PathBuf,
}

/// Hears about phases as they run; the CLI draws spinners or prints lines.
pub trait Progress {
    fn start(&mut self, phase: Phase);
    /// A line worth showing while a phase runs (who is still awaited).
    fn note(&mut self, phase: Phase, line: &str);
    fn end(&mut self, report: &PhaseReport);
}

/// Why a phase failed; each kind becomes one verdict.
#[derive(Debug)]
pub(crate) enum Failure {
    BadInput(String),
    Stack(String),
    Tests(String),
    /// A build context over `context.budget`.
    Limit(String),
}

/// A phase's value and the note shown for it.
pub(crate) type PhaseResult<T> = Result<(T, String), Failure>;

pub(crate) fn stack(e: impl std::fmt::Display) -> Failure {
    Failure::Stack(e.to_string())
}

/// Runs the pipeline. Never panics out and never skips teardown once the
/// stack may exist.
pub fn run(opts: &Options, progress: &mut dyn Progress) -> RunReport {
    let started = Instant::now();
    let mut report = RunReport::new(&opts.project, opts.run_dir.clone());
    let mut phases = Phases {
        progress,
        report: &mut report,
        lock: None,
    };
    // Preflight: nothing exists yet, so a failure here has nothing to tear
    // down. It first takes the project's lock, held until the run ends.
    let preflight = phases.run(Phase::Preflight, |progress| {
        let lock = ProjectLock::acquire(
            &opts.project,
            opts.workspace.root.as_str(),
            !opts.no_wait,
            |waiting| progress.note(Phase::Preflight, waiting),
        )
        .map_err(Failure::Stack)?;
        // Neither needs what preflight checks: they start beside it, and a
        // failed preflight stops them (their drop).
        let background = Background::start(opts);
        let (project, note) = preflight(opts)?;
        Ok(((project, lock, background), note))
    });
    let (project, reaper, background) = match preflight {
        Ok((p, lock, background)) => {
            let reaper = arm_reaper(opts, &p, &lock);
            phases.lock = Some(lock);
            (p, reaper, background)
        }
        Err(verdict) => {
            report.verdict = verdict;
            report.seconds = started.elapsed().as_secs_f64();
            return report;
        }
    };
    let body = std::panic::catch_unwind(AssertUnwindSafe(|| {
        body(opts, &project, &mut phases, background)
    }));
    let verdict = verdict_of(body);
    let teardown_failure = teardown(opts, &project, &verdict, &mut phases);
    report.verdict = match (verdict, teardown_failure) {
        // A teardown that failed after a passing run fails the run.
        (Verdict::Passed, Some(e)) => Verdict::StackFailed(format!("teardown: {e}")),
        (v, _) => v,
    };
    report.seconds = started.elapsed().as_secs_f64();
    if let Some(r) = reaper {
        r.disarm();
    }
    report.disk = crate::disk::keep_budgets(&opts.config.disk, || workspace_projects(opts));
    if let Some(runs) = opts.run_dir.parent() {
        let r = &opts.config.runs;
        let max_age = Duration::from_secs(r.max_age_days * 24 * 3600);
        report.pruned_runs = prune_runs(runs, &opts.run_dir, r.keep, max_age);
    }
    report
}

/// How the phases ended, whatever they returned or however they panicked;
/// an interruption wins, whatever it made them return.
pub(crate) fn verdict_of(body: std::thread::Result<Result<(), Verdict>>) -> Verdict {
    if process::interrupt::is_requested() {
        return Verdict::Interrupted;
    }
    match body {
        Ok(Ok(())) => Verdict::Passed,
        Ok(Err(v)) => v,
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
            Verdict::StackFailed(format!("panic: {}", what.unwrap_or_default()))
        }
    }
}

/// The projects this workspace ran (those with a record in
/// `<target>/e2e/state/`), this run's included.
fn workspace_projects(opts: &Options) -> Vec<String> {
    let mut out = vec![opts.project.clone()];
    let dir = opts.workspace.target_dir.join("e2e/state");
    if let Ok(entries) = dir.read_dir_utf8() {
        for e in entries.filter_map(Result::ok) {
            if let Some(p) = e.file_name().strip_suffix(".json")
                && !out.iter().any(|o| o == p)
            {
                out.push(p.to_owned());
            }
        }
    }
    out
}

/// The reaper of this run, when there is a policy for it to apply: with
/// `keep`, or `--keep-on-failure` (a run that dies has failed), nothing goes.
pub(crate) fn arm_reaper(
    opts: &Options,
    project: &Project,
    lock: &ProjectLock,
) -> Option<crate::reaper::Reaper> {
    let exe = opts.reaper.as_ref()?;
    if opts.teardown == Policy::Keep || opts.keep_on_failure {
        return None;
    }
    let order = crate::reaper::Order {
        run_pid: std::process::id(),
        policy: opts.teardown,
        grace_s: opts.config.teardown.grace_s,
        spec: project.spec.clone(),
    };
    // Without a reaper the run is as safe as before: teardown still runs.
    crate::reaper::Reaper::arm(exe, lock, &order, &opts.run_dir.join("reaper.log")).ok()
}

/// Removes run folders beyond the `keep` newest and those older than
/// `max_age`, never `current`; returns how many went. Folders are named
/// `<unix time>-<pid>-<project>`: anything else there is left alone.
pub fn prune_runs(
    runs: &camino::Utf8Path,
    current: &camino::Utf8Path,
    keep: usize,
    max_age: Duration,
) -> usize {
    let Ok(entries) = runs.read_dir_utf8() else {
        return 0;
    };
    let now = unix_time();
    let mut dirs: Vec<(u64, Utf8PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let started: u64 = e.file_name().split('-').next()?.parse().ok()?;
            Some((started, e.into_path()))
        })
        .filter(|(_, p)| p != current)
        .collect();
    // Newest first; the current run counts as one of the kept.
    dirs.sort_by_key(|d| std::cmp::Reverse(d.0));
    let mut removed = 0;
    for (i, (started, dir)) in dirs.iter().enumerate() {
        let too_many = i + 1 >= keep;
        let too_old = now.saturating_sub(*started) > max_age.as_secs();
        if (too_many || too_old) && std::fs::remove_dir_all(dir).is_ok() {
            removed += 1;
        }
    }
    removed
}

pub(crate) struct Phases<'a> {
    pub progress: &'a mut dyn Progress,
    pub report: &'a mut RunReport,
    /// The project's lock, told each phase for a run that waits.
    pub lock: Option<ProjectLock>,
}

impl Phases<'_> {
    /// Runs one phase, timing and recording it; an interruption before it
    /// starts skips it.
    pub fn run<T>(
        &mut self,
        phase: Phase,
        f: impl FnOnce(&mut dyn Progress) -> PhaseResult<T>,
    ) -> Result<T, Verdict> {
        if process::interrupt::is_requested() {
            self.record(
                phase,
                Status::Interrupted,
                0.0,
                "not started: interrupted".into(),
            );
            return Err(Verdict::Interrupted);
        }
        self.progress.start(phase);
        if let Some(lock) = &mut self.lock {
            lock.doing(phase.name());
        }
        let start = Instant::now();
        let result = f(self.progress);
        let seconds = start.elapsed().as_secs_f64();
        let (status, note, out) = match result {
            Ok((value, note)) => (Status::Ok, note, Ok(value)),
            Err(_) if process::interrupt::is_requested() => (
                Status::Interrupted,
                "interrupted".into(),
                Err(Verdict::Interrupted),
            ),
            Err(Failure::BadInput(e)) => {
                (Status::Failed, first_line(&e), Err(Verdict::BadInput(e)))
            }
            Err(Failure::Limit(e)) => (Status::Failed, first_line(&e), Err(Verdict::OverBudget(e))),
            Err(Failure::Tests(e)) => (Status::Failed, e.clone(), Err(Verdict::TestsFailed(e))),
            Err(Failure::Stack(e)) => (
                Status::Failed,
                first_line(&e),
                Err(Verdict::StackFailed(format!("{}: {e}", phase.name()))),
            ),
        };
        self.record(phase, status, seconds, note);
        out
    }

    /// The test phase, its counts and JUnit report recorded whatever its verdict.
    pub fn test(
        &mut self,
        opts: &Options,
        project: &Project,
        prebuild: Prebuild,
        containers: Option<Vec<compose::Container>>,
    ) -> Result<(), Verdict> {
        // A failing phase hands back only its verdict: the counts travel aside.
        let mut counted = None;
        let outcome = self.run(Phase::Test, |_| {
            test_phase(opts, project, Some(prebuild), containers, &mut counted)
        });
        if let Some(o) = counted {
            (self.report.tests, self.report.junit) = (o.counts, o.junit);
        }
        outcome
    }

    fn skip(&mut self, phase: Phase, why: &str) {
        self.record(phase, Status::Skipped, 0.0, why.into());
    }

    fn record(&mut self, phase: Phase, status: Status, seconds: f64, note: String) {
        let r = PhaseReport {
            phase,
            status,
            seconds,
            note,
        };
        self.progress.end(&r);
        self.report.phases.push(r);
    }
}

/// What runs beside the phases from preflight on.
#[derive(Debug)]
pub(crate) struct Background {
    pub staging: Option<Staging>,
    pub prebuild: Prebuild,
}

impl Background {
    pub fn start(opts: &Options) -> Background {
        Background {
            staging: (!opts.no_build).then(|| Staging::start(opts)),
            prebuild: Prebuild::start(opts),
        }
    }
}

pub(crate) fn body(
    opts: &Options,
    project: &Project,
    phases: &mut Phases,
    background: Background,
) -> Result<(), Verdict> {
    // The test binaries build while everything else runs: they do not depend
    // on the stack, and staging builds in a target folder of its own, so the
    // two cargo builds do not wait for each other's lock.
    let Background { staging, prebuild } = background;
    if opts.no_clean {
        phases.skip(Phase::Clean, "--no-clean");
    } else {
        phases.report.cleaned = phases.run(Phase::Clean, |_| clean_phase(opts, project))?;
    }
    if opts.config.certs.is_none() {
        phases.skip(
            Phase::Certs,
            &format!("no certs section in {}", opts.config.path),
        );
    } else {
        phases.report.certs = Some(phases.run(Phase::Certs, |_| certs_phase(opts, project))?);
    }
    // What the last run built and started, to skip what did not change.
    let mut store = Store::open(&opts.workspace.target_dir, &opts.project);
    let image_ids = if opts.no_build {
        phases.skip(Phase::Build, "--no-build");
        None
    } else {
        let staging = staging.expect("staging starts unless --no-build");
        let built = phases.run(Phase::Build, |_| {
            build_phase(opts, project, &mut store, staging)
        })?;
        (phases.report.contexts, phases.report.images) = (built.contexts, built.images);
        Some(built.image_ids)
    };
    let up = phases.run(Phase::Up, |progress| {
        up_phase(opts, project, &mut store, image_ids, None, None, progress)
    })?;
    // The tests are told the containers as the wait last saw them.
    let containers = up.containers.clone();
    phases.report.containers = Some(up);
    phases.test(opts, project, prebuild, Some(containers))
}

/// The bundle (on failure), the policy, and a check that the engine holds what
/// the policy promises; a second pass mends what a racing interrupted `up` left.
/// Returns what went wrong, if anything.
fn teardown(
    opts: &Options,
    project: &Project,
    verdict: &Verdict,
    phases: &mut Phases,
) -> Option<String> {
    let failed = !matches!(verdict, Verdict::Passed | Verdict::Interrupted);
    if failed {
        let dir = opts.run_dir.join("bundle");
        phases.report.bundle = project.bundle(&dir).ok();
    }
    let policy = if failed && opts.keep_on_failure {
        Policy::Keep
    } else {
        opts.teardown
    };
    let grace = Duration::from_secs(opts.config.teardown.grace_s);
    phases.progress.start(Phase::Teardown);
    if let Some(lock) = &mut phases.lock {
        lock.doing(Phase::Teardown.name());
    }
    let start = Instant::now();
    let (stopped, leftovers, failure) = apply_policy(project, policy, grace);
    let killed = &stopped.killed;
    let mut note = match (&failure, policy) {
        (Some(f), _) => format!("FAILED: {f}"),
        (None, Policy::Keep) if failed => keep_hint(opts, project),
        (None, Policy::Keep) => format!(
            "left running; remove it with `docker compose -p {} down --volumes`",
            opts.project
        ),
        (None, Policy::Stop) => "containers stopped; the next run starts them again".into(),
        (None, Policy::Down) => "containers and networks removed; volumes kept".into(),
        (None, Policy::Purge) => {
            "containers, networks, volumes and the project's images removed".into()
        }
    };
    if failure.is_none() && !killed.is_empty() {
        // Their PID 1 would not have acted on the signal: the grace would
        // have been spent waiting for nothing.
        note.push_str(&format!(
            "; killed at once (PID 1 ignores its stop signal): {}",
            killed.join(", ")
        ));
    }
    if failure.is_none() && !stopped.stop_s.is_empty() {
        note.push_str(&format!("; stopped in: {}", slowest_first(&stopped.stop_s)));
    }
    let status = if failure.is_some() {
        Status::Failed
    } else {
        Status::Ok
    };
    phases.record(
        Phase::Teardown,
        status,
        start.elapsed().as_secs_f64(),
        format!("{policy}: {note}"),
    );
    phases.report.teardown = Some(TeardownDone {
        policy,
        stop_s: stopped.stop_s,
        leftovers,
        note,
    });
    failure
}

/// Applies `policy` and checks that the engine holds what it promises; a
/// second pass mends what a racing interrupted `up` left. What was stopped,
/// what the engine holds after, and what went wrong, if anything.
pub(crate) fn apply_policy(
    project: &Project,
    policy: Policy,
    grace: Duration,
) -> (compose::Stopped, Option<compose::Leftovers>, Option<String>) {
    let mut result = project.teardown(policy, grace);
    // `keep` promises everything stays: nothing to check, and no listing to
    // wait for after the tests.
    let mut leftovers = (policy != Policy::Keep)
        .then(|| project.leftovers().ok())
        .flatten();
    if result.is_ok()
        && let Some(left) = &leftovers
        && left.broken_promise(policy).is_some()
    {
        result = project.teardown(policy, grace);
        leftovers = project.leftovers().ok();
    }
    let failure = match (
        &result,
        leftovers.as_ref().and_then(|l| l.broken_promise(policy)),
    ) {
        (Err(e), _) => Some(e.to_string()),
        (Ok(_), broken) => broken,
    };
    (result.unwrap_or_default(), leftovers, failure)
}

/// `db 1.2 s, api 0.1 s`: who cost what, the slowest first.
pub(crate) fn slowest_first(seconds: &std::collections::BTreeMap<String, f64>) -> String {
    let mut by_time: Vec<(&String, &f64)> = seconds.iter().collect();
    by_time.sort_by(|a, b| b.1.total_cmp(a.1));
    by_time
        .iter()
        .map(|(s, t)| format!("{s} {t:.1} s"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How to reach a stack kept after a failure, and how to remove it.
fn keep_hint(opts: &Options, project: &Project) -> String {
    let mut addresses = Vec::new();
    let host = compose::Engine::publish_host();
    for (name, s) in &project.stack.services {
        for p in &s.ports {
            if let Some(published) = &p.published {
                addresses.push(format!("{name} at {host}:{published}"));
            }
        }
    }
    let p = &opts.project;
    format!(
        "kept for debugging: {}; logs: `docker compose -p {p} logs`; remove: `docker compose -p {p} down --volumes --remove-orphans`",
        if addresses.is_empty() {
            "no published ports".into()
        } else {
            addresses.join(", ")
        }
    )
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_folders_beyond_the_count_or_the_age_go_and_nothing_else() {
        let tmp = tempfile::tempdir().unwrap();
        let runs = camino::Utf8Path::from_path(tmp.path()).unwrap();
        let now = unix_time();
        let name = |ago: u64, pid: u32| runs.join(format!("{}-{pid}-e2e-p", now - ago));
        for (ago, pid) in [(10, 1), (20, 2), (30, 3), (40, 4), (90 * 24 * 3600, 5)] {
            std::fs::create_dir_all(name(ago, pid)).unwrap();
        }
        std::fs::create_dir_all(runs.join("not-a-run")).unwrap();
        std::fs::write(runs.join("12-a-file"), "").unwrap();
        let current = name(0, 9);
        std::fs::create_dir_all(&current).unwrap();
        let week = Duration::from_secs(7 * 24 * 3600);
        // Keep 3: the current run and the two newest; the rest go.
        assert_eq!(prune_runs(runs, &current, 3, week), 3);
        let mut left: Vec<String> = runs
            .read_dir_utf8()
            .unwrap()
            .map(|e| e.unwrap().file_name().to_owned())
            .collect();
        left.sort();
        let mut want = vec![
            current.file_name().unwrap().to_owned(),
            name(10, 1).file_name().unwrap().to_owned(),
            name(20, 2).file_name().unwrap().to_owned(),
            "12-a-file".to_owned(),
            "not-a-run".to_owned(),
        ];
        want.sort();
        assert_eq!(left, want);
        // By age alone: a large count keeps all but the old one.
        std::fs::create_dir_all(name(90 * 24 * 3600, 5)).unwrap();
        assert_eq!(prune_runs(runs, &current, 100, week), 1);
    }
}
