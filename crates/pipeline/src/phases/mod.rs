//! The phases of a run, each a function from the options (and the project
//! preflight loaded) to its value and the note shown for it: preflight,
//! clean and certs (here), build, up, test, teardown, one file each. This
//! module holds what they share: the run's options, progress, the runner of
//! one phase, and work beside the phases. `e2e.rs` puts them in order.

mod build;
mod preflight;
mod sync;
mod teardown;
mod test;
mod up;

use std::time::Instant;

use build_context::clean;
use camino::Utf8PathBuf;
use compose::{Policy, Project};

use crate::Config;
use crate::error::{Error, Result};
use crate::lock::ProjectLock;
use crate::report::{CertsDone, Cleaned, Failure, Phase, PhaseReport, RunReport, Status, Verdict};
use crate::workspace::Workspace;

pub use build::Asked;
pub(crate) use build::{Staging, build_phase, stage_outputs};
pub(crate) use preflight::preflight;
pub(crate) use sync::sync_phase;
pub(crate) use teardown::{apply_policy, teardown};
pub use test::expand;
pub(crate) use test::{Prebuild, invocation, test_phase};
pub(crate) use up::{UpRequest, up_phase};

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
    /// How the user runs this tool (`cargo e2e`, `cargo xtask`), for
    /// messages that name one of its commands.
    pub tool: String,
    /// The run's role in a sharded CI (`shard build`, `shard run K/N`).
    pub shard: Option<crate::shard::Shard>,
}

/// Hears about phases as they run; the CLI draws spinners or prints lines.
pub trait Progress {
    fn start(&mut self, phase: Phase);
    /// A line worth showing while a phase runs (who is still awaited).
    fn note(&mut self, phase: Phase, line: &str);
    fn end(&mut self, report: &PhaseReport);
    /// Work under way that changes no state (a cargo build's count, a
    /// build's step): shown as it comes on a terminal, throttled on a pipe.
    fn work(&mut self, _phase: Phase, _work: &Work) {}
    /// A line a service printed while the stack starts.
    fn service_log(&mut self, _service: &str, _line: &str) {}
    /// `count` lines of `service` were not shown (too many at once); all are
    /// in the run folder's `logs/`.
    fn service_held(&mut self, _service: &str, _count: usize) {}
}

/// Work under way: how far a build has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Work {
    /// What is being done: `staged binaries`, `test binaries`, a service's build.
    pub what: String,
    pub line: String,
    /// Units done of a total, when known.
    pub done: Option<(u64, u64)>,
}

impl Work {
    /// A cargo build's progress.
    pub(crate) fn cargo(what: &str, p: &process::CargoProgress) -> Work {
        Work {
            what: what.to_owned(),
            line: format!("{}/{} built, building {}", p.done, p.total, p.building),
            done: Some((p.done, p.total)),
        }
    }
}

/// The latest [`Work`] a thread beside the phases posted, until the phases
/// look (they show it while they wait).
#[derive(Debug, Clone, Default)]
pub(crate) struct Board(std::sync::Arc<std::sync::Mutex<Option<Work>>>);

impl Board {
    pub(crate) fn post(&self, work: Work) {
        if let Ok(mut w) = self.0.lock() {
            *w = Some(work);
        }
    }

    pub(crate) fn take(&self) -> Option<Work> {
        self.0.lock().ok()?.take()
    }
}

/// A phase's value and the note shown for it.
pub(crate) type PhaseResult<T> = Result<(T, String)>;

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
            Err(e) => {
                let failure = e.failure();
                let note = match &failure {
                    Failure::Tests(counts) => counts.clone(),
                    other => first_line(other.detail()),
                };
                // The stack's failures say in which phase.
                let failure = match failure {
                    Failure::Stack(d) => Failure::Stack(format!("{}: {d}", phase.name())),
                    other => other,
                };
                (Status::Failed, note, Err(Verdict::Failed(failure)))
            }
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
        let outcome = self.run(Phase::Test, |progress| {
            test_phase(
                opts,
                project,
                Some(prebuild),
                containers,
                &mut counted,
                progress,
            )
        });
        if let Some(o) = counted {
            (self.report.tests, self.report.junit) = (o.counts, o.junit);
        }
        outcome
    }

    pub(crate) fn skip(&mut self, phase: Phase, why: &str) {
        self.record(phase, Status::Skipped, 0.0, why.into());
    }

    pub(crate) fn record(&mut self, phase: Phase, status: Status, seconds: f64, note: String) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let r = PhaseReport {
            phase,
            status,
            seconds,
            note,
            started_at: now - seconds,
        };
        self.progress.end(&r);
        self.report.phases.push(r);
    }
}

