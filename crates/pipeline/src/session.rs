//! A watch session (`e2e --watch`): the stack stays up between cycles, under
//! one project lock and one reaper for the whole session. The reaper carries
//! the policy the session ends with, so a watch killed with SIGKILL still
//! leaves what it promised. The first cycle is a whole run without its
//! teardown; after it a cycle does only what its changes need:
//! - the config, a compose file or a Dockerfile: a whole run again;
//! - else the build phase when a build's inputs changed (staged binaries,
//!   then the fingerprints pick the images to build), `up --no-deps` of only
//!   the services whose image changed (the others keep running, as with
//!   `docker compose watch`), and the tests, whose binaries build beside it
//!   all. No preflight, clean or certs: the session did them.

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use camino::Utf8PathBuf;
use compose::{Container, Project};

use crate::e2e::{
    Background, Options, Phases, Progress, apply_policy, arm_reaper, body, verdict_of,
};
use crate::fingerprint::Store;
use crate::lock::ProjectLock;
pub use crate::phases::Asked;
use crate::phases::{Prebuild, Staging, UpRequest, build_phase, preflight, sync_phase, up_phase};
use crate::reaper::Reaper;
use crate::report::{Failure, Phase, RunReport, Status, Verdict};
use crate::watch::Live;

/// What a cycle has to do, from what changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Work {
    /// A whole run: the config, a compose file or a Dockerfile changed.
    pub whole: bool,
    /// A file a build context sends changed: the build phase runs.
    pub build: bool,
    /// Only these services' builds are asked (`None`: any whose inputs changed).
    pub build_only: Option<Asked>,
    /// A staged binary's sources changed: cargo builds them again, then
    /// the build phase runs.
    pub stage: bool,
    /// The test binaries' sources changed: cargo builds them again.
    pub tests: bool,
    /// What reaches running containers without an image (`develop.watch`,
    /// bind mounts): applied after `up`, then those services judged again.
    pub live: Live,
    /// What each staged binary does to running containers if this cycle's
    /// staging changes its bytes (a develop rule that syncs it).
    pub staged_live: Vec<(Utf8PathBuf, Live)>,
}

/// How many cycle folders a session keeps (besides the one its project's
/// override files are in).
const KEPT_CYCLES: usize = 10;

#[derive(Debug)]
pub struct Session {
    opts: Options,
    lock: Option<ProjectLock>,
    /// The stack as the last preflight that passed loaded it: what the
    /// session tears down, and what lean cycles work on.
    project: Option<Project>,
    /// A whole run is due: none passed preflight yet, or the config changed.
    whole_due: bool,
    /// Every service was started and judged ready by the last `up`; if not,
    /// the next cycle starts them all, not only what it rebuilt.
    stack_ok: bool,
    reaper: Option<Reaper>,
    /// The containers as the last cycle left them: the tests' addresses.
    containers: Option<Vec<Container>>,
    /// The filterset of the tests that failed last (`--only-failed`).
    failed: Option<String>,
    cycles: usize,
    /// The cycle folder the project's override files were written to.
    spec_dir: Option<Utf8PathBuf>,
    /// The folder of the last cycle whose test binaries were built (their
    /// lists are there): a cycle that changed none of their sources runs them.
    tests_dir: Option<Utf8PathBuf>,
}

impl Session {
    /// Takes the project's lock for the whole session; `waiting` hears who
    /// holds it while this waits.
    pub fn open(opts: &Options, waiting: impl FnMut(&str)) -> crate::Result<Session> {
        let lock = ProjectLock::acquire(
            &opts.project,
            opts.workspace.root.as_str(),
            !opts.no_wait,
            waiting,
        )?;
        Ok(Session {
            opts: opts.clone(),
            lock: Some(lock),
            project: None,
            whole_due: true,
            stack_ok: false,
            reaper: None,
            containers: None,
            failed: None,
            cycles: 0,
            spec_dir: None,
            tests_dir: None,
        })
    }

    /// Runs one cycle (the first, and any after a config change, whole) and
    /// reports it; never tears down. With `only_failed`, the tests that
    /// failed in the last cycle that ran tests are the only ones run, as
    /// long as some did.
    pub fn cycle(
        &mut self,
        work: Work,
        only_failed: bool,
        progress: &mut dyn Progress,
    ) -> RunReport {
        let started = Instant::now();
        let mut opts = self.opts.clone();
        opts.run_dir = self.opts.run_dir.join(format!("{CYCLE}{}", self.cycles));
        self.cycles += 1;
        let narrowed = match (&self.failed, only_failed) {
            (Some(f), true) => {
                opts.filtersets = vec![f.clone()];
                true
            }
            _ => false,
        };
        let mut report = RunReport::new(&opts.project, opts.run_dir.clone());
        // Due until a preflight passed, which loads the project.
        let whole = work.whole || self.whole_due;
        let mut phases = Phases {
            progress,
            report: &mut report,
            lock: self.lock.take(),
        };
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            if whole {
                self.whole(&opts, &mut phases)
            } else {
                self.lean(&opts, work, &mut phases)
            }
        }));
        self.lock = phases.lock.take();
        report.verdict = verdict_of(outcome);
        report.seconds = started.elapsed().as_secs_f64();
        crate::e2e::write_trace(&mut report);
        if report.phases.iter().any(|p| p.phase == Phase::Test) {
            self.remember_failures(&report, narrowed);
        }
        // The test binaries' lists, for the cycles that change none of their
        // sources. A cycle whose test build failed or was stopped has none,
        // and one whose test phase failed other than by failing tests (a
        // `cargo clean` took the binaries) drops them: the next builds them.
        let test_broke = !matches!(report.verdict, Verdict::Failed(Failure::Tests(_)))
            && report
                .phases
                .iter()
                .any(|p| p.phase == Phase::Test && p.status == Status::Failed);
        self.tests_dir = (!test_broke && opts.run_dir.join("binaries-metadata.json").exists())
            .then(|| opts.run_dir.clone());
        // Each cycle's report beside its logs; losing it loses nothing else.
        if let Ok(json) = serde_json::to_string_pretty(&report) {
            let _ = std::fs::create_dir_all(&opts.run_dir);
            let _ = std::fs::write(
                opts.run_dir.join("report.json"),
                crate::secrets::redact(&json),
            );
        }
        self.prune_cycles();
        report
    }

    /// Preflight (the stack and config loaded anew), then the run's phases.
    fn whole(&mut self, opts: &Options, phases: &mut Phases) -> Result<(), Verdict> {
        self.stack_ok = false;
        let (project, background) = phases.run(Phase::Preflight, |_| {
            let background = Background::start(opts);
            let (project, note) = preflight(opts)?;
            Ok(((project, background), note))
        })?;
        self.whole_due = false;
        self.spec_dir = Some(opts.run_dir.clone());
        // The reaper's order names the stack's files: a new stack, a new order.
        if let Some(r) = self.reaper.take() {
            r.disarm();
        }
        if let Some(lock) = &phases.lock {
            self.reaper = arm_reaper(opts, &project, lock);
        }
        let project = self.project.insert(project);
        let outcome = body(opts, project, phases, background);
        let up = phases.report.containers.as_ref();
        self.stack_ok = phases
            .report
            .phases
            .iter()
            .any(|p| p.phase == Phase::Up && p.status == Status::Ok);
        self.containers = up.map(|u| u.containers.clone());
        outcome
    }

    /// The build phase if a build's inputs changed, `up` of what it changed
    /// (of everything after a failed `up`), and the tests.
    fn lean(&mut self, opts: &Options, work: Work, phases: &mut Phases) -> Result<(), Verdict> {
        let project = self
            .project
            .as_ref()
            .expect("a lean cycle follows a whole one");
        let prebuild = match &self.tests_dir {
            Some(dir) if !work.tests => Prebuild::reuse(opts, dir),
            _ => Prebuild::start(opts),
        };
        let mut store = Store::open(&opts.workspace.target_dir, &opts.project);
        let mut changed = Vec::new();
        let mut image_ids = None;
        let mut live_work = work.live.clone();
        if (work.build || work.stage) && !opts.no_build {
            let staging = if work.stage {
                Staging::start(opts)
            } else {
                Staging::skip(opts)
            };
            let built = phases.run(Phase::Build, |progress| {
                build_phase(
                    opts,
                    project,
                    &mut store,
                    staging,
                    work.build_only.as_ref(),
                    progress,
                )
            })?;
            (phases.report.contexts, phases.report.images) = (built.contexts, built.images);
            changed = built.changed;
            image_ids = Some(built.image_ids);
            for (output, live) in &work.staged_live {
                if built.staged.contains(output) {
                    live_work.merge(live.clone());
                }
            }
        }
        if !self.stack_ok || !changed.is_empty() {
            let only = self.stack_ok.then_some(changed);
            // After a good `up`, the session alone changed the containers.
            let known = if self.stack_ok {
                self.containers.clone()
            } else {
                None
            };
            self.stack_ok = false;
            let up = phases.run(Phase::Up, |progress| {
                let request = UpRequest {
                    image_ids,
                    only,
                    known,
                    beside: &|| prebuild.news(),
                };
                up_phase(opts, project, &mut store, request, progress)
            })?;
            self.stack_ok = true;
            self.containers = Some(up.containers.clone());
            phases.report.containers = Some(up);
        }
        if !live_work.is_empty()
            && let Some(containers) = self.containers.clone()
        {
            // A failed wait leaves the stack to be started whole next time.
            self.stack_ok = false;
            let synced = phases.run(Phase::Sync, |progress| {
                sync_phase(opts, project, &live_work, &containers, progress)
            })?;
            self.stack_ok = true;
            self.containers = Some(synced.containers);
        }
        phases.test(opts, project, prebuild, self.containers.clone())
    }

    /// After a cycle whose test phase ran: the failed tests, for
    /// `--only-failed`. A narrowed run that passed clears them (the next runs
    /// all); one that failed keeps what still fails; an interrupted one
    /// keeps them. Anything else (nextest refused the filterset: a failed
    /// test was renamed) clears them too, so the loop cannot stick.
    fn remember_failures(&mut self, report: &RunReport, narrowed: bool) {
        self.failed = match (&report.verdict, &report.junit) {
            (Verdict::Failed(Failure::Tests(_)), Some(junit)) => {
                test_runner::failed_filterset(junit).ok().flatten()
            }
            (Verdict::Interrupted, _) if narrowed => self.failed.take(),
            _ => None,
        };
    }

    /// Cycle folders beyond the newest few go, never the one the project's
    /// override files are in.
    fn prune_cycles(&self) {
        let cycles = cycle_dirs(&self.opts.run_dir)
            .into_iter()
            .filter(|p| Some(p) != self.spec_dir.as_ref());
        for dir in cycles.skip(KEPT_CYCLES) {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    /// The config file changed and loads: the next cycle is a whole run
    /// with it (the project name and policy stay the session's).
    pub fn use_config(&mut self, config: crate::Config) {
        self.opts.config = config;
        self.whole_due = true;
    }

    /// The options cycles run with (the config as last loaded).
    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// How many cycles ran.
    pub fn cycles(&self) -> usize {
        self.cycles
    }

    /// Whether the tests narrowed to the last failures are due next.
    pub fn narrowed(&self) -> bool {
        self.failed.is_some()
    }

    /// Ends the session: its teardown policy under its lock, checked as a
    /// run's teardown is; then the reaper stands down.
    pub fn end(mut self) -> crate::Result<()> {
        let policy = self.opts.teardown;
        if let Some(lock) = &mut self.lock {
            lock.doing(Phase::Teardown.name());
        }
        let project = match self.project.take() {
            Some(p) => p,
            None => Project::load(
                self.opts
                    .config
                    .project_spec(Some(self.opts.project.clone())),
            )?,
        };
        let grace = std::time::Duration::from_secs(self.opts.config.teardown.grace_s);
        let logs = self.opts.run_dir.join("logs");
        let failure = apply_policy(&project, policy, grace, Some(&logs)).2;
        if let Some(r) = self.reaper.take() {
            r.disarm();
        }
        failure.map_or(Ok(()), |f| Err(crate::Error::Stack(f)))
    }
}

/// A cycle's folder in its session's: `cycle-N`.
const CYCLE: &str = "cycle-";

/// A session's cycle folders, the newest first.
pub fn cycle_dirs(session_dir: &camino::Utf8Path) -> Vec<Utf8PathBuf> {
    let Ok(entries) = session_dir.read_dir_utf8() else {
        return Vec::new();
    };
    let mut cycles: Vec<(usize, Utf8PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let n = e.file_name().strip_prefix(CYCLE)?.parse().ok()?;
            Some((n, e.into_path()))
        })
        .collect();
    cycles.sort_by_key(|c| std::cmp::Reverse(c.0));
    cycles.into_iter().map(|(_, dir)| dir).collect()
}