/// Work started in a thread of its own to run beside the phases (a cargo
/// build), posting how far it has come on its board. Dropped before it was
/// joined (a phase failed, Ctrl-C), it stops the process groups it started,
/// and only those, and waits for the thread.
#[derive(Debug)]
pub(crate) struct Beside<T> {
    handle: Option<std::thread::JoinHandle<T>>,
    scope: process::Scope,
    pub(crate) board: Board,
    /// Hangs up when the work ends: the join wakes at once, not at its next look.
    done: std::sync::mpsc::Receiver<()>,
}

impl<T: Send + 'static> Beside<T> {
    pub(crate) fn spawn(work: impl FnOnce(Board) -> T + Send + 'static) -> Beside<T> {
        let scope = process::Scope::default();
        let inside = scope.clone();
        let board = Board::default();
        let posts = board.clone();
        let (ends, done) = std::sync::mpsc::channel::<()>();
        let handle = std::thread::spawn(move || {
            let _ends = ends;
            inside.enter(|| work(posts))
        });
        Beside {
            handle: Some(handle),
            scope,
            board,
            done,
        }
    }

    /// Waits for it, showing what it posts meanwhile.
    pub(crate) fn join(mut self, phase: Phase, progress: &mut dyn Progress) -> T {
        let handle = self.handle.take().expect("joined once");
        let look = std::time::Duration::from_millis(100);
        while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = self.done.recv_timeout(look) {
            if let Some(w) = self.board.take() {
                progress.work(phase, &w);
            }
        }
        handle
            .join()
            .expect("work beside the phases does not panic")
    }
}

impl<T> Drop for Beside<T> {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            self.scope.stop();
            let _ = handle.join();
        }
    }
}

pub(crate) fn clean_phase(opts: &Options, project: &Project) -> PhaseResult<Option<Cleaned>> {
    let roots: Vec<Utf8PathBuf> = project
        .stack
        .build_contexts()
        .into_iter()
        .map(|(_, c, _)| c.to_owned())
        .collect();
    let Some(first) = roots.first() else {
        return Ok((None, "no build contexts".into()));
    };
    match crate::git::tracked(first)? {
        Some((repo, tracked)) => {
            let plan = clean::plan(&repo, &roots, &opts.config.context.artifacts, &tracked)
                .map_err(|e| {
                    Error::BadInput(format!("{}: context.artifacts: {e}", opts.config.path))
                })?;
            let outcome = clean::execute(&plan, false);
            let note = format!(
                "removed {} artifacts ({})",
                outcome.removed_files,
                build_context::human(outcome.bytes_freed)
            );
            Ok((
                Some(Cleaned {
                    files: outcome.removed_files,
                    bytes: outcome.bytes_freed,
                }),
                note,
            ))
        }
        None => Ok((None, "not a git work tree: nothing deleted".into())),
    }
}

pub(crate) fn certs_phase(opts: &Options, project: &Project) -> PhaseResult<CertsDone> {
    let Some(spec) = opts
        .config
        .certs_spec(project.stack.services.keys().cloned())
    else {
        return Err(Error::BadInput("no certs section".into()));
    };
    let r = certs::ensure(&spec, certs::Mode::Ensure)?;
    let note = r.reason.replace('\n', "; ");
    Ok((
        CertsDone {
            action: r.action,
            reason: r.reason,
        },
        note,
    ))
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_owned()
}
